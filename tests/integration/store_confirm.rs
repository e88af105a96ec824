//! The store's part of the Salesforce-side confirmation, on both engines: what a DR failure
//! record does to the event it names.

use std::sync::Arc;

use dr_sf_bridge::store::confirm::{Confirmation, DELIVERY_SLACK_MS, SalesforceFailure};
use dr_sf_bridge::store::{EventFilter, EventStatus, ReplayOutcome, ReplayedBy, Store, Transition};

use crate::store_contract::{claim_one, event, id, open_postgres, open_sqlite, record, status};

const DELIVERED_AT: i64 = 1_000_000;

fn failure(record_id: &str, event_id: &str, created_ms: i64, processed: bool) -> SalesforceFailure {
    SalesforceFailure {
        record_id: record_id.into(),
        event_id: id(event_id),
        created_ms,
        processed,
        reason: "INSERT_UPDATE_DELETE_NOT_ALLOWED_DURING_MAINTENANCE: the org is read-only".into(),
    }
}

/// Stores `raw` and delivers it at `at`.
async fn delivered(store: &dyn Store, raw: &str, at: i64) {
    store.insert(event(raw, &format!("order-{raw}"), 1)).await.unwrap();
    let seq = claim_one(store, at).await;
    store
        .finish_attempt(seq, record(at, 200), Transition::Delivered)
        .await
        .unwrap();
}

async fn a_record_fails_a_delivered_event_once_and_processing_recovers_it(store: Arc<dyn Store>) {
    delivered(&*store, "e1", DELIVERED_AT).await;
    let first = failure("a0X1", "e1", DELIVERED_AT - 200, false);
    assert_eq!(
        store.confirm(&first, DELIVERED_AT + 10).await.unwrap(),
        Confirmation::FailedInSalesforce
    );
    let (summary, attempts) = store.get(&id("e1")).await.unwrap().unwrap();
    assert_eq!(summary.status, EventStatus::FailedInSalesforce);
    assert!(summary.last_error.unwrap().contains("the org is read-only"));
    assert_eq!(summary.attempts, 1, "the record's line is not an attempt");
    let line = attempts.last().unwrap();
    assert_eq!(line.outcome, "failed_in_salesforce");
    assert_eq!(line.excerpt.as_deref(), Some("DR_Failed_Event__c a0X1"));
    assert_eq!(
        store.confirm(&first, DELIVERED_AT + 20).await.unwrap(),
        Confirmation::Unchanged,
        "a record read again changes nothing"
    );
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.failed_in_salesforce, stats.delivered), (1, 0));
    let listed = store
        .list(EventFilter {
            status: Some(EventStatus::FailedInSalesforce),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);

    let processed = failure("a0X1", "e1", DELIVERED_AT - 200, true);
    assert_eq!(
        store.confirm(&processed, DELIVERED_AT + 30).await.unwrap(),
        Confirmation::Recovered
    );
    assert_eq!(status(&*store, "e1").await, EventStatus::Recovered);
    assert_eq!(store.stats().await.unwrap().recovered, 1);
}

async fn a_replayed_event_is_not_failed_again_by_the_old_record(store: Arc<dyn Store>) {
    delivered(&*store, "e1", DELIVERED_AT).await;
    let old = failure("a0X1", "e1", DELIVERED_AT, false);
    store.confirm(&old, DELIVERED_AT + 10).await.unwrap();
    assert_eq!(
        store
            .replay(&id("e1"), ReplayedBy::CommandLine, DELIVERED_AT + 20)
            .await
            .unwrap(),
        ReplayOutcome::Replayed,
        "failed_in_salesforce is replayable"
    );
    assert_eq!(
        store.confirm(&old, DELIVERED_AT + 30).await.unwrap(),
        Confirmation::Unchanged,
        "pending: nothing to confirm"
    );
    let seq = claim_one(&*store, DELIVERED_AT + 40).await;
    store
        .finish_attempt(seq, record(DELIVERED_AT + 40, 200), Transition::Delivered)
        .await
        .unwrap();
    assert_eq!(
        store.confirm(&old, DELIVERED_AT + 50).await.unwrap(),
        Confirmation::Unchanged,
        "the applied record does not undo the replay"
    );
    assert_eq!(status(&*store, "e1").await, EventStatus::Delivered);
    // A new record of the new delivery does.
    let again = failure("a0X2", "e1", DELIVERED_AT + 40, false);
    assert_eq!(
        store.confirm(&again, DELIVERED_AT + 60).await.unwrap(),
        Confirmation::FailedInSalesforce
    );
}

async fn a_record_older_than_the_delivery_or_of_an_unknown_event_changes_nothing(store: Arc<dyn Store>) {
    delivered(&*store, "e1", DELIVERED_AT).await;
    let older = failure("a0X1", "e1", DELIVERED_AT - DELIVERY_SLACK_MS - 1_000, false);
    assert_eq!(
        store.confirm(&older, DELIVERED_AT).await.unwrap(),
        Confirmation::Unchanged
    );
    assert_eq!(status(&*store, "e1").await, EventStatus::Delivered);
    let unknown = failure("a0X9", "never-here", DELIVERED_AT, false);
    assert_eq!(
        store.confirm(&unknown, DELIVERED_AT).await.unwrap(),
        Confirmation::NotStored
    );
    // A pending event is not touched.
    store.insert(event("p1", "order-p1", 2)).await.unwrap();
    let pending = failure("a0X3", "p1", DELIVERED_AT, false);
    assert_eq!(
        store.confirm(&pending, DELIVERED_AT).await.unwrap(),
        Confirmation::Unchanged
    );
    assert_eq!(status(&*store, "p1").await, EventStatus::Pending);
}

async fn pruning_keeps_failed_events_and_bulk_replay_takes_them(store: Arc<dyn Store>) {
    delivered(&*store, "e1", DELIVERED_AT).await;
    delivered(&*store, "e2", DELIVERED_AT).await;
    store
        .confirm(&failure("a0X1", "e1", DELIVERED_AT, false), DELIVERED_AT)
        .await
        .unwrap();
    assert_eq!(store.prune(i64::MAX).await.unwrap(), 1, "only the delivered one");
    assert_eq!(status(&*store, "e1").await, EventStatus::FailedInSalesforce);
    assert_eq!(
        store
            .replay_batch(
                EventStatus::FailedInSalesforce,
                None,
                100,
                ReplayedBy::CommandLine,
                DELIVERED_AT + 1
            )
            .await
            .unwrap(),
        1
    );
    assert_eq!(status(&*store, "e1").await, EventStatus::Pending);
}

macro_rules! confirm_cases {
    ($engine:ident, $open:expr; $($case:ident),+) => {
        mod $engine {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some((store, _guard)) = $open(stringify!($case)).await else {
                        return;
                    };
                    super::$case(store).await;
                }
            )+
        }
    };
}

macro_rules! every_case {
    ($engine:ident, $open:expr) => {
        confirm_cases!($engine, $open;
            a_record_fails_a_delivered_event_once_and_processing_recovers_it,
            a_replayed_event_is_not_failed_again_by_the_old_record,
            a_record_older_than_the_delivery_or_of_an_unknown_event_changes_nothing,
            pruning_keeps_failed_events_and_bulk_replay_takes_them
        );
    };
}

every_case!(sqlite, super::open_sqlite);
every_case!(postgres, super::open_postgres);
