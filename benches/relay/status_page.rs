//! The status page with a full store: the overview and filtered event lists, timed over loopback
//! with a signed-in session, while the relay runs (issue target: each under 100 ms with 100,000
//! stored events). The store is filled as `store copy` fills one (`import`, then `settle`), not
//! through DR's webhook, so that filling it takes seconds.

use std::time::{Duration, Instant};

use bytes::Bytes;
use dr_sf_bridge::domain::Mode;
use dr_sf_bridge::settings::StorageSettings;
use dr_sf_bridge::store::{self, AttemptSummary, EventStatus, EventSummary, Role, StoredEvent};
use serde_json::json;

use super::child::Process;
use super::standin::serve_org;
use super::{Report, Scale, org};

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef";
const TYPES: [&str; 8] = dr_sf_bridge::domain::EventType::SUPPORTED;
/// Requests timed per page (after a few untimed ones).
const SAMPLES: usize = 40;

/// The `n`th stored event: one in 50 dead, one in 1,000 pending, the rest delivered, received
/// over the last two days (newest last), two events an order.
fn stored_event(n: usize, count: usize, now_ms: i64, body: &Bytes) -> StoredEvent {
    let status = match n {
        _ if n % 50 == 7 => EventStatus::Dead,
        _ if n % 1000 == 3 => EventStatus::Pending,
        _ => EventStatus::Delivered,
    };
    let received = now_ms - 48 * 3_600_000 + (n as i64 * 48 * 3_600_000) / count as i64;
    let attempt = AttemptSummary {
        at_ms: received + 50,
        status_code: Some(if status == EventStatus::Dead { 404 } else { 200 }),
        duration_ms: 40,
        outcome: if status == EventStatus::Dead {
            "dead"
        } else {
            "delivered"
        }
        .to_owned(),
        error: None,
        excerpt: None,
    };
    StoredEvent {
        seq: n as i64,
        summary: EventSummary {
            source: Default::default(),
            id: format!("evt-ui-{n:07}"),
            event_type: TYPES[n % TYPES.len()].to_owned(),
            status,
            live_mode: false,
            target: Mode::Test,
            order_key: Some(format!("2400{:08}", n / 2)),
            received_at_ms: received,
            attempts: u32::from(status != EventStatus::Pending),
            next_attempt_at_ms: None,
            last_status: attempt.status_code,
            last_error: (status == EventStatus::Dead).then(|| "Salesforce answered 404".to_owned()),
            seq: n as i64,
        },
        attempts_400: 0,
        next_attempt_at_ms: received,
        finished_at_ms: (status != EventStatus::Pending).then_some(received + 50),
        body: body.clone(),
        attempt_log: if status == EventStatus::Pending {
            vec![]
        } else {
            vec![attempt]
        },
        trace_parent: None,
    }
}

async fn fill(storage: &str, count: usize) -> Duration {
    let settings = StorageSettings {
        url: storage.to_owned(),
        retention_days: 30,
        pool_size: 4,
    };
    let store = store::open(&settings, Role::Operations)
        .await
        .expect("the relay made the store");
    let body = Bytes::from(
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/fixtures/events/order.accepted.json"
        ))
        .expect("the fixture"),
    );
    let now = dr_sf_bridge::support::clock::now_ms();
    let started = Instant::now();
    let mut n = 0;
    while n < count {
        let batch: Vec<StoredEvent> = (n..(n + 1000).min(count))
            .map(|i| stored_event(i, count, now, &body))
            .collect();
        n += batch.len();
        store.import(batch).await.expect("imported");
    }
    // As `store copy` ends (PostgreSQL: vacuumed and analyzed, as a relay's own vacuums leave it).
    store.settle().await.expect("settled");
    started.elapsed()
}

/// The session cookie of a sign-in with the admin token.
async fn sign_in(http: &reqwest::Client, base: &str) -> String {
    let response = http
        .post(format!("{base}/ui/sign-in"))
        .form(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "signed in");
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// Milliseconds per request of `path`, sorted; and the last page's text.
async fn time_page(http: &reqwest::Client, base: &str, cookie: &str, path: &str, samples: usize) -> (Vec<f64>, String) {
    let mut times = Vec::with_capacity(samples);
    let mut page = String::new();
    for i in 0..samples + 3 {
        let started = Instant::now();
        let response = http
            .get(format!("{base}{path}"))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        page = response.text().await.unwrap();
        if i >= 3 {
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    (times, page)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub async fn scenarios(report: &mut Report, scale: &Scale, engine: &str, storage: &str, dir: &std::path::Path) {
    let count = scale.n(100_000, 2_000);
    let org_url = serve_org(org(Duration::ZERO, 0)).await;
    let relay = Process::relay(
        dir,
        storage,
        &org_url,
        &[("DRSF__RELAY__ADMIN_TOKEN", ADMIN_TOKEN.to_owned())],
    )
    .await;
    let filled = fill(storage, count).await;
    let base = format!("http://127.0.0.1:{}", relay.port);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = sign_in(&http, &base).await;
    let samples = scale.n(SAMPLES, 5);
    let (_, first_page) = time_page(&http, &base, &cookie, "/ui/events?status=delivered", 1).await;
    let older = first_page
        .split(r#"href="/ui/events?"#)
        .filter_map(|rest| rest.split('"').next())
        .find(|query| query.contains("before="))
        .map(|query| format!("/ui/events?{}", query.replace("&amp;", "&")))
        .expect("a second page");
    let middle_order = format!("2400{:08}", count / 4);
    let pages = [
        ("overview", "/ui/".to_owned()),
        ("list_dead", "/ui/events?status=dead".to_owned()),
        ("list_type", "/ui/events?type=order.complete".to_owned()),
        ("list_order", format!("/ui/events?q={middle_order}")),
        ("list_page_2", older),
    ];
    for (name, path) in pages {
        let (times, page) = time_page(&http, &base, &cookie, &path, samples).await;
        assert!(page.contains("</html>"), "{name}: a whole page");
        let (p50, p95, max) = (quantile(&times, 0.5), quantile(&times, 0.95), quantile(&times, 1.0));
        report.add(
            &format!("status_page_{name}"),
            engine,
            format!("p50 {p50:.1} ms, p95 {p95:.1} ms, max {max:.1} ms with {count} events"),
            Some(("p95 < 100 ms", p95 < 100.0)),
            json!({"events": count, "path": path, "p50Ms": p50, "p95Ms": p95, "maxMs": max,
                   "samples": times.len(), "fillSeconds": filled.as_secs_f64()}),
        );
    }
}
