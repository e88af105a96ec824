//! `[delivery]`: the retry schedule, the limit on 400s, the circuit breaker and the worker's poll.

use std::time::Duration;

use serde::Deserialize;

use super::list_or_csv;
use super::problems::Collector;

/// The section as written; strings stay strings until [`RawDelivery::validate`].
#[derive(Debug, Deserialize)]
pub struct RawDelivery {
    #[serde(deserialize_with = "list_or_csv")]
    pub retry_schedule: Vec<String>,
    pub max_attempts_on_400: u32,
    pub rate_limit_min_delay_secs: u64,
    pub breaker_threshold: u32,
    pub breaker_cooldown_secs: u64,
    pub poll_interval_ms: u64,
}

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Delay before each attempt; after the last one the event is dead.
    pub retry_schedule: Vec<Duration>,
    /// Attempts answered 400 before the event is dead.
    pub max_attempts_on_400: u32,
    /// Least delay after `REQUEST_LIMIT_EXCEEDED` (seconds in the configuration).
    pub rate_limit_min_delay: Duration,
    /// Consecutive failures across events that pause deliveries.
    pub breaker_threshold: u32,
    /// How long deliveries pause before a trial (seconds in the configuration).
    pub breaker_cooldown: Duration,
    /// Longest idle wait of the worker (milliseconds in the configuration).
    pub poll_interval: Duration,
}

impl RawDelivery {
    pub(super) fn validate(&self, c: &mut Collector) -> DeliverySettings {
        let mut retry_schedule = Vec::new();
        for raw in &self.retry_schedule {
            match humantime::parse_duration(raw.trim()) {
                Ok(delay) => retry_schedule.push(delay),
                Err(e) => c.push(
                    "delivery.retry_schedule",
                    format!("`{raw}` is not a duration such as 5s, 5m, 2h ({e})"),
                ),
            }
        }
        if self.retry_schedule.is_empty() {
            c.push("delivery.retry_schedule", "is empty; give at least one delay (\"0s\")");
        }
        c.positive("delivery.max_attempts_on_400", u64::from(self.max_attempts_on_400));
        c.positive("delivery.breaker_threshold", u64::from(self.breaker_threshold));
        c.positive("delivery.poll_interval_ms", self.poll_interval_ms);
        DeliverySettings {
            retry_schedule,
            max_attempts_on_400: self.max_attempts_on_400.max(1),
            rate_limit_min_delay: Duration::from_secs(self.rate_limit_min_delay_secs),
            breaker_threshold: self.breaker_threshold.max(1),
            breaker_cooldown: Duration::from_secs(self.breaker_cooldown_secs),
            poll_interval: Duration::from_millis(self.poll_interval_ms.max(1)),
        }
    }
}
