//! The delivery worker driven one step at a time: claim, deliver, record — no polling, no waits.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dr_sf_bridge::delivery::{CircuitBreaker, RetryPolicy, Worker};
use dr_sf_bridge::domain::{EventId, EventType, OrderKey};
use dr_sf_bridge::metrics::Metrics;
use dr_sf_bridge::store::sqlite::SqliteStore;
use dr_sf_bridge::store::{EventStatus, NewEvent, Store};
use dr_sf_bridge::support::clock::now_ms;
use tokio::sync::Notify;
use wiremock::ResponseTemplate;

use crate::salesforce_standin::*;

struct Bench {
    store: Arc<dyn Store>,
    worker: Worker,
    _dir: tempfile::TempDir,
}

fn bench(sf: &SalesforceStandIn, max_in_flight: usize) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("w.db")).unwrap());
    let worker = Worker {
        mode: dr_sf_bridge::domain::Mode::Test,
        store: store.clone(),
        client: sf.apex_client(Duration::from_secs(5)),
        policy: RetryPolicy {
            schedule: vec![Duration::ZERO, Duration::from_secs(60)],
            max_attempts_on_400: 3,
        },
        breaker: Arc::new(CircuitBreaker::new(100, Duration::from_secs(60))),
        pacer: Arc::new(dr_sf_bridge::delivery::Pacer::new(
            max_in_flight,
            false,
            0,
            Duration::from_secs(300),
            &Metrics::new(),
            dr_sf_bridge::domain::Mode::Test,
        )),
        max_in_flight,
        lease: Duration::from_secs(60),
        poll_interval: Duration::from_secs(1),
        wake: Arc::new(Notify::new()),
        metrics: Arc::new(Metrics::new()),
        sign_in: None,
        health: Default::default(),
    };
    Bench {
        store,
        worker,
        _dir: dir,
    }
}

async fn insert(store: &dyn Store, id: &str, order: &str) {
    store
        .insert(NewEvent {
            id: EventId::parse(id).unwrap(),
            event_type: EventType::parse("order.accepted").unwrap(),
            live_mode: false,
            order_key: OrderKey::from_data_object(&serde_json::json!({ "id": order })),
            body: Bytes::from(format!(r#"{{"id":"{id}","type":"order.accepted"}}"#)),
            status: EventStatus::Pending,
            reason: None,
            received_at_ms: now_ms(),
        })
        .await
        .unwrap();
}

async fn status(store: &dyn Store, id: &str) -> EventStatus {
    store.get(&EventId::parse(id).unwrap()).await.unwrap().unwrap().0.status
}

#[tokio::test]
async fn one_step_delivers_each_due_order_once_and_records_it() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).expect(2).mount(&sf.server).await;
    let b = bench(&sf, 8);
    insert(&*b.store, "a1", "A").await;
    insert(&*b.store, "a2", "A").await;
    insert(&*b.store, "b1", "B").await;

    assert_eq!(b.worker.step().await.unwrap(), 2, "a2 waits behind a1");
    assert_eq!(status(&*b.store, "a1").await, EventStatus::Delivered);
    assert_eq!(status(&*b.store, "b1").await, EventStatus::Delivered);
    assert_eq!(status(&*b.store, "a2").await, EventStatus::Pending);
    assert_eq!(
        b.store
            .get(&EventId::parse("a1").unwrap())
            .await
            .unwrap()
            .unwrap()
            .1
            .len(),
        1
    );
}

#[tokio::test]
async fn a_failed_step_schedules_the_retry_and_the_next_step_waits_for_it() {
    let sf = SalesforceStandIn::start().await;
    apex(sf_error(503, "SERVER_UNAVAILABLE", "maintenance"))
        .expect(1)
        .mount(&sf.server)
        .await;
    let b = bench(&sf, 8);
    insert(&*b.store, "e1", "O").await;

    assert_eq!(b.worker.step().await.unwrap(), 1);
    let (summary, attempts) = b.store.get(&EventId::parse("e1").unwrap()).await.unwrap().unwrap();
    assert_eq!(summary.status, EventStatus::Pending);
    assert_eq!(attempts[0].status_code, Some(503));
    assert!(
        summary.next_attempt_at_ms.unwrap() > now_ms() + 30_000,
        "the schedule's 60 s"
    );
    assert_eq!(b.worker.step().await.unwrap(), 0, "not due yet");
}

#[tokio::test]
async fn a_step_claims_no_more_than_max_in_flight() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).expect(3).mount(&sf.server).await;
    let b = bench(&sf, 2);
    for n in 0..3 {
        insert(&*b.store, &format!("e{n}"), &format!("o{n}")).await;
    }
    assert_eq!(b.worker.step().await.unwrap(), 2);
    assert_eq!(b.worker.step().await.unwrap(), 1);
    assert_eq!(b.worker.step().await.unwrap(), 0);
}
