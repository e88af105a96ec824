//! A notification channel that fails must cost ingestion and delivery nothing: the same load
//! against relays without a channel (A) and with one whose every send is answered 500 after a
//! second's wait (B), alternating A, B three times on fresh stores. Each figure is the median of
//! the B runs over the median of the A runs, beside the range of the A runs themselves: a p99 of
//! a few milliseconds on a 2-core machine moves between two runs of one binary by more than a
//! cheap background task could, so one pair of runs can neither show a cost nor rule one out.
//!
//! The org is down while the events arrive, so that a condition ("Salesforce failing") holds and
//! the relay keeps trying to tell it (a look every 5 s, told at once, each failure retried);
//! then it comes back and the backlog's drain is measured while the "resolved" message fails too.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::child::Process;
use super::load::Load;
use super::{Report, Scale, org, serve_org, wait_for};

/// A chat webhook that answers every message 500, a second late; counts what it was sent.
async fn failing_channel() -> (String, Arc<AtomicUsize>) {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// Runs of each arm (A without a channel, B with the failing one), alternating.
const ROUNDS: usize = 3;
/// The closed-loop burst: about six seconds here, so that one look of the notifier (every 5 s)
/// or one checkpoint is not a third of the burst.
const BURST_EVENTS: usize = 60_000;
/// The open loop's length: 15,000 samples, so that its p99 is the 150th-worst, not one stall.
const OPEN_LOOP_SECONDS: f64 = 15.0;

/// One arm's figures.
struct Arm {
    ingest_per_second: f64,
    open_p99_ms: f64,
    drain_per_second: f64,
    errors: usize,
}

async fn arm(scale: &Scale, dir: &std::path::Path, storage: &str, channel: Option<&str>) -> Arm {
    let org = org(Duration::ZERO, 0);
    org.down.store(true, Ordering::Relaxed);
    let org_url = serve_org(org.clone()).await;
    let mut extra = vec![
        ("DRSF__NOTIFY__CHECK_INTERVAL_SECS", "5".to_owned()),
        ("DRSF__NOTIFY__FAILING_AFTER_SECS", "0".to_owned()),
        ("DRSF__NOTIFY__MIN_DURATION_SECS", "0".to_owned()),
    ];
    if let Some(url) = channel {
        extra.push(("DRSF__NOTIFY__CHANNELS__OPS__KIND", "webhook".to_owned()));
        extra.push(("DRSF__NOTIFY__CHANNELS__OPS__URL", url.to_owned()));
    }
    let relay = Process::relay(dir, storage, &org_url, &extra).await;
    let generator = Load::new(relay.webhook_url());
    generator.closed_loop("warm", scale.n(2_000, 100), 64, 500).await;
    let burst = generator
        .closed_loop("burst", scale.n(BURST_EVENTS, 500), 64, 2_000)
        .await;
    let open = generator
        .open_loop("open1000", 1_000, scale.seconds(OPEN_LOOP_SECONDS))
        .await;
    let backlog = scale.n(2_000, 100) + burst.sent + open.sent;
    org.down.store(false, Ordering::Relaxed);
    let back = Instant::now();
    let done = wait_for("the backlog's drain", Duration::from_secs(300), || {
        org.delivered() >= backlog
    })
    .await;
    Arm {
        ingest_per_second: burst.rate(),
        open_p99_ms: open.ms(0.99),
        drain_per_second: done.map_or(0.0, |done| backlog as f64 / (done - back).as_secs_f64()),
        errors: burst.errors + open.errors,
    }
}

/// Reads one figure of an arm.
type Figure = fn(&Arm) -> f64;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// How far the runs of one arm lie apart: their range as a share of their median.
fn spread(values: &[f64]) -> f64 {
    let (low, high) = values
        .iter()
        .fold((f64::MAX, f64::MIN), |(low, high), v| (low.min(*v), high.max(*v)));
    (high - low) / median(values.to_vec())
}

pub async fn scenarios(report: &mut Report, scale: &Scale, storage_base: &str, dir: &std::path::Path) {
    let (channel, received) = failing_channel().await;
    let fresh = |name: &str| storage_base.replace(".db", &format!("-{name}.db"));
    let rounds = scale.n(ROUNDS, 1);
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        without.push(arm(scale, dir, &fresh(&format!("a{round}")), None).await);
        with.push(arm(scale, dir, &fresh(&format!("b{round}")), Some(&channel)).await);
    }
    let told = received.load(Ordering::Relaxed);

    let figures: [(&str, Figure, bool); 3] = [
        ("ingest", |a| a.ingest_per_second, true),
        ("open-loop p99", |a| a.open_p99_ms, false),
        ("drain", |a| a.drain_per_second, true),
    ];
    let mut rows = Vec::new();
    let mut data = serde_json::Map::new();
    let mut all_within = true;
    for (name, figure, higher_is_better) in figures {
        let a: Vec<f64> = without.iter().map(figure).collect();
        let b: Vec<f64> = with.iter().map(figure).collect();
        let (with_median, without_median) = (median(b.clone()), median(a.clone()));
        let ratio = with_median / without_median;
        // The range of the runs without a channel, and never less than 10%: runs of the same
        // binary on a 2-core machine differ by that much.
        let allowed = spread(&a).max(0.10);
        let within = if higher_is_better {
            ratio >= 1.0 - allowed
        } else {
            ratio <= 1.0 + allowed
        };
        all_within &= within;
        rows.push(format!("{name} {ratio:.2}× (spread ±{:.0}%)", allowed * 100.0));
        data.insert(
            name.replace(' ', "_"),
            json!({
                "withFailingChannel": with_median, "without": without_median, "ratio": ratio,
                "allowedSpread": allowed, "runsWith": b, "runsWithout": a,
            }),
        );
    }
    let errors: usize = without.iter().chain(&with).map(|a| a.errors).sum();
    data.insert("rounds".into(), json!(rounds));
    data.insert("channelRequests".into(), json!(told));
    data.insert("errors".into(), json!(errors));
    report.add(
        "notify_channel_failing",
        "sqlite",
        format!(
            "with a channel answering 500 / without (medians of {rounds} runs each): {}; the channel was sent {told} request(s), {errors} errors",
            rows.join(", ")
        ),
        Some((
            "each ratio within the spread, the channel tried",
            all_within && told > 0 && errors == 0,
        )),
        serde_json::Value::Object(data),
    );
}
