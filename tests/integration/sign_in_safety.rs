//! Sign-in safety: Salesforce locks an integration user out after repeated failed sign-ins, so
//! the relay never turns a refusal into a stream of grants — not per attempt, not per restart.

use crate::relay_helpers::*;
use crate::salesforce_standin::*;

#[tokio::test]
async fn a_401_with_a_fresh_token_pauses_instead_of_signing_in_again_per_attempt() {
    let sf = SalesforceStandIn::start().await;
    apex(sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid"))
        .expect(2)
        .mount(&sf.server)
        .await;
    // Every attempt due at once: only the pause keeps the next one from signing in again.
    let relay = spawn_stepped_app_with(
        sf,
        &[
            ("delivery.retry_schedule", "0s,0s,0s,0s,0s"),
            ("salesforce.max_in_flight", "1"),
            ("salesforce.token_failure_cooldown_secs", "300"),
        ],
    )
    .await;
    relay.accept(&event("order.accepted", "evt-401", "o-1")).await;

    assert_eq!(
        relay.deliver_due().await,
        1,
        "one attempt, then the event waits for the cool-down"
    );
    assert_eq!(
        relay.sf.token_requests().await.len(),
        2,
        "one grant, one re-grant, then no more"
    );
    let (summary, attempts) = relay.stored("evt-401").await;
    assert_eq!(summary.attempts, 0, "not counted against the event");
    let wait = summary.next_attempt_at_ms.unwrap() - attempts[0].at_ms;
    assert!(wait >= 250_000, "paused for the cool-down, not retried: {wait} ms");
}

/// Posts an event like DR and waits until its first attempt is recorded.
async fn accept_and_await_an_attempt(relay: &TestRelay, id: &str, order: &str) {
    relay.accept(&event("order.accepted", id, order)).await;
    wait_until("the attempt is recorded", || async {
        relay.stored(id).await.1.len() == 1
    })
    .await;
}

async fn refusing_org() -> SalesforceStandIn {
    let sf = SalesforceStandIn::bare().await;
    token_endpoint(oauth_error("invalid_grant", "authentication failure"))
        .mount(&sf.server)
        .await;
    sf
}

#[tokio::test]
async fn the_configured_cool_down_is_honoured() {
    let relay = spawn_app_with(refusing_org().await, &[("salesforce.token_failure_cooldown_secs", "7")]).await;
    accept_and_await_an_attempt(&relay, "evt-refused", "o-1").await;
    let (summary, attempts) = relay.stored("evt-refused").await;
    // From the attempt's own time, not the test's: the cool-down left when it was refused.
    let wait_ms = summary.next_attempt_at_ms.unwrap() - attempts[0].at_ms;
    assert!(
        (5_000..=7_000).contains(&wait_ms),
        "next attempt in {wait_ms} ms, not the old fixed 300 s"
    );
    assert!(
        relay
            .metrics()
            .await
            .contains("drsf_salesforce_sign_in_refused{target=\"test\"} 1"),
        "{}",
        relay.metrics().await
    );
}

#[tokio::test]
async fn a_refused_sign_in_is_not_tried_again_after_a_restart() {
    let relay = spawn_app_with(refusing_org().await, &[]).await;
    accept_and_await_an_attempt(&relay, "evt-before", "o-1").await;
    let (sf, dir) = relay.stop().await;
    assert_eq!(sf.token_requests().await.len(), 1);

    let relay = spawn_app_in(sf, dir, &[]).await;
    accept_and_await_an_attempt(&relay, "evt-after", "o-2").await;
    let (_, attempts) = relay.stored("evt-after").await;
    assert!(
        attempts[0].error.as_deref().unwrap_or_default().contains("refused"),
        "{attempts:?}"
    );
    assert_eq!(
        relay.sf.token_requests().await.len(),
        1,
        "the restart did not sign in again"
    );
}

#[tokio::test]
async fn fixed_credentials_are_tried_at_once_after_a_restart() {
    let relay = spawn_app_with(refusing_org().await, &[]).await;
    accept_and_await_an_attempt(&relay, "evt-before", "o-1").await;
    let (sf, dir) = relay.stop().await;

    let relay = spawn_app_in(sf, dir, &[("salesforce.password", "TheFixedPassw0rd-SECTOKENabc")]).await;
    relay.accept(&event("order.accepted", "evt-after", "o-2")).await;
    wait_until("the new credentials are tried", || async {
        relay.sf.token_requests().await.len() == 2
    })
    .await;
}

/// A stepped relay whose old password Salesforce refuses, holding `evt-held` for the cool-down;
/// the org takes one delivery once the password is fixed.
async fn holding_an_event_for_a_refused_password() -> TestRelay {
    let sf = SalesforceStandIn::start().await;
    apex(wiremock::ResponseTemplate::new(200))
        .expect(1)
        .mount(&sf.server)
        .await;
    let old_password = [("salesforce.password", "AnOldPassw0rd-SECTOKENabc")];
    let relay = spawn_stepped_app_with(sf, &old_password).await;
    relay.accept(&event("order.accepted", "evt-held", "o-1")).await;
    assert_eq!(relay.deliver_due().await, 1, "refused, then held for the cool-down");
    relay
}

#[tokio::test]
async fn events_held_by_a_refused_sign_in_are_delivered_at_once_when_fixed_credentials_sign_in_after_a_restart() {
    let relay = holding_an_event_for_a_refused_password().await;
    let (summary, attempts) = relay.stored("evt-held").await;
    assert_eq!(attempts[0].outcome, "auth_rejected");
    assert!(summary.next_attempt_at_ms.unwrap() - attempts[0].at_ms >= 250_000);
    let (sf, dir) = relay.stop().await;

    let relay = spawn_stepped_app_in(sf, dir, &[]).await;
    assert_eq!(
        relay.deliver_due().await,
        1,
        "delivered now, not at the end of the old password's cool-down"
    );
    assert_eq!(
        relay.status_of("evt-held").await,
        Some(dr_sf_bridge::store::EventStatus::Delivered)
    );
    assert!(
        relay.logs.text().contains("the waiting events are due now"),
        "{}",
        relay.logs.text()
    );
}

/// One store serves a sandbox and production: fixing one org's credentials makes that org's held
/// events due, and leaves the other org's retries on their own schedule.
#[tokio::test]
async fn fixed_credentials_for_one_org_leave_the_other_orgs_retries_on_their_schedule() {
    use dr_sf_bridge::domain::{EventId, EventType, Mode, OrderKey};
    use dr_sf_bridge::store::{AttemptRecord, EventStatus, NewEvent, Transition};

    let relay = holding_an_event_for_a_refused_password().await;

    // Production's event in the same store: failed once, its retry half an hour away.
    let now = relay.clock.now_ms();
    let retry_at = now + 30 * 60 * 1000;
    relay
        .store
        .insert(NewEvent {
            id: EventId::parse("evt-live").unwrap(),
            event_type: EventType::parse("order.accepted").unwrap(),
            live_mode: true,
            order_key: OrderKey::from_text("o-live"),
            body: bytes::Bytes::from_static(b"{}"),
            status: EventStatus::Pending,
            reason: None,
            received_at_ms: now,
            source: Default::default(),
            trace_parent: None,
        })
        .await
        .unwrap();
    let claimed = relay
        .store
        .claim_due(Mode::Live, now, 1, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let failed = AttemptRecord {
        at_ms: now,
        status_code: Some(503),
        duration_ms: 1,
        outcome: "retry",
        error: Some("maintenance".into()),
        excerpt: None,
    };
    let later = Transition::RetryAt {
        at_ms: retry_at,
        counted: true,
        was_400: false,
    };
    relay.store.finish_attempt(claimed[0].seq, failed, later).await.unwrap();
    let (sf, dir) = relay.stop().await;

    let relay = spawn_stepped_app_in(sf, dir, &[]).await;
    assert_eq!(relay.deliver_due().await, 1, "the held event, delivered now");
    assert_eq!(relay.status_of("evt-held").await, Some(EventStatus::Delivered));
    let (live, _) = relay.stored("evt-live").await;
    assert_eq!(
        live.next_attempt_at_ms,
        Some(retry_at),
        "production's retry keeps its time"
    );
}
