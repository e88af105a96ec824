//! `cargo bench --bench relay`: the relay's performance on this machine, every scenario bounded,
//! on loopback, beside the machine's own HTTP ceiling. BENCHMARKS.md says what each scenario
//! measures and holds the latest figures.
//!
//! The relay runs as a child process (the release binary, `--log-format json` at its default
//! level, logs discarded), as in production; the load generator and the Salesforce stand-in run
//! in this process, and all share the machine's cores. Each scenario prints a table row and one
//! JSON line (`{"scenario": ...}`) to compare commits. `DRSF_BENCH_SMOKE=1` runs every scenario
//! with tiny counts (CI's check that the benchmark still runs); `DRSF_TEST_DATABASE_URL` names the
//! PostgreSQL server (default the local one; its scenarios are skipped, saying so, without one).
//! `DRSF_BENCH_BASELINE=path/to/old/dr-sf-bridge` runs each group two rounds a side
//! (`DRSF_BENCH_ROUNDS=n`: n), this commit's relay and the old one taking turns at going first, and
//! ends with every figure as new/old (see `ab.rs`).

mod ab;
mod backfill;
mod child;
mod disk;
mod load;
mod notify;
mod postgres;
mod run;
mod side_by_side;
mod standin;
mod status_page;
mod traces;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use child::{Process, Side};
use load::{Load, wrk_against};
use run::Run;
use serde_json::json;
use standin::{Org, serve_org};

/// Set in the no-op server's process: the port it serves.
const NOOP_PORT_VAR: &str = "DRSF_BENCH_NOOP_PORT";

/// The groups of scenarios that start relays, in the order they run.
const GROUPS: [&str; 8] = [
    "sqlite", "pacing", "notify", "traces", "backlog", "status", "backfill", "postgres",
];

/// How many events each scenario sends.
struct Scale {
    smoke: bool,
    /// `DRSF_BENCH_ONLY`: the groups to run ("ceiling" and [`GROUPS`]); all when unset.
    only: Option<Vec<String>>,
}

impl Scale {
    fn runs(&self, group: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.iter().any(|g| g == group))
    }

    fn n(&self, full: usize, smoke: usize) -> usize {
        if self.smoke { smoke } else { full }
    }

    fn seconds(&self, full: f64) -> f64 {
        if self.smoke { 0.5 } else { full }
    }
}

/// One result: a table row and a JSON line.
struct Report {
    rows: Vec<[String; 4]>,
    all_met: bool,
    /// The binary measured now, in an A/B run.
    side: Option<Side>,
    /// Each figure of an A/B run, for the new/old table.
    measured: Vec<(Side, String, String, serde_json::Value)>,
}

impl Report {
    fn add(
        &mut self,
        scenario: &str,
        engine: &str,
        figure: String,
        target: Option<(&str, bool)>,
        data: serde_json::Value,
    ) {
        let (target_text, met) = target.map_or((String::new(), true), |(t, met)| {
            (format!("{t} {}", if met { "✓" } else { "✗ missed" }), met)
        });
        self.all_met &= met;
        let mut line = json!({"scenario": scenario, "engine": engine, "targetMet": met});
        if let Some(side) = self.side {
            line["binary"] = side.label().into();
            self.measured
                .push((side, scenario.to_owned(), engine.to_owned(), data.clone()));
        }
        let scenario = match self.side {
            Some(side) => format!("{scenario} ({})", side.label()),
            None => scenario.to_owned(),
        };
        if let (Some(line), Some(data)) = (line.as_object_mut(), data.as_object()) {
            line.extend(data.clone());
        }
        println!("{line}");
        self.rows.push([scenario, engine.to_owned(), figure, target_text]);
    }
}

fn latency_json(run: &Run) -> serde_json::Value {
    json!({"p50Ms": run.ms(0.5), "p99Ms": run.ms(0.99), "p999Ms": run.ms(0.999), "maxMs": run.ms(1.0),
           "errors": run.errors, "sent": run.sent})
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            println!("  (gave up waiting for {what} after {} s)", limit.as_secs());
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Some(Instant::now())
}

fn org(latency: Duration, capacity: usize) -> Arc<Org> {
    let org = Arc::new(Org::default());
    org.latency_us.store(latency.as_micros() as u64, Ordering::Relaxed);
    org.capacity.store(capacity, Ordering::Relaxed);
    org
}

#[tokio::main]
async fn main() {
    if let Ok(port) = std::env::var(NOOP_PORT_VAR) {
        standin::serve_noop(port.parse().expect("a port")).await;
        return;
    }
    let scale = Scale {
        smoke: std::env::var_os("DRSF_BENCH_SMOKE").is_some(),
        only: std::env::var("DRSF_BENCH_ONLY")
            .ok()
            .map(|v| v.split(',').map(|g| g.trim().to_owned()).collect()),
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut report = Report {
        rows: Vec::new(),
        all_met: true,
        side: None,
        measured: Vec::new(),
    };

    // 1. The machine's ceiling: the same generator against a handler that does nothing.
    let mut ceiling_rate = f64::NAN;
    if scale.runs("ceiling") {
        let noop = Process::noop().await;
        let generator = Load::new(noop.webhook_url());
        generator.closed_loop("warm", scale.n(5_000, 200), 64, 1_000).await;
        let ceiling = generator.closed_loop("noop", scale.n(100_000, 2_000), 64, 1_000).await;
        ceiling_rate = ceiling.rate();
        report.add(
            "noop_ceiling",
            "-",
            format!("{:.0} req/s, p99 {:.2} ms", ceiling.rate(), ceiling.ms(0.99)),
            None,
            json!({"perSecond": ceiling.rate(), "latency": latency_json(&ceiling)}),
        );
        if let Some(best) = wrk_against(&noop.webhook_url(), scale.seconds(10.0)) {
            let share = ceiling.rate() / best;
            report.add(
                "noop_ceiling_wrk",
                "-",
                format!(
                    "wrk (Debian's, 2 threads, 64 connections, POSTs of a fixture): {best:.0} req/s; this generator reaches {:.0}% of it",
                    share * 100.0
                ),
                Some(("the generator ≥ 80% of wrk", share >= 0.8)),
                json!({"perSecond": best, "generatorShare": share}),
            );
        }
        let noop_open = generator.open_loop("noop-open", 5_000, scale.seconds(5.0)).await;
        report.add(
            "noop_open_loop_5000",
            "-",
            format!(
                "p50 {:.2} ms, p99 {:.2} ms (the generator's own floor)",
                noop_open.ms(0.5),
                noop_open.ms(0.99)
            ),
            None,
            json!({"latency": latency_json(&noop_open)}),
        );
        disk::floor(&mut report, &scale, dir.path()).await;
    }

    let baseline = std::env::var_os("DRSF_BENCH_BASELINE").map(std::path::PathBuf::from);
    if let Some(path) = &baseline {
        assert!(path.is_file(), "DRSF_BENCH_BASELINE: no binary at {}", path.display());
    }
    let sides = ab::sides(baseline.is_some());
    for group in GROUPS {
        if !scale.runs(group) {
            continue;
        }
        for (round, side) in sides.iter().enumerate() {
            child::use_relay_binary(if *side == Side::Old { baseline.clone() } else { None });
            report.side = baseline.as_ref().map(|_| *side);
            let run_dir = dir.path().join(format!("{group}-{round}"));
            std::fs::create_dir_all(&run_dir).unwrap();
            run_group(&mut report, &scale, group, &run_dir, ceiling_rate).await;
        }
    }
    child::use_relay_binary(None);
    report.side = None;

    report.print();
    report.print_ab();
    println!("every scenario ran in {:.0} s", started.elapsed().as_secs_f64());
}

/// One group of scenarios (`DRSF_BENCH_ONLY`'s names), its stores under `dir`.
async fn run_group(report: &mut Report, scale: &Scale, group: &str, dir: &std::path::Path, ceiling_rate: f64) {
    let sqlite = |name: &str| format!("sqlite://{}", dir.join(format!("{name}.db")).display());
    match group {
        "sqlite" => {
            engine_scenarios(report, scale, "sqlite", &sqlite("main"), ceiling_rate, dir).await;
            if std::path::Path::new("/dev/shm").is_dir() {
                let shm = tempfile::tempdir_in("/dev/shm").unwrap();
                let url = format!("sqlite://{}", shm.path().join("bench.db").display());
                ingest_without_disk(report, scale, &url, ceiling_rate, dir).await;
            }
        }
        "pacing" => pacing_scenarios(report, scale, &sqlite("pacing"), dir).await,
        "notify" => notify::scenarios(report, scale, &sqlite("notify"), dir).await,
        "traces" => traces::scenarios(report, scale, &sqlite("traces"), dir).await,
        "backlog" => {
            for (name, full, smoke) in [("backlog-100k", 100_000, 2_000), ("backlog-1m", 1_000_000, 4_000)] {
                backlog(report, scale, "sqlite", &sqlite(name), scale.n(full, smoke), dir).await;
            }
        }
        "status" => {
            status_page::scenarios(report, scale, "sqlite", &sqlite("status"), dir).await;
            postgres::scenarios(report, scale, &["status"], ceiling_rate, dir).await;
        }
        "backfill" => backfill::scenarios(report, scale, dir).await,
        "postgres" => postgres::scenarios(report, scale, &["main", "backlog"], ceiling_rate, dir).await,
        other => panic!("no scenario group {other}"),
    }
}

/// Scenarios 2–4 on one engine: ingest burst, open-loop latency (SQLite), end to end.
async fn engine_scenarios(
    report: &mut Report,
    scale: &Scale,
    engine: &str,
    storage: &str,
    ceiling: f64,
    dir: &std::path::Path,
) {
    let org = org(Duration::ZERO, 0);
    let org_url = serve_org(org.clone()).await;
    let relay = Process::relay(dir, storage, &org_url, &[]).await;
    let generator = Load::new(relay.webhook_url());
    let warm = generator
        .closed_loop("warm", scale.n(2_000, 200), 64, 500)
        .await
        .acknowledged();
    wait_for("the warm-up's deliveries", Duration::from_secs(60), || {
        org.delivered() >= warm
    })
    .await;

    let cpu = relay.cpu_seconds();
    let burst = generator.closed_loop("burst", scale.n(60_000, 1_000), 64, 3_000).await;
    let mut expected = warm + burst.acknowledged();
    wait_for("the burst's deliveries", Duration::from_secs(300), || {
        org.delivered() >= expected
    })
    .await;
    let cpu_us = relay.cpu_us_per_event(cpu, burst.sent);
    let target = if engine == "sqlite" { 30_000.0 } else { 5_000.0 };
    report.add(
        "ingest_burst",
        engine,
        format!(
            "{:.0} events/s ({:.0}% of the ceiling), p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms, {} errors; \
             relay CPU {cpu_us:.0} µs/event in and out",
            burst.rate(),
            100.0 * burst.rate() / ceiling,
            burst.ms(0.5),
            burst.ms(0.99),
            burst.ms(1.0),
            burst.errors
        ),
        Some((&format!("≥ {target:.0}/s"), burst.rate() >= target && burst.errors == 0)),
        json!({"perSecond": burst.rate(), "ofCeiling": burst.rate() / ceiling, "latency": latency_json(&burst),
               "cpuUsPerEvent": cpu_us}),
    );

    if engine == "sqlite" {
        for rate in [1_000, 5_000] {
            let cpu = relay.cpu_seconds();
            let run = generator
                .open_loop(&format!("open{rate}"), rate, scale.seconds(5.0))
                .await;
            expected += run.acknowledged();
            wait_for("the steady load's deliveries", Duration::from_secs(300), || {
                org.delivered() >= expected
            })
            .await;
            let cpu_us = relay.cpu_us_per_event(cpu, run.sent);
            let target = (rate == 5_000).then(|| ("p99 ≤ 5 ms, no errors", run.ms(0.99) <= 5.0 && run.errors == 0));
            report.add(
                &format!("open_loop_{rate}"),
                engine,
                format!(
                    "p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, {} errors; relay CPU {cpu_us:.0} µs/event in and out",
                    run.ms(0.5),
                    run.ms(0.99),
                    run.ms(0.999),
                    run.errors
                ),
                target,
                json!({"rate": rate, "latency": latency_json(&run), "cpuUsPerEvent": cpu_us}),
            );
        }
    }

    let count = scale.n(30_000, 1_000);
    let requests = generator.prepare("e2e", count, 3_000);
    let (from, cpu) = (Instant::now(), relay.cpu_seconds());
    let sent = generator.send_all(requests, 64).await;
    let acknowledged = sent.rate();
    expected += sent.acknowledged();
    let done = wait_for("end to end", Duration::from_secs(300), || org.delivered() >= expected).await;
    let rate = done.map_or(0.0, |done| count as f64 / (done - from).as_secs_f64());
    let cpu_us = relay.cpu_us_per_event(cpu, count);
    let grants = org.token_grants.load(Ordering::Relaxed);
    let target = if engine == "sqlite" { 10_000.0 } else { 2_000.0 };
    let of_acknowledged = rate / acknowledged;
    report.add(
        "end_to_end",
        engine,
        format!(
            "{rate:.0} events/s delivered, {:.0}% of the {acknowledged:.0}/s acknowledged in this scenario, \
             {grants} token grant(s); relay CPU {cpu_us:.0} µs/event",
            100.0 * of_acknowledged
        ),
        Some((&format!("≥ {target:.0}/s, 1 grant"), rate >= target && grants == 1)),
        json!({"perSecond": rate, "acknowledgedPerSecond": acknowledged, "ofAcknowledged": of_acknowledged,
               "tokenGrants": grants, "events": count, "cpuUsPerEvent": cpu_us}),
    );
}

/// A diagnosis, not a target: the ingest burst with the SQLite file in memory (tmpfs, where a
/// commit's fsync costs nothing), to tell the disk's share of the acknowledgement from the CPU's.
async fn ingest_without_disk(report: &mut Report, scale: &Scale, storage: &str, ceiling: f64, dir: &std::path::Path) {
    let org = org(Duration::ZERO, 0);
    let org_url = serve_org(org.clone()).await;
    let relay = Process::relay(dir, storage, &org_url, &[]).await;
    let generator = Load::new(relay.webhook_url());
    generator.closed_loop("warm", scale.n(2_000, 200), 64, 500).await;
    let burst = generator.closed_loop("burst", scale.n(60_000, 1_000), 64, 3_000).await;
    report.add(
        "ingest_burst_tmpfs",
        "sqlite",
        format!(
            "{:.0} events/s ({:.0}% of the ceiling), p50 {:.2} ms, p99 {:.2} ms: the store in memory, no fsync (diagnosis)",
            burst.rate(),
            100.0 * burst.rate() / ceiling,
            burst.ms(0.5),
            burst.ms(0.99)
        ),
        None,
        json!({"perSecond": burst.rate(), "ofCeiling": burst.rate() / ceiling, "latency": latency_json(&burst)}),
    );
}

/// Delivers `count` events to `org` through a relay with `extra` settings; answers events/s from
/// the first post to the last delivery.
async fn drain(
    scale_dir: &std::path::Path,
    storage: &str,
    org: &Arc<Org>,
    count: usize,
    extra: &[(&str, String)],
) -> f64 {
    let org_url = serve_org(org.clone()).await;
    let relay = Process::relay(scale_dir, storage, &org_url, extra).await;
    let generator = Load::new(relay.webhook_url());
    let from = Instant::now();
    generator.closed_loop("drain", count, 64, count).await;
    let done = wait_for("the drain", Duration::from_secs(120), || org.delivered() >= count).await;
    done.map_or(0.0, |done| count as f64 / (done - from).as_secs_f64())
}

/// Scenario 5 and the pacing comparisons: a slow org, fixed and adaptive concurrency.
async fn pacing_scenarios(report: &mut Report, scale: &Scale, storage_base: &str, dir: &std::path::Path) {
    let fixed = |n: usize| {
        vec![
            ("DRSF__SALESFORCE__CONCURRENCY", "fixed".to_owned()),
            ("DRSF__SALESFORCE__MAX_IN_FLIGHT", n.to_string()),
        ]
    };
    let fresh = |name: &str| storage_base.replace(".db", &format!("-{name}.db"));

    let count = scale.n(400, 40);
    let slow = org(Duration::from_millis(200), 0);
    let rate = drain(dir, &fresh("slow-fixed"), &slow, count, &fixed(8)).await;
    report.add(
        "slow_salesforce_fixed_8",
        "sqlite",
        format!("{rate:.1} events/s of 40/s possible (200 ms Apex, 8 at once)"),
        Some(("≥ 95% of 40/s", rate >= 38.0)),
        json!({"perSecond": rate, "theoretical": 40.0, "events": count}),
    );

    let count = scale.n(1_200, 60);
    let slow = org(Duration::from_millis(200), 24);
    let rate = drain(dir, &fresh("slow-adaptive"), &slow, count, &[]).await;
    let refused = slow.refused.load(Ordering::Relaxed);
    report.add(
        "slow_salesforce_adaptive",
        "sqlite",
        format!("{rate:.1} events/s of 120/s possible (200 ms Apex, the org takes 24 at once), {refused} limit errors"),
        None,
        json!({"perSecond": rate, "theoretical": 120.0, "limitErrors": refused, "events": count}),
    );

    let count = scale.n(2_000, 100);
    let fixed_org = org(Duration::from_millis(100), 24);
    let fixed_rate = drain(dir, &fresh("drain-fixed"), &fixed_org, count, &fixed(8)).await;
    let adaptive_org = org(Duration::from_millis(100), 24);
    let adaptive_rate = drain(dir, &fresh("drain-adaptive"), &adaptive_org, count, &[]).await;
    let speedup = adaptive_rate / fixed_rate;
    let refused = adaptive_org.refused.load(Ordering::Relaxed);
    report.add(
        "drain_2000_capacity_24",
        "sqlite",
        format!(
            "adaptive {adaptive_rate:.0}/s vs fixed 8 {fixed_rate:.0}/s = {speedup:.1}× ({refused} limit errors of {})",
            count + refused
        ),
        Some(("≥ 2.5×", speedup >= 2.5)),
        json!({"adaptivePerSecond": adaptive_rate, "fixedPerSecond": fixed_rate, "speedup": speedup,
               "limitErrors": refused, "events": count}),
    );
}

/// Scenario 6: Salesforce down while `count` events are ingested; the relay's peak memory, then
/// the drain rate once Salesforce is back.
async fn backlog(report: &mut Report, scale: &Scale, engine: &str, storage: &str, count: usize, dir: &std::path::Path) {
    let org = org(Duration::ZERO, 0);
    org.down.store(true, Ordering::Relaxed);
    let org_url = serve_org(org.clone()).await;
    let relay = Process::relay(dir, storage, &org_url, &[]).await;
    let generator = Load::new(relay.webhook_url());
    let cpu = relay.cpu_seconds();
    let ingest = generator.closed_loop("backlog", count, 64, count / 4).await;
    let rss_backlog = relay.peak_rss_mib();
    let ingest_cpu_us = relay.cpu_us_per_event(cpu, ingest.sent);

    org.down.store(false, Ordering::Relaxed);
    let (back, cpu) = (Instant::now(), relay.cpu_seconds());
    let first = wait_for("the first delivery", Duration::from_secs(120), || org.delivered() > 0).await;
    let measured = count.min(scale.n(200_000, count));
    let from = first.unwrap_or(back);
    let from_count = org.delivered();
    let done = wait_for("the drain", Duration::from_secs(300), || org.delivered() >= measured).await;
    let drain_rate = done.map_or(0.0, |done| (measured - from_count) as f64 / (done - from).as_secs_f64());
    let drain_cpu_us = relay.cpu_us_per_event(cpu, org.delivered());
    let rss_peak = relay.peak_rss_mib();
    let label = if count >= 1_000_000 {
        format!("{}M", count / 1_000_000)
    } else {
        format!("{}k", count / 1_000)
    };
    report.add(
        &format!("backlog_{label}"),
        engine,
        format!(
            "ingested at {:.0}/s; peak RSS {rss_backlog:.1} MiB with the backlog, {rss_peak:.1} MiB after; \
             resumed {:.1} s after Salesforce came back; drained {drain_rate:.0}/s (first {measured}); \
             relay CPU {ingest_cpu_us:.0} µs/event in, {drain_cpu_us:.0} out",
            ingest.rate(),
            first.map_or(f64::NAN, |f| (f - back).as_secs_f64())
        ),
        Some((
            "RSS ≤ 32 MiB, drain ≥ 10,000/s",
            rss_peak <= 32.0 && drain_rate >= 10_000.0,
        )),
        json!({"events": count, "ingestPerSecond": ingest.rate(), "peakRssMiB": rss_peak,
               "rssWithBacklogMiB": rss_backlog, "drainPerSecond": drain_rate, "drainMeasuredOver": measured,
               "ingestCpuUsPerEvent": ingest_cpu_us, "drainCpuUsPerEvent": drain_cpu_us}),
    );
}
