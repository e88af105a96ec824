//! The disk's floor for a durable answer: how long one flush takes on the disk the stores use.
//!
//! Why: an event is acknowledged only once the commit that holds it has been flushed, so no
//! latency of the relay's can be lower than one flush, and an event that arrives while another
//! commit is flushing waits for two. The no-op ceiling is the yardstick for the rates; this is the
//! one for the open loops' latencies: a p99 above the target by about a flush or two is the disk's,
//! not the relay's. A diagnosis, no target; the relay is not involved.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Report, Scale, latency_json};
use crate::run::Run;

/// The sizes written before each flush: one stored event's WAL (about 12 KiB, BENCHMARKS.md), and
/// a commit of the open loop at 5,000/s (6–12 jobs a commit).
const SIZES_KIB: [usize; 2] = [16, 96];

/// Appends `size_kib` KiB and flushes it (`fdatasync`, as a commit flushes SQLite's WAL),
/// `count` times in a file of its own under `dir`; each append and flush timed together.
fn flushes(dir: &Path, size_kib: usize, count: usize) -> Run {
    let path = dir.join(format!("flush-floor-{size_kib}k"));
    let mut file = std::fs::File::create(&path).expect("a file beside the stores");
    let block = vec![0x5a_u8; size_kib * 1024];
    let started = Instant::now();
    let latencies: Vec<Duration> = (0..count)
        .map(|_| {
            let begun = Instant::now();
            file.write_all(&block).expect("written");
            file.sync_data().expect("flushed");
            begun.elapsed()
        })
        .collect();
    let elapsed = started.elapsed();
    // Gone at once, not with the run's temp dir: the scenarios after this one write to this disk.
    let _ = std::fs::remove_file(&path);
    Run::of(count, elapsed, latencies, 0)
}

/// `disk_flush_floor_16k`, `disk_flush_floor_96k`: the flush times of each size, on an otherwise
/// idle machine.
pub async fn floor(report: &mut Report, scale: &Scale, dir: &Path) {
    let count = scale.n(500, 20);
    for size_kib in SIZES_KIB {
        let dir = dir.to_owned();
        let run = tokio::task::spawn_blocking(move || flushes(&dir, size_kib, count))
            .await
            .expect("the flushes ran");
        report.add(
            &format!("disk_flush_floor_{size_kib}k"),
            "-",
            format!(
                "write and fdatasync of {size_kib} KiB, {count} times: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (a durable answer's floor)",
                run.ms(0.5),
                run.ms(0.99),
                run.ms(1.0)
            ),
            None,
            json!({"latency": latency_json(&run)}),
        );
    }
}
