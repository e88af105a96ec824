//! Two relays side by side on the same load, alternating A, B, A, B… on fresh SQLite stores: the
//! way to show that something running beside ingestion (a failing notification channel, an
//! unreachable trace collector) costs it nothing. Each figure is the median of the B runs over the
//! median of the A runs, beside the range of the A runs themselves: a p99 of a few milliseconds on
//! a 2-core machine moves between two runs of one binary by more than a cheap background task
//! could, so one pair of runs can neither show a cost nor rule one out.
//!
//! The org is down while the events arrive (so that "Salesforce failing" holds and whatever reacts
//! to it does), then it comes back and the backlog's drain is measured.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;

use super::child::Process;
use super::load::Load;
use super::{Scale, org, serve_org, wait_for};

/// Runs of each arm, alternating.
pub const ROUNDS: usize = 3;
/// The closed-loop burst: about six seconds here, so that one look of the notifier (every 5 s)
/// or one checkpoint is not a third of the burst.
const BURST_EVENTS: usize = 60_000;
/// The open loop's length: 15,000 samples, so that its p99 is the 150th-worst, not one stall.
const OPEN_LOOP_SECONDS: f64 = 15.0;

/// One arm's figures.
pub struct Arm {
    ingest_per_second: f64,
    open_p99_ms: f64,
    drain_per_second: f64,
    pub errors: usize,
    /// The relay's `/metrics` after the drain.
    pub metrics: String,
}

/// One run: a relay with `extra` settings (environment variables) on a fresh store at `storage`.
pub async fn arm(scale: &Scale, dir: &std::path::Path, storage: &str, extra: &[(&str, String)]) -> Arm {
    let org = org(Duration::ZERO, 0);
    org.down.store(true, Ordering::Relaxed);
    let org_url = serve_org(org.clone()).await;
    let relay = Process::relay(dir, storage, &org_url, extra).await;
    let generator = Load::new(relay.webhook_url());
    let warm = generator.closed_loop("warm", scale.n(2_000, 100), 64, 500).await;
    let burst = generator
        .closed_loop("burst", scale.n(BURST_EVENTS, 500), 64, 2_000)
        .await;
    let open = generator
        .open_loop("open1000", 1_000, scale.seconds(OPEN_LOOP_SECONDS))
        .await;
    let backlog = warm.acknowledged() + burst.acknowledged() + open.acknowledged();
    org.down.store(false, Ordering::Relaxed);
    let back = Instant::now();
    let done = wait_for("the backlog's drain", Duration::from_secs(300), || {
        org.delivered() >= backlog
    })
    .await;
    let metrics = relay.metrics().await;
    Arm {
        metrics,
        ingest_per_second: burst.rate(),
        open_p99_ms: open.ms(0.99),
        drain_per_second: done.map_or(0.0, |done| backlog as f64 / (done - back).as_secs_f64()),
        errors: burst.errors + open.errors,
    }
}

/// Reads one figure of an arm.
type Figure = fn(&Arm) -> f64;

/// The middle of `values` (the mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
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
    (high - low) / median(values)
}

/// B against A, figure by figure: a row of words for the table, the JSON figures, and whether
/// every ratio lies within the allowed spread.
pub fn compare(without: &[Arm], with: &[Arm]) -> (Vec<String>, serde_json::Map<String, serde_json::Value>, bool) {
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
        let (with_median, without_median) = (median(&b), median(&a));
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
                "b": with_median, "a": without_median, "ratio": ratio,
                "allowedSpread": allowed, "runsB": b, "runsA": a,
            }),
        );
    }
    (rows, data, all_within)
}
