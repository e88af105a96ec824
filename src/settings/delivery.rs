//! `[delivery]`: the retry schedule, the limit on 400s, the circuit breaker and the worker's poll.

use std::time::Duration;

use super::problems::Reader;

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Delay before each attempt; after the last one the event is dead.
    pub retry_schedule: Vec<Duration>,
    /// Attempts answered 400 before the event is dead.
    pub max_attempts_on_400: u32,
    /// How long deliveries pause for the org's daily API limit or reserve before its usage is
    /// asked again (seconds in the configuration).
    pub rate_limit_min_delay: Duration,
    /// Consecutive failures across events that pause deliveries.
    pub breaker_threshold: u32,
    /// How long deliveries pause before a trial (seconds in the configuration).
    pub breaker_cooldown: Duration,
    /// Longest idle wait of the worker (milliseconds in the configuration).
    pub poll_interval: Duration,
}

impl DeliverySettings {
    pub(super) fn read(r: &mut Reader) -> Self {
        let raw_schedule = r.list("delivery.retry_schedule");
        let max_attempts_on_400: u32 = r.get("delivery.max_attempts_on_400");
        let rate_limit_min_delay_secs = r.get("delivery.rate_limit_min_delay_secs");
        let breaker_threshold: u32 = r.get("delivery.breaker_threshold");
        let breaker_cooldown_secs = r.get("delivery.breaker_cooldown_secs");
        let poll_interval_ms: u64 = r.get("delivery.poll_interval_ms");
        let c = &mut r.problems;
        let mut retry_schedule = Vec::new();
        for raw in &raw_schedule {
            match humantime::parse_duration(raw.trim()) {
                Ok(delay) => retry_schedule.push(delay),
                Err(e) => c.push(
                    "delivery.retry_schedule",
                    format!("`{raw}` is not a duration such as 5s, 5m, 2h ({e})"),
                ),
            }
        }
        if raw_schedule.is_empty() {
            c.push("delivery.retry_schedule", "is empty; give at least one delay (\"0s\")");
        }
        c.positive("delivery.max_attempts_on_400", u64::from(max_attempts_on_400));
        c.positive("delivery.breaker_threshold", u64::from(breaker_threshold));
        c.positive("delivery.poll_interval_ms", poll_interval_ms);
        DeliverySettings {
            retry_schedule,
            max_attempts_on_400: max_attempts_on_400.max(1),
            rate_limit_min_delay: Duration::from_secs(rate_limit_min_delay_secs),
            breaker_threshold: breaker_threshold.max(1),
            breaker_cooldown: Duration::from_secs(breaker_cooldown_secs),
            poll_interval: Duration::from_millis(poll_interval_ms.max(1)),
        }
    }
}
