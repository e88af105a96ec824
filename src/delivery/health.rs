//! What each Salesforce target looks like from the outside, for the status page: the worker notes
//! every attempt's outcome here, and the page reads it with the breaker's, the pacer's and the
//! token cache's own state ([`super::TargetView::snapshot`]).
//!
//! Kept apart from the metrics because a person needs *since when* and *why*, not counters: "the
//! org has failed since 14:02: Salesforce answered 503" is what an admin can act on.

use std::sync::Mutex;

use super::pacing::PauseCause;
use crate::domain::Mode;
use crate::salesforce::{ApiUsage, DeliveryOutcome};

/// The last outcomes of one target's deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// When the first of the failed attempts since the last delivery ended (an outage, a refused
    /// sign-in); `None` while deliveries succeed.
    pub failing_since_ms: Option<i64>,
    /// What the last failed attempt ran into.
    pub last_failure: Option<String>,
    pub last_delivered_ms: Option<i64>,
    /// The org's daily API usage from the last answer that carried `Sforce-Limit-Info`, and when.
    pub api_usage: Option<(ApiUsage, i64)>,
}

#[derive(Debug, Default)]
pub struct TargetHealth {
    observed: Mutex<Observed>,
}

impl TargetHealth {
    /// Notes one attempt: a delivery ends a failing spell, an outage or a refused sign-in starts or
    /// extends one. Answers about one event (404, 400) say nothing of the org's health.
    pub fn observe(&self, outcome: &DeliveryOutcome, error: Option<&str>, usage: Option<ApiUsage>, at_ms: i64) {
        let mut observed = self.observed.lock().expect("not poisoned");
        match outcome {
            DeliveryOutcome::Delivered => {
                observed.failing_since_ms = None;
                observed.last_delivered_ms = Some(at_ms);
            }
            DeliveryOutcome::Retry { .. } | DeliveryOutcome::AuthRejected { .. } => {
                observed.failing_since_ms.get_or_insert(at_ms);
                observed.last_failure = error.map(str::to_owned);
            }
            DeliveryOutcome::RetryLimited
            | DeliveryOutcome::Dead
            | DeliveryOutcome::Congested
            | DeliveryOutcome::DailyLimitReached { .. } => {}
        }
        if let Some(usage) = usage {
            observed.api_usage = Some((usage, at_ms));
        }
    }

    pub fn observed(&self) -> Observed {
        self.observed.lock().expect("not poisoned").clone()
    }
}

/// A target's state at one moment.
#[derive(Debug, Clone)]
pub struct TargetSnapshot {
    pub mode: Mode,
    pub webhook_url: String,
    /// `password` or `client_credentials`.
    pub grant: &'static str,
    /// Tokens granted since the relay started.
    pub grants: u64,
    /// Salesforce's refusal of the credentials, with what to do about it.
    pub sign_in_refused: Option<String>,
    pub breaker_open: bool,
    pub paused: Option<PauseCause>,
    /// Deliveries the pacer lets run at once now.
    pub concurrency: usize,
    /// The most it ever lets run at once (`salesforce.max_in_flight`).
    pub max_in_flight: usize,
    pub observed: Observed,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_failing_spell_starts_at_its_first_failure_and_ends_with_a_delivery() {
        let health = TargetHealth::default();
        let outage = DeliveryOutcome::Retry {
            min_delay: Duration::ZERO,
        };
        health.observe(&outage, Some("Salesforce answered 503"), None, 1_000);
        health.observe(&DeliveryOutcome::Dead, Some("Salesforce answered 404"), None, 1_500);
        health.observe(&outage, Some("timed out"), None, 2_000);
        let observed = health.observed();
        assert_eq!(observed.failing_since_ms, Some(1_000));
        assert_eq!(observed.last_failure.as_deref(), Some("timed out"));
        let usage = ApiUsage { used: 10, max: 100 };
        health.observe(&DeliveryOutcome::Delivered, None, Some(usage), 3_000);
        let observed = health.observed();
        assert_eq!(observed.failing_since_ms, None);
        assert_eq!(observed.last_delivered_ms, Some(3_000));
        assert_eq!(observed.api_usage, Some((usage, 3_000)));
    }

    #[test]
    fn answers_about_one_event_do_not_make_the_org_failing() {
        let health = TargetHealth::default();
        for outcome in [
            DeliveryOutcome::Dead,
            DeliveryOutcome::RetryLimited,
            DeliveryOutcome::Congested,
        ] {
            health.observe(&outcome, Some("refused"), None, 1_000);
        }
        assert_eq!(health.observed().failing_since_ms, None);
        let refused = DeliveryOutcome::AuthRejected {
            min_delay: Duration::ZERO,
        };
        health.observe(&refused, Some("invalid_grant"), None, 2_000);
        assert_eq!(health.observed().failing_since_ms, Some(2_000));
    }
}
