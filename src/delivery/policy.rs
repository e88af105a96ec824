//! The rules after an attempt: the retry schedule and the limit on 400s (the circuit breaker,
//! which decides for the org rather than the event, is [`super::breaker`]).
//!
//! Kept free of I/O so every rule is tested on its own. The schedule's entry `n` is the delay
//! before attempt `n + 1` (entry 0 before the first, usually `0s`); after the last entry the event
//! is dead. Delays get ±10% jitter so that events failed together do not return together.

use std::time::Duration;

use rand::Rng;

use crate::salesforce::DeliveryOutcome;
use crate::store::{ClaimedEvent, Transition};

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub schedule: Vec<Duration>,
    pub max_attempts_on_400: u32,
}

/// When an event refused for concurrency (`ConcurrentPerOrgLongTxn`) is tried again: the limit
/// clears as soon as one of the org's long requests ends.
pub const CONGESTION_RETRY: Duration = Duration::from_secs(1);

fn jittered(delay: Duration) -> Duration {
    if delay.is_zero() {
        return delay;
    }
    delay.mul_f64(rand::rng().random_range(0.9..=1.1))
}

impl RetryPolicy {
    pub fn transition(&self, event: &ClaimedEvent, outcome: &DeliveryOutcome, now_ms: i64) -> Transition {
        let attempts = event.attempts + 1;
        let retry = |min_delay: Duration, was_400: bool| match self.schedule.get(attempts as usize) {
            Some(delay) => Transition::RetryAt {
                at_ms: now_ms + jittered(*delay).max(min_delay).as_millis() as i64,
                counted: true,
                was_400,
            },
            None => Transition::Dead,
        };
        match outcome {
            DeliveryOutcome::Delivered => Transition::Delivered,
            DeliveryOutcome::Dead => Transition::Dead,
            DeliveryOutcome::Retry { min_delay } => retry(*min_delay, false),
            DeliveryOutcome::RetryLimited if event.attempts_400 + 1 >= self.max_attempts_on_400 => Transition::Dead,
            DeliveryOutcome::RetryLimited => retry(Duration::ZERO, true),
            // The org's limits, not the event: try again when they clear, without counting it.
            DeliveryOutcome::AuthRejected { min_delay } | DeliveryOutcome::DailyLimitReached { min_delay } => {
                Transition::RetryAt {
                    at_ms: now_ms + min_delay.as_millis() as i64,
                    counted: false,
                    was_400: false,
                }
            }
            DeliveryOutcome::Congested => Transition::RetryAt {
                at_ms: now_ms + jittered(CONGESTION_RETRY).as_millis() as i64,
                counted: false,
                was_400: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventId, EventType};

    fn claimed(attempts: u32, attempts_400: u32) -> ClaimedEvent {
        ClaimedEvent {
            seq: 1,
            id: EventId::parse("e").unwrap(),
            event_type: EventType::parse("order.accepted").unwrap(),
            body: bytes::Bytes::new(),
            attempts,
            attempts_400,
            received_at_ms: 0,
            trace_parent: None,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: vec![Duration::ZERO, Duration::from_secs(5), Duration::from_secs(300)],
            max_attempts_on_400: 2,
        }
    }

    #[test]
    fn the_orgs_limits_delay_an_event_without_counting_against_it() {
        let now = 1_000_000;
        let exhausted = claimed(9, 1);
        match policy().transition(&exhausted, &DeliveryOutcome::Congested, now) {
            Transition::RetryAt {
                at_ms,
                counted,
                was_400,
            } => {
                assert!(!counted && !was_400);
                assert!((now + 900..=now + 1_100).contains(&at_ms), "in about a second: {at_ms}");
            }
            other => panic!("a concurrency refusal is retried, not {other:?}"),
        }
        assert_eq!(
            policy().transition(
                &exhausted,
                &DeliveryOutcome::DailyLimitReached {
                    min_delay: Duration::from_secs(300)
                },
                now
            ),
            Transition::RetryAt {
                at_ms: now + 300_000,
                counted: false,
                was_400: false
            }
        );
    }

    fn retry() -> DeliveryOutcome {
        DeliveryOutcome::Retry {
            min_delay: Duration::ZERO,
        }
    }

    #[test]
    fn failures_follow_the_schedule_with_jitter_then_die() {
        let p = policy();
        match p.transition(&claimed(0, 0), &retry(), 1_000_000) {
            Transition::RetryAt {
                at_ms,
                counted: true,
                was_400: false,
            } => {
                assert!((1_004_500..=1_005_500).contains(&at_ms), "{at_ms}")
            }
            other => panic!("{other:?}"),
        }
        match p.transition(&claimed(1, 0), &retry(), 0) {
            Transition::RetryAt { at_ms, .. } => assert!((270_000..=330_000).contains(&at_ms), "{at_ms}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.transition(&claimed(2, 0), &retry(), 0), Transition::Dead);
    }

    #[test]
    fn a_minimum_delay_lengthens_the_scheduled_one() {
        let outcome = DeliveryOutcome::Retry {
            min_delay: Duration::from_secs(600),
        };
        match policy().transition(&claimed(0, 0), &outcome, 0) {
            Transition::RetryAt { at_ms, .. } => assert_eq!(at_ms, 600_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn repeated_400s_die_at_the_limit() {
        let p = policy();
        assert!(matches!(
            p.transition(&claimed(0, 0), &DeliveryOutcome::RetryLimited, 0),
            Transition::RetryAt { was_400: true, .. }
        ));
        assert_eq!(
            p.transition(&claimed(1, 1), &DeliveryOutcome::RetryLimited, 0),
            Transition::Dead
        );
    }

    #[test]
    fn a_refused_sign_in_does_not_count_as_an_attempt() {
        let outcome = DeliveryOutcome::AuthRejected {
            min_delay: Duration::from_secs(300),
        };
        assert_eq!(
            policy().transition(&claimed(2, 0), &outcome, 0),
            Transition::RetryAt {
                at_ms: 300_000,
                counted: false,
                was_400: false
            }
        );
    }
}
