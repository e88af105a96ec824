//! `events backfill` from a local stand-in of DR's Events API: events stored per second, and the
//! command's peak memory at 10,000 and 100,000 events of the same density (the window is walked
//! an hour at a time, so memory stays flat as the window grows).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::get;
use serde_json::json;

use super::{Report, Scale};

/// Events per hour of the window, in both runs.
const PER_HOUR: usize = 4_000;

/// DR's `GET /events` over `events` (newest first, `createdTime` in ms): the window, paged.
async fn list(
    State(events): State<Arc<Vec<(i64, String)>>>,
    Query(query): Query<Vec<(String, String)>>,
) -> axum::response::Response {
    let get = |key: &str| query.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let millis = |raw: String| {
        humantime::parse_rfc3339_weak(&raw)
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let (from, until) = (get("createdTime[gte]").map(millis), get("createdTime[lt]").map(millis));
    let limit: usize = get("limit").and_then(|l| l.parse().ok()).unwrap_or(10);
    let after = get("startingAfter");
    // Newest first: the events are held oldest first, so walk them backwards.
    let window = events
        .iter()
        .rev()
        .filter(|(at, _)| from.is_none_or(|f| *at >= f) && until.is_none_or(|u| *at < u));
    let mut skipping = after.is_some();
    let mut page = Vec::new();
    let mut more = false;
    for (_, json) in window {
        if skipping {
            skipping = !after
                .as_ref()
                .is_some_and(|id| json.contains(&format!("\"id\":\"{id}\"")));
            continue;
        }
        if page.len() == limit {
            more = true;
            break;
        }
        page.push(json.as_str());
    }
    axum::response::Response::builder()
        .header("content-type", "application/json")
        .body(axum::body::Body::from(format!(
            r#"{{"hasMore":{more},"data":[{}]}}"#,
            page.join(",")
        )))
        .unwrap()
}

async fn serve(events: Vec<(i64, String)>) -> String {
    let app = axum::Router::new()
        .route("/events", get(list))
        .with_state(Arc::new(events));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// One backfill of `count` events into a fresh SQLite store; answers (seconds, peak RSS in MiB).
async fn run(count: usize, dir: &std::path::Path) -> (f64, f64) {
    let now = dr_sf_bridge::support::clock::now_ms();
    let hours = count.div_ceil(PER_HOUR) as i64;
    let start = now - hours * 3_600_000 - 60_000;
    let step = 3_600_000 / PER_HOUR as i64;
    let events: Vec<(i64, String)> = (0..count)
        .map(|n| {
            let at = start + n as i64 * step;
            let body = json!({
                "id": format!("evt-bf-{n}"), "type": "order.accepted", "liveMode": false,
                "createdTime": dr_sf_bridge::digital_river::events_api::iso(at),
                "data": {"object": {"id": format!("o-{}", n % 5_000), "state": "accepted"}},
            });
            (at, body.to_string())
        })
        .collect();
    let url = serve(events).await;
    let db = dir.join(format!("backfill-{count}.db"));
    dr_sf_bridge::store::sqlite::SqliteStore::open(&db).expect("a store to fill");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dr-sf-bridge"))
        .args([
            "events",
            "backfill",
            "--since",
            &format!("{}h", hours + 1),
            "--output",
            "json",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DRSF__STORAGE__URL", format!("sqlite://{}", db.display()))
        .env("DRSF__DIGITAL_RIVER__API_BASE_URL", &url)
        .env("DRSF__DIGITAL_RIVER__API_KEY", "sk_test_bench")
        .env("DRSF__SALESFORCE__MY_DOMAIN_URL", "https://bench.my.salesforce.com")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let pid = child.id();
    let mut peak = f64::NAN;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            if !status.success() {
                let mut stderr = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
                panic!("the backfill of {count} events failed: {stderr}");
            }
            break;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        if let Some(kib) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        {
            peak = kib / 1024.0;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let store = dr_sf_bridge::store::sqlite::SqliteStore::open(&db).unwrap();
    let stored = dr_sf_bridge::store::Store::stats(&store).await.unwrap().total();
    assert_eq!(stored, count as u64, "every listed event stored");
    (seconds, peak)
}

pub async fn scenarios(report: &mut Report, scale: &Scale, dir: &std::path::Path) {
    let small = scale.n(10_000, 400);
    let large = scale.n(100_000, 4_000);
    let (small_secs, small_rss) = run(small, dir).await;
    let (large_secs, large_rss) = run(large, dir).await;
    let rate = large as f64 / large_secs;
    report.add(
        "backfill_100k",
        "sqlite",
        format!(
            "{rate:.0} events/s stored; peak RSS {large_rss:.0} MiB at {large} events, {small_rss:.0} MiB at {small} ({:.2}×)",
            large_rss / small_rss
        ),
        Some(("peak RSS within 1.5× of a tenth of the events", large_rss <= small_rss * 1.5)),
        json!({"perSecond": rate, "events": large, "peakRssMib": large_rss, "smallPeakRssMib": small_rss,
               "smallEvents": small, "smallSeconds": small_secs}),
    );
}
