//! The circuit breaker: pauses an org's deliveries when Salesforce fails for every event.
//!
//! Kept apart from the retry rules ([`super::policy`]), which decide for one event: the breaker
//! decides for the org, from the run of outcomes across events, and names when an outage began so
//! that its end can bring the events it held back forward. Free of I/O, tested on its own.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::salesforce::DeliveryOutcome;
use crate::support::clock::Clock;

/// Pauses all deliveries when Salesforce fails for everyone (outage, maintenance, refused
/// sign-in), instead of burning every event's attempts; after a cool-down one trial delivery
/// decides whether to resume.
pub struct CircuitBreaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<BreakerState>,
    clock: Clock,
}

/// `failing_since_ms`: when the run of failures began (the clock's Unix milliseconds), so that
/// when it ends the events it held back can be named.
#[derive(Debug, Clone, Copy)]
enum BreakerState {
    Closed {
        failures: u32,
        failing_since_ms: i64,
    },
    Open {
        until: Instant,
        cooldown: Duration,
        failing_since_ms: i64,
    },
    HalfOpen {
        trial_running: bool,
        cooldown: Duration,
        failing_since_ms: i64,
    },
}

/// What one outcome did to the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerChange {
    Unchanged,
    /// A closed breaker opened: once per outage, not for each in-flight delivery that fails
    /// after it, nor for a failed trial.
    Opened,
    /// The org answered about an event after the breaker had opened: the outage that began at
    /// `failing_since_ms` (Unix milliseconds) is over.
    Recovered {
        failing_since_ms: i64,
    },
}

const CLOSED: BreakerState = BreakerState::Closed {
    failures: 0,
    failing_since_ms: 0,
};

/// The most a cool-down grows to while trials keep failing.
const MAX_COOLDOWN: Duration = Duration::from_secs(600);

impl CircuitBreaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(CLOSED),
            clock: Clock::system(),
        }
    }

    /// The breaker with its cool-downs read from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// How many deliveries may start now (`usize::MAX` when closed); `Err(wait)` while open.
    pub fn permits(&self) -> Result<usize, Duration> {
        let mut state = self.state.lock().expect("not poisoned");
        match *state {
            BreakerState::Closed { .. } => Ok(usize::MAX),
            BreakerState::Open {
                until,
                cooldown,
                failing_since_ms,
            } => {
                let now = self.clock.now();
                if now < until {
                    return Err(until - now);
                }
                *state = BreakerState::HalfOpen {
                    trial_running: false,
                    cooldown,
                    failing_since_ms,
                };
                Ok(1)
            }
            BreakerState::HalfOpen {
                trial_running: true, ..
            } => Err(Duration::from_millis(100)),
            BreakerState::HalfOpen {
                trial_running: false, ..
            } => Ok(1),
        }
    }

    /// Notes that a delivery started (a half-open breaker lets only one run).
    pub fn started(&self) {
        let mut state = self.state.lock().expect("not poisoned");
        if let BreakerState::HalfOpen {
            cooldown,
            failing_since_ms,
            ..
        } = *state
        {
            *state = BreakerState::HalfOpen {
                trial_running: true,
                cooldown,
                failing_since_ms,
            };
        }
    }

    pub fn is_open(&self) -> bool {
        !matches!(*self.state.lock().expect("not poisoned"), BreakerState::Closed { .. })
    }

    /// Feeds the outcome of an attempt that finished at `finished_at_ms` (Unix milliseconds, as
    /// the attempt's record says) and answers what it changed.
    pub fn record(&self, outcome: &DeliveryOutcome, finished_at_ms: i64) -> BreakerChange {
        let mut state = self.state.lock().expect("not poisoned");
        let failing_since_ms = match *state {
            BreakerState::Closed { failures: 0, .. } => finished_at_ms,
            BreakerState::Closed { failing_since_ms, .. }
            | BreakerState::Open { failing_since_ms, .. }
            | BreakerState::HalfOpen { failing_since_ms, .. } => failing_since_ms,
        };
        let was_closed = matches!(*state, BreakerState::Closed { .. });
        let pause = match outcome {
            // The org answered about this event: it is up.
            DeliveryOutcome::Delivered | DeliveryOutcome::RetryLimited | DeliveryOutcome::Dead => {
                *state = CLOSED;
                return if was_closed {
                    BreakerChange::Unchanged
                } else {
                    BreakerChange::Recovered { failing_since_ms }
                };
            }
            // The org answered about its limits (the pacer's business): it is up, but what waits
            // for the limits to clear waits on.
            DeliveryOutcome::Congested | DeliveryOutcome::DailyLimitReached { .. } => {
                if !matches!(*state, BreakerState::Open { .. }) {
                    *state = CLOSED;
                }
                return BreakerChange::Unchanged;
            }
            DeliveryOutcome::Retry { min_delay } => Some(*min_delay).filter(|d| !d.is_zero()),
            // A refused sign-in fails every event alike.
            DeliveryOutcome::AuthRejected { min_delay } => {
                *state = BreakerState::Open {
                    until: self.clock.now() + *min_delay,
                    cooldown: *min_delay,
                    failing_since_ms,
                };
                return if was_closed {
                    BreakerChange::Opened
                } else {
                    BreakerChange::Unchanged
                };
            }
        };
        match *state {
            BreakerState::Closed { failures, .. } if failures + 1 >= self.threshold => {
                let cooldown = pause.unwrap_or(self.cooldown).max(self.cooldown);
                *state = BreakerState::Open {
                    until: self.clock.now() + cooldown,
                    cooldown,
                    failing_since_ms,
                };
                BreakerChange::Opened
            }
            BreakerState::Closed { failures, .. } => {
                *state = BreakerState::Closed {
                    failures: failures + 1,
                    failing_since_ms,
                };
                BreakerChange::Unchanged
            }
            BreakerState::HalfOpen { cooldown, .. } => {
                let cooldown = (cooldown * 2).min(MAX_COOLDOWN).max(self.cooldown);
                *state = BreakerState::Open {
                    until: self.clock.now() + cooldown,
                    cooldown,
                    failing_since_ms,
                };
                BreakerChange::Unchanged
            }
            BreakerState::Open { .. } => BreakerChange::Unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry() -> DeliveryOutcome {
        DeliveryOutcome::Retry {
            min_delay: Duration::ZERO,
        }
    }

    #[test]
    fn the_breaker_opens_after_consecutive_failures_and_a_trial_closes_it() {
        let breaker = CircuitBreaker::new(3, Duration::ZERO);
        assert_eq!(breaker.record(&retry(), 0), BreakerChange::Unchanged);
        assert_eq!(breaker.record(&retry(), 0), BreakerChange::Unchanged);
        assert_eq!(breaker.record(&retry(), 0), BreakerChange::Opened);
        assert!(breaker.is_open());
        assert_eq!(breaker.permits(), Ok(1), "cool-down of zero: one trial");
        breaker.started();
        assert!(breaker.permits().is_err(), "only one trial at a time");
        breaker.record(&DeliveryOutcome::Delivered, 0);
        assert!(!breaker.is_open());
        assert_eq!(breaker.permits(), Ok(usize::MAX));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let breaker = CircuitBreaker::new(2, Duration::from_secs(60));
        breaker.record(&retry(), 0);
        breaker.record(&DeliveryOutcome::Delivered, 0);
        assert_eq!(breaker.record(&retry(), 0), BreakerChange::Unchanged);
        assert_eq!(breaker.record(&retry(), 0), BreakerChange::Opened);
        assert!(breaker.permits().is_err());
    }

    fn open_state(breaker: &CircuitBreaker) -> (Instant, Duration) {
        match *breaker.state.lock().unwrap() {
            BreakerState::Open { until, cooldown, .. } => (until, cooldown),
            other => panic!("expected an open breaker, found {other:?}"),
        }
    }

    #[test]
    fn a_retry_after_longer_than_the_cooldown_holds_the_breaker_that_long() {
        let breaker = CircuitBreaker::new(1, Duration::from_secs(1));
        let answered = DeliveryOutcome::Retry {
            min_delay: Duration::from_secs(120),
        };
        assert_eq!(breaker.record(&answered, 0), BreakerChange::Opened);
        let wait = breaker.permits().expect_err("open");
        assert!(
            wait > Duration::from_secs(60),
            "Salesforce's Retry-After is kept: {wait:?}"
        );
    }

    #[test]
    fn a_refused_sign_in_opens_the_breaker_for_its_cooldown() {
        let breaker = CircuitBreaker::new(5, Duration::from_secs(1));
        let refused = DeliveryOutcome::AuthRejected {
            min_delay: Duration::from_secs(300),
        };
        assert_eq!(
            breaker.record(&refused, 0),
            BreakerChange::Opened,
            "opens at once, whatever the threshold"
        );
        assert_eq!(
            breaker.record(&refused, 0),
            BreakerChange::Unchanged,
            "the next in-flight delivery refused alike opens nothing new"
        );
        let (until, cooldown) = open_state(&breaker);
        assert_eq!(cooldown, Duration::from_secs(300));
        assert!(until > Instant::now() + Duration::from_secs(200));
        assert!(breaker.permits().expect_err("open") > Duration::from_secs(200));
    }

    #[test]
    fn a_failed_trial_doubles_the_cooldown_up_to_the_ceiling() {
        let breaker = CircuitBreaker::new(1, Duration::from_secs(5));
        *breaker.state.lock().unwrap() = BreakerState::HalfOpen {
            trial_running: true,
            cooldown: Duration::from_secs(40),
            failing_since_ms: 0,
        };
        assert_eq!(
            breaker.record(&retry(), 0),
            BreakerChange::Unchanged,
            "a failed trial keeps the outage's breaker open: not a new opening to announce"
        );
        let (until, cooldown) = open_state(&breaker);
        assert_eq!(cooldown, Duration::from_secs(80));
        assert!(until > Instant::now() + Duration::from_secs(70));

        *breaker.state.lock().unwrap() = BreakerState::HalfOpen {
            trial_running: true,
            cooldown: Duration::from_secs(500),
            failing_since_ms: 0,
        };
        breaker.record(&retry(), 0);
        assert_eq!(open_state(&breaker).1, MAX_COOLDOWN);
    }

    #[test]
    fn the_first_answer_after_an_outage_names_when_the_failures_began() {
        let breaker = CircuitBreaker::new(2, Duration::ZERO);
        breaker.record(&retry(), 1_000);
        breaker.record(&DeliveryOutcome::Delivered, 2_000);
        assert_eq!(breaker.record(&retry(), 3_000), BreakerChange::Unchanged);
        assert_eq!(breaker.record(&retry(), 4_000), BreakerChange::Opened);
        assert_eq!(breaker.permits(), Ok(1));
        breaker.started();
        assert_eq!(
            breaker.record(&retry(), 5_000),
            BreakerChange::Unchanged,
            "a failed trial"
        );
        let mut state = breaker.state.lock().unwrap();
        *state = match *state {
            BreakerState::Open {
                cooldown,
                failing_since_ms,
                ..
            } => BreakerState::Open {
                until: Instant::now(),
                cooldown,
                failing_since_ms,
            },
            other => panic!("expected an open breaker, found {other:?}"),
        };
        drop(state);
        assert_eq!(breaker.permits(), Ok(1), "the cool-down is over");
        breaker.started();
        assert_eq!(
            breaker.record(&DeliveryOutcome::Delivered, 9_000),
            BreakerChange::Recovered {
                failing_since_ms: 3_000
            },
            "since the run of failures that opened it, not the failure a success ended before"
        );
        assert_eq!(
            breaker.record(&DeliveryOutcome::Delivered, 9_500),
            BreakerChange::Unchanged,
            "once per outage"
        );
    }

    #[test]
    fn an_answer_about_the_orgs_limits_ends_no_outage() {
        let breaker = CircuitBreaker::new(1, Duration::ZERO);
        assert_eq!(breaker.record(&retry(), 1_000), BreakerChange::Opened);
        assert_eq!(
            breaker.record(&DeliveryOutcome::Congested, 2_000),
            BreakerChange::Unchanged
        );
        assert!(
            breaker.is_open(),
            "an in-flight answer about limits leaves an open breaker open"
        );
        assert_eq!(
            breaker.record(&DeliveryOutcome::RetryLimited, 3_000),
            BreakerChange::Recovered {
                failing_since_ms: 1_000
            },
            "a 400 is an answer about the event: the org is up"
        );
    }
}
