//! The tables a run ends with: every scenario's row, and the A/B table. With
//! `DRSF_BENCH_BASELINE=path/to/old/dr-sf-bridge` every group runs new, old, old, new…, and each
//! figure is printed as new/old — a ratio from one run on one machine, the only comparison this
//! machine's 20–40% drift from one run to the next allows.

use std::collections::BTreeMap;

use super::Report;
use super::child::Side;
use super::side_by_side::median;

/// The sides each group runs when there is a baseline (`DRSF_BENCH_ROUNDS` rounds a side, two
/// unless set), so that each figure is new/old from one run; new alone without. The sides follow
/// the Thue–Morse sequence (new, old, old, new, old, new, new, old…): each round holds one run of
/// each, and over four rounds going first, a linear drift and a drift that dips and comes back
/// (a U) weigh on both sides alike, where simple turns (new, old, old, new, new, old…) balance
/// only the first two.
pub fn sides(with_baseline: bool) -> Vec<Side> {
    if !with_baseline {
        return vec![Side::New];
    }
    let rounds: u32 = std::env::var("DRSF_BENCH_ROUNDS")
        .map(|n| n.parse().expect("DRSF_BENCH_ROUNDS: a number of rounds a side"))
        .unwrap_or(2);
    (0..2 * rounds.max(1))
        .map(|run| {
            if run.count_ones() % 2 == 0 {
                Side::New
            } else {
                Side::Old
            }
        })
        .collect()
}

/// The figures compared, by the name of their JSON field, and whether more is better.
const FIGURES: [(&str, bool); 9] = [
    ("perSecond", true),
    ("ingestPerSecond", true),
    ("drainPerSecond", true),
    ("p99Ms", false),
    ("peakRssMiB", false),
    ("rssWithBacklogMiB", false),
    ("cpuUsPerEvent", false),
    ("ingestCpuUsPerEvent", false),
    ("drainCpuUsPerEvent", false),
];

/// Every numeric field of `value` named in [`FIGURES`], by its path (`latency.p99Ms`).
fn figures(value: &serde_json::Value, prefix: &str, into: &mut Vec<(String, f64, bool)>) {
    let Some(object) = value.as_object() else { return };
    for (key, field) in object {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if let Some((_, more_is_better)) = FIGURES.iter().find(|(name, _)| name == key)
            && let Some(number) = field.as_f64()
        {
            into.push((path, number, *more_is_better));
        } else {
            figures(field, &path, into);
        }
    }
}

impl Report {
    pub fn print(&self) {
        let widths: Vec<usize> = (0..4)
            .map(|c| self.rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0).max(8))
            .collect();
        println!();
        for (i, row) in std::iter::once(&["scenario", "engine", "result", "target"].map(String::from))
            .chain(&self.rows)
            .enumerate()
        {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}", w = w))
                .collect();
            println!("| {} |", cells.join(" | "));
            if i == 0 {
                let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                println!("|-{}-|", rule.join("-|-"));
            }
        }
        println!(
            "\ntargets: {}",
            if self.all_met {
                "all met"
            } else {
                "some missed (see ✗; BENCHMARKS.md says why)"
            }
        );
    }

    pub fn print_ab(&self) {
        if self.measured.is_empty() {
            return;
        }
        // (scenario, engine, figure) → (more is better, new runs, old runs)
        type Runs = (bool, Vec<f64>, Vec<f64>);
        let mut table: BTreeMap<(String, String, String), Runs> = BTreeMap::new();
        for (side, scenario, engine, data) in &self.measured {
            let mut found = Vec::new();
            figures(data, "", &mut found);
            for (figure, value, more_is_better) in found {
                let entry = table.entry((scenario.clone(), engine.clone(), figure)).or_insert((
                    more_is_better,
                    Vec::new(),
                    Vec::new(),
                ));
                match side {
                    Side::New => entry.1.push(value),
                    Side::Old => entry.2.push(value),
                }
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        println!("\nA/B, new/old (means of each side's runs; ↑ more is better, ↓ less is better; the medians'");
        println!("ratio, which one round's disk stall cannot move; each new run beside the old run of its");
        println!("round, lowest and highest):");
        println!("| scenario | engine | figure | new | old | new/old | medians | rounds |");
        println!("|---|---|---|---|---|---|---|---|");
        let mut lines = Vec::new();
        for ((scenario, engine, figure), (more_is_better, new, old)) in &table {
            if new.is_empty() || old.is_empty() {
                continue;
            }
            let (new_mean, old_mean) = (mean(new), mean(old));
            let ratio = new_mean / old_mean;
            let better = |ratio: f64| if *more_is_better { ratio >= 1.0 } else { ratio <= 1.0 };
            let of_medians = median(new) / median(old);
            let rounds: Vec<f64> = new.iter().zip(old).map(|(n, o)| n / o).collect();
            let (lowest, highest) = rounds.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                (lo.min(*r), hi.max(*r))
            });
            println!(
                "| {scenario} | {engine} | {figure} {} | {new_mean:.2} | {old_mean:.2} | {ratio:.2}× {} | {of_medians:.2}× {} | {lowest:.2}–{highest:.2}× |",
                if *more_is_better { "↑" } else { "↓" },
                if better(ratio) { "✓" } else { "✗" },
                if better(of_medians) { "✓" } else { "✗" }
            );
            lines.push(
                serde_json::json!({"ab": scenario, "engine": engine, "figure": figure, "new": new,
                "old": old, "ratio": ratio, "ofMedians": of_medians, "rounds": rounds, "better": better(ratio)}),
            );
        }
        for line in lines {
            println!("{line}");
        }
    }
}
