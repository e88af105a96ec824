//! The delivery worker driven one round at a time through the relay's own workers: post, deliver,
//! assert — no polling, no waits. The clock moves only when the test says so.

use std::time::Duration;

use dr_sf_bridge::store::EventStatus;
use wiremock::ResponseTemplate;

use crate::relay_helpers::*;
use crate::salesforce_standin::*;

/// A stepped relay: a retry a minute after the first failure, then dead.
async fn stepped(sf: SalesforceStandIn, max_in_flight: &str) -> TestRelay {
    spawn_stepped_app_with(
        sf,
        &[
            ("delivery.retry_schedule", "0s,60s"),
            ("delivery.breaker_threshold", "100"),
            ("salesforce.max_in_flight", max_in_flight),
        ],
    )
    .await
}

#[tokio::test]
async fn one_delivery_round_delivers_each_due_order_once_and_records_it() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).expect(3).mount(&sf.server).await;
    let relay = stepped(sf, "8").await;
    relay.accept(&event("order.accepted", "a1", "A")).await;
    relay.accept(&event("order.complete", "a2", "A")).await;
    relay.accept(&event("order.accepted", "b1", "B")).await;

    assert_eq!(relay.claim_round().await, 2, "a2 waits behind a1");
    assert_eq!(relay.status_of("a1").await, Some(EventStatus::Delivered));
    assert_eq!(relay.status_of("b1").await, Some(EventStatus::Delivered));
    assert_eq!(relay.status_of("a2").await, Some(EventStatus::Pending));
    assert_eq!(relay.stored("a1").await.1.len(), 1, "one attempt recorded");

    assert_eq!(relay.deliver_due().await, 1, "a2, now first of its order");
    assert_eq!(relay.status_of("a2").await, Some(EventStatus::Delivered));
    let mut delivered = relay.sf.delivered_ids().await;
    // The first two ran side by side: only their set is fixed.
    delivered[..2].sort();
    assert_eq!(delivered, ["a1", "b1", "a2"]);
}

#[tokio::test]
async fn a_failed_delivery_is_retried_when_the_schedule_says_and_not_before() {
    let sf = SalesforceStandIn::start().await;
    apex(sf_error(503, "SERVER_UNAVAILABLE", "maintenance"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&sf.server)
        .await;
    apex(ResponseTemplate::new(200)).expect(1).mount(&sf.server).await;
    let relay = stepped(sf, "8").await;
    relay.accept(&event("order.accepted", "e1", "O")).await;

    assert_eq!(relay.deliver_due().await, 1);
    let (summary, attempts) = relay.stored("e1").await;
    assert_eq!(summary.status, EventStatus::Pending);
    assert_eq!(attempts[0].status_code, Some(503));
    let wait = summary.next_attempt_at_ms.unwrap() - attempts[0].at_ms;
    assert!(
        (54_000..=66_000).contains(&wait),
        "the schedule's 60 s ± 10%: {wait} ms"
    );

    relay.advance(Duration::from_secs(50));
    assert_eq!(relay.deliver_due().await, 0, "not due 50 s later");
    relay.advance(Duration::from_secs(20));
    assert_eq!(relay.deliver_due().await, 1, "due 70 s later");
    assert_eq!(relay.status_of("e1").await, Some(EventStatus::Delivered));
}

#[tokio::test]
async fn a_round_claims_no_more_than_max_in_flight() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).expect(3).mount(&sf.server).await;
    let relay = stepped(sf, "2").await;
    for n in 0..3 {
        relay
            .accept(&event("order.accepted", &format!("e{n}"), &format!("o{n}")))
            .await;
    }
    assert_eq!(relay.claim_round().await, 2);
    assert_eq!(relay.claim_round().await, 1);
    assert_eq!(relay.claim_round().await, 0);
}

/// Each wake-up of the worker's loop is a claim, a transaction on the store: a delivery rings it
/// when Salesforce answers if the loop may be waiting for that slot…
#[tokio::test]
async fn salesforce_answering_wakes_a_worker_that_waits_for_the_slot() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).expect(2).mount(&sf.server).await;
    let relay = stepped(sf, "1").await;
    relay.accept(&event("order.accepted", "s1", "A")).await;
    relay.accept(&event("order.accepted", "s2", "B")).await;
    assert!(relay.take_wake(), "an event stored wakes the loop");

    assert_eq!(relay.claim_round().await, 1, "one slot");
    assert!(relay.take_wake(), "s2 waited for the slot s1's answer freed");
    assert_eq!(relay.claim_round().await, 1);
}

/// …and not otherwise: not when its round found fewer due events than free slots, nor when the
/// outcome is recorded (the loop waits on the delivery's end itself). At DR's usual trickle those
/// wake-ups were most of the store's transactions.
#[tokio::test]
async fn a_delivery_with_slots_to_spare_wakes_nobody() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).expect(1).mount(&sf.server).await;
    let relay = stepped(sf, "8").await;
    relay.accept(&event("order.accepted", "t1", "A")).await;
    assert!(relay.take_wake(), "an event stored wakes the loop");

    assert_eq!(relay.claim_round().await, 1);
    assert_eq!(relay.status_of("t1").await, Some(EventStatus::Delivered));
    assert!(!relay.take_wake(), "t1's answer and its record rang the loop");
}
