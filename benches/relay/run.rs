//! What one run of the generator measured: how many it sent, how many were refused, and the
//! latencies, sorted once for the quantiles.

use std::time::Duration;

/// What one run measured.
pub struct Run {
    pub sent: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
    pub errors: usize,
}

impl Run {
    /// `sent` requests over `elapsed`; the latencies are sorted here, as the quantiles need them.
    pub fn of(sent: usize, elapsed: Duration, mut latencies: Vec<Duration>, errors: usize) -> Self {
        latencies.sort_unstable();
        Self {
            sent,
            elapsed,
            latencies,
            errors,
        }
    }

    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64()
    }

    /// The requests answered 2xx: the events the org is owed (a refused one never reaches it).
    pub fn acknowledged(&self) -> usize {
        self.sent - self.errors
    }

    /// The `p`th latency, in milliseconds.
    pub fn ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1e3
    }
}
