//! What the DR package's own failure records say of events the relay delivered.
//!
//! The package's Apex resource answers 200 for most of its errors after storing the event as a
//! `DR_Failed_Event__c` record, so a 2xx is not proof that the order was updated. The
//! Salesforce-side sweep (`reconcile::confirm`) reads those records and hands each to
//! [`Store::confirm`](super::Store::confirm); the rules of what a record does to an event are
//! here, one function for both engines.
//!
//! A record belongs to a delivery: one created well before the event's last delivery ended (the
//! event was replayed and delivered again since) says nothing of it, and a record already applied
//! (its id is in the event's attempt log) never fails the event a second time — so a sweep that
//! reads a record again (its overlap) cannot undo a replay.

use super::{AttemptRecord, EventStatus};
use crate::domain::EventId;

/// How long before the relay saw a delivery end a failure record of it may have been created:
/// the delivery's own duration plus any skew between Salesforce's clock and the relay's.
pub const DELIVERY_SLACK_MS: i64 = 300_000;

/// Attempt-log outcomes of the sweep's changes.
pub const OUTCOME_FAILED: &str = "failed_in_salesforce";
pub const OUTCOME_RECOVERED: &str = "recovered";

/// Whether an attempt-log line is a record read in Salesforce (not a delivery attempt).
pub fn is_record_line(outcome: &str) -> bool {
    outcome == OUTCOME_FAILED || outcome == OUTCOME_RECOVERED
}

/// One `DR_Failed_Event__c` record, as the sweep read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalesforceFailure {
    /// The record's `Id`.
    pub record_id: String,
    /// `Event_Id__c`: DR's id of the event.
    pub event_id: EventId,
    /// `CreatedDate`, on Salesforce's clock.
    pub created_ms: i64,
    /// `Processed__c`: processed successfully after the initial failure.
    pub processed: bool,
    /// `Event_Capture_Reason__c`: why the package stored it.
    pub reason: String,
}

/// What a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// A delivered event is now `failed_in_salesforce`.
    FailedInSalesforce,
    /// The event is now `recovered`.
    Recovered,
    /// Nothing to change (already applied, replayed since, or not a delivered event).
    Unchanged,
    /// The store holds no event of this id (DR posted straight to the org, or before the relay).
    NotStored,
}

impl SalesforceFailure {
    /// The attempt log's mark of this record: how an applied record is recognised.
    pub fn marker(&self) -> String {
        format!("DR_Failed_Event__c {}", self.record_id)
    }

    /// The event's last error once the record is applied.
    pub fn last_error(&self, status: EventStatus) -> String {
        let reason = self.reason.trim();
        let reason = if reason.is_empty() { "no reason given" } else { reason };
        match status {
            EventStatus::Recovered => format!("processed in Salesforce after a failure: {reason}"),
            _ => format!("Salesforce answered 2xx but the DR package stored it as a failure: {reason}"),
        }
    }

    /// The attempt-log line of the change to `status` (not an attempt: not counted).
    pub fn attempt_line(&self, status: EventStatus, now_ms: i64) -> AttemptRecord {
        AttemptRecord {
            at_ms: now_ms,
            status_code: None,
            duration_ms: 0,
            outcome: if status == EventStatus::Recovered {
                OUTCOME_RECOVERED
            } else {
                OUTCOME_FAILED
            },
            error: Some(self.last_error(status)),
            excerpt: Some(self.marker()),
        }
    }
}

/// The status a record gives an event that is `status`, whose last delivery ended at
/// `finished_at_ms`, and whose attempt log holds the record's marker when `applied`; `None`
/// when it changes nothing.
pub fn decide(
    status: EventStatus,
    finished_at_ms: Option<i64>,
    applied: bool,
    failure: &SalesforceFailure,
) -> Option<EventStatus> {
    if applied {
        return (failure.processed && status == EventStatus::FailedInSalesforce).then_some(EventStatus::Recovered);
    }
    let of_this_delivery = finished_at_ms.is_some_and(|finished| failure.created_ms >= finished - DELIVERY_SLACK_MS);
    if status != EventStatus::Delivered || !of_this_delivery {
        return None;
    }
    Some(if failure.processed {
        EventStatus::Recovered
    } else {
        EventStatus::FailedInSalesforce
    })
}

impl Confirmation {
    pub fn of(status: Option<EventStatus>) -> Self {
        match status {
            Some(EventStatus::FailedInSalesforce) => Self::FailedInSalesforce,
            Some(EventStatus::Recovered) => Self::Recovered,
            _ => Self::Unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(created_ms: i64, processed: bool) -> SalesforceFailure {
        SalesforceFailure {
            record_id: "a0X1".into(),
            event_id: EventId::parse("evt-1").unwrap(),
            created_ms,
            processed,
            reason: "INSERT_UPDATE_DELETE_NOT_ALLOWED_DURING_MAINTENANCE".into(),
        }
    }

    const DELIVERED_AT: i64 = 1_000_000_000;

    #[test]
    fn a_record_of_the_last_delivery_fails_a_delivered_event() {
        let decided = decide(
            EventStatus::Delivered,
            Some(DELIVERED_AT),
            false,
            &failure(DELIVERED_AT - 500, false),
        );
        assert_eq!(decided, Some(EventStatus::FailedInSalesforce));
    }

    #[test]
    fn a_record_already_processed_when_first_read_recovers_the_event() {
        let decided = decide(
            EventStatus::Delivered,
            Some(DELIVERED_AT),
            false,
            &failure(DELIVERED_AT, true),
        );
        assert_eq!(decided, Some(EventStatus::Recovered));
    }

    #[test]
    fn a_record_older_than_the_last_delivery_says_nothing_of_it() {
        let old = failure(DELIVERED_AT - DELIVERY_SLACK_MS - 1, false);
        assert_eq!(decide(EventStatus::Delivered, Some(DELIVERED_AT), false, &old), None);
    }

    #[test]
    fn an_applied_record_only_ever_recovers() {
        let unprocessed = failure(DELIVERED_AT, false);
        assert_eq!(
            decide(EventStatus::Delivered, Some(DELIVERED_AT), true, &unprocessed),
            None
        );
        assert_eq!(
            decide(EventStatus::FailedInSalesforce, Some(DELIVERED_AT), true, &unprocessed),
            None
        );
        let processed = failure(DELIVERED_AT, true);
        assert_eq!(
            decide(EventStatus::FailedInSalesforce, Some(DELIVERED_AT), true, &processed),
            Some(EventStatus::Recovered)
        );
        assert_eq!(decide(EventStatus::Pending, None, true, &processed), None);
    }

    #[test]
    fn only_a_delivered_event_is_failed() {
        for status in [
            EventStatus::Pending,
            EventStatus::Dead,
            EventStatus::Ignored,
            EventStatus::RejectedMode,
            EventStatus::FailedInSalesforce,
            EventStatus::Recovered,
        ] {
            assert_eq!(
                decide(status, Some(DELIVERED_AT), false, &failure(DELIVERED_AT, false)),
                None,
                "{status:?}"
            );
        }
    }

    #[test]
    fn the_attempt_line_names_the_record_and_the_reason() {
        let line = failure(DELIVERED_AT, false).attempt_line(EventStatus::FailedInSalesforce, 7);
        assert_eq!(line.outcome, OUTCOME_FAILED);
        assert_eq!(line.excerpt.as_deref(), Some("DR_Failed_Event__c a0X1"));
        assert!(
            line.error
                .unwrap()
                .contains("INSERT_UPDATE_DELETE_NOT_ALLOWED_DURING_MAINTENANCE")
        );
    }
}
