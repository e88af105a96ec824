//! From the relay to Salesforce: bytes, dedup, ordering, retries, dead events, the breaker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dr_sf_bridge::domain::EventId;
use dr_sf_bridge::store::EventStatus;
use serde_json::Value;
use wiremock::{Request, Respond, ResponseTemplate};

use crate::helpers::*;
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

const FIXTURES: [&str; 8] = dr_sf_bridge::domain::EventType::SUPPORTED;

fn event_id_of(request: &Request) -> String {
    serde_json::from_slice::<Value>(&request.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn apex_ok(sf: &SalesforceStandIn) {
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
}

#[tokio::test]
async fn each_fixture_is_delivered_with_a_byte_identical_body() {
    let sf = SalesforceStandIn::start().await;
    apex_ok(&sf).await;
    let relay = spawn_app_with(sf, &[]).await;
    let mut sent = Vec::new();
    for name in FIXTURES {
        let bytes = fixture_bytes(name);
        assert_eq!(relay.post_event(&bytes).await.status(), 202, "{name}");
        sent.push(bytes);
    }
    wait_until("8 deliveries", || async { relay.sf.apex_requests().await.len() >= 8 }).await;
    let received: Vec<Vec<u8>> = relay.sf.apex_requests().await.into_iter().map(|r| r.body).collect();
    assert_eq!(received, sent, "same bytes, and (one order) in the order received");
    for request in relay.sf.apex_requests().await {
        assert_eq!(request.headers["content-type"], "application/json");
    }
}

/// A delivery's line says what happened — the event, Salesforce's status, the outcome — and its
/// span is not given the fields only a trace reads (traces are off here): each such record cost
/// every delivery its formatting, and repeated the line's status.
#[tokio::test]
async fn a_delivery_line_names_its_event_status_and_outcome_once() {
    let sf = SalesforceStandIn::start().await;
    apex_ok(&sf).await;
    let relay = spawn_app_with(sf, &[]).await;
    let body = event("order.accepted", "evt-line", "o-line");
    assert_eq!(relay.post_event(&body).await.status(), 202);
    relay.wait_for_status("evt-line", EventStatus::Delivered).await;
    let logs = relay.logs.text();
    let line = logs
        .lines()
        .find(|l| l.contains("delivered to Salesforce"))
        .unwrap_or_else(|| panic!("no delivery line: {logs}"));
    for part in ["evt-line", "status=200", "outcome=\"delivered\""] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    for trace_only in ["http.response.status_code", "counted"] {
        assert!(!line.contains(trace_only), "{trace_only} is the trace's: {line}");
    }
}

#[tokio::test]
async fn duplicate_event_is_delivered_once() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).expect(1).mount(&sf.server).await;
    let relay = spawn_app_with(sf, &[]).await;
    let body = event("order.accepted", "evt-twice", "o-1");
    assert_eq!(relay.post_event(&body).await.status(), 202);
    relay.wait_for_status("evt-twice", EventStatus::Delivered).await;
    // DR re-signs each retry: a new signature, the same event.
    assert_eq!(relay.post_event(&body).await.status(), 200);
    let stats = relay.store.stats().await.unwrap();
    assert_eq!((stats.pending, stats.delivered), (0, 1));
    assert_eq!(relay.sf.apex_requests().await.len(), 1);
}

/// Answers 503 to the first `n` deliveries of the listed event ids, 200 otherwise.
struct Flaky {
    failures: HashMap<String, usize>,
    seen: Mutex<HashMap<String, usize>>,
}

impl Respond for Flaky {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let id = event_id_of(request);
        let mut seen = self.seen.lock().unwrap();
        let count = seen.entry(id.clone()).or_default();
        *count += 1;
        if *count <= self.failures.get(&id).copied().unwrap_or(0) {
            ResponseTemplate::new(503).set_body_string("<html>Service Unavailable</html>")
        } else {
            ResponseTemplate::new(200)
        }
    }
}

#[tokio::test]
async fn events_of_one_order_are_delivered_in_order_while_other_orders_proceed() {
    let sf = SalesforceStandIn::start().await;
    let flaky = Flaky {
        failures: HashMap::from([("x-accepted".to_owned(), 2)]),
        seen: Mutex::new(HashMap::new()),
    };
    apex(flaky).mount(&sf.server).await;
    // Retries after 300 ms and 600 ms: long enough to see the other order pass.
    let relay = spawn_app_with(sf, &[("delivery.retry_schedule", "0s,300ms,600ms,1s")]).await;

    relay.accept(&event("order.accepted", "x-accepted", "X")).await;
    relay.accept(&event("order.complete", "x-complete", "X")).await;
    relay.accept(&event("order.accepted", "y-accepted", "Y")).await;
    relay.wait_for_status("x-complete", EventStatus::Delivered).await;
    relay.wait_for_status("y-accepted", EventStatus::Delivered).await;

    let sequence: Vec<String> = relay.sf.apex_requests().await.iter().map(event_id_of).collect();
    let position = |id: &str| sequence.iter().position(|s| s == id).unwrap();
    let last_x_accepted = sequence.iter().rposition(|s| s == "x-accepted").unwrap();
    assert_eq!(
        sequence.iter().filter(|s| *s == "x-accepted").count(),
        3,
        "{sequence:?}"
    );
    assert_eq!(
        sequence.iter().filter(|s| *s == "x-complete").count(),
        1,
        "{sequence:?}"
    );
    assert!(
        position("x-complete") > last_x_accepted,
        "complete waited for accepted: {sequence:?}"
    );
    assert!(
        position("y-accepted") < last_x_accepted,
        "order Y was not held up: {sequence:?}"
    );
}

#[tokio::test]
async fn an_expired_session_is_delivered_with_one_extra_grant() {
    let sf = SalesforceStandIn::start().await;
    sf.expire_the_first_session().await;
    let relay = spawn_app_with(sf, &[]).await;
    relay.accept(&event("order.accepted", "evt-401", "o-1")).await;
    relay.wait_for_status("evt-401", EventStatus::Delivered).await;
    assert_eq!(relay.sf.token_requests().await.len(), 2);
    let (summary, attempts) = relay.stored("evt-401").await;
    assert_eq!(summary.attempts, 1, "the replay is not counted as an attempt");
    assert_eq!(attempts.len(), 1);
}

#[tokio::test]
async fn a_missing_package_makes_the_event_dead_at_once() {
    let sf = SalesforceStandIn::start().await;
    apex(sf_error(404, "NOT_FOUND", "Could not find a match for URL"))
        .expect(1)
        .mount(&sf.server)
        .await;
    let relay = spawn_app_with(sf, &[]).await;
    relay.accept(&event("order.accepted", "evt-404", "o-1")).await;
    relay.wait_for_status("evt-404", EventStatus::Dead).await;
    let (summary, attempts) = relay.stored("evt-404").await;
    assert_eq!(summary.attempts, 1);
    assert!(summary.last_error.unwrap().contains("digitalriverv3"));
    assert_eq!(attempts[0].status_code, Some(404));
}

#[tokio::test]
async fn a_failing_salesforce_is_retried_on_schedule_then_the_event_is_dead() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(503).set_body_string("<html>maintenance</html>"))
        .expect(4)
        .mount(&sf.server)
        .await;
    let relay = spawn_stepped_app_with(sf, &[("delivery.retry_schedule", "0s,1m,5m,30m")]).await;
    relay.accept(&event("order.accepted", "evt-503", "o-1")).await;

    // Each retry falls due at its scheduled delay (±10% jitter), not a moment before.
    assert_eq!(relay.deliver_due().await, 1, "the first attempt at once");
    for (scheduled, attempts) in [(60u64, 1usize), (300, 2), (1800, 3)] {
        relay.advance(Duration::from_secs(scheduled * 85 / 100));
        assert_eq!(relay.deliver_due().await, 0, "not due at 85% of {scheduled} s");
        assert_eq!(relay.stored("evt-503").await.1.len(), attempts);
        relay.advance(Duration::from_secs(scheduled * 30 / 100));
        assert_eq!(relay.deliver_due().await, 1, "due by 115% of {scheduled} s");
    }

    let (summary, attempts) = relay.stored("evt-503").await;
    assert_eq!(
        summary.status,
        EventStatus::Dead,
        "dead after the schedule's last entry"
    );
    assert_eq!(summary.attempts, 4);
    assert_eq!(attempts.len(), 4);
    assert!(attempts.iter().all(|a| a.status_code == Some(503)));
    assert!(
        attempts[0].excerpt.as_deref().unwrap().contains("maintenance"),
        "audit excerpt kept"
    );
    for (i, scheduled_ms) in [60_000i64, 300_000, 1_800_000].iter().enumerate() {
        let gap = attempts[i + 1].at_ms - attempts[i].at_ms;
        assert!(gap >= scheduled_ms * 9 / 10, "gap {i}: {gap} ms < {scheduled_ms} ms");
    }
}

#[tokio::test]
async fn repeated_400s_end_in_dead_after_the_configured_attempts() {
    let sf = SalesforceStandIn::start().await;
    apex(sf_error(400, "INVALID_INPUT", "Order not found"))
        .expect(2)
        .mount(&sf.server)
        .await;
    let relay = spawn_stepped_app_with(
        sf,
        &[
            ("delivery.max_attempts_on_400", "2"),
            ("delivery.retry_schedule", "0s,1m,1m,1m,1m"),
        ],
    )
    .await;
    relay.accept(&event("order.accepted", "evt-400s", "o-1")).await;

    assert_eq!(relay.deliver_due().await, 1);
    assert_eq!(relay.status_of("evt-400s").await, Some(EventStatus::Pending));
    relay.advance(Duration::from_secs(70));
    assert_eq!(relay.deliver_due().await, 1);
    assert_eq!(
        relay.status_of("evt-400s").await,
        Some(EventStatus::Dead),
        "dead at the second 400, with the schedule not yet spent"
    );
    relay.advance(Duration::from_secs(3600));
    assert_eq!(relay.deliver_due().await, 0, "and never tried again");
}

#[tokio::test]
async fn the_breaker_pauses_deliveries_when_salesforce_fails_for_everyone() {
    let sf = SalesforceStandIn::start().await;
    let failing = apex(ResponseTemplate::new(503)).mount_as_scoped(&sf.server).await;
    let relay = spawn_stepped_app_with(
        sf,
        &[
            ("salesforce.max_in_flight", "1"),
            ("delivery.breaker_threshold", "3"),
            ("delivery.breaker_cooldown_secs", "30"),
            ("delivery.retry_schedule", "0s,1h"),
        ],
    )
    .await;
    for i in 0..5 {
        relay
            .accept(&event("order.accepted", &format!("evt-b{i}"), &format!("o-b{i}")))
            .await;
    }
    assert_eq!(relay.deliver_due().await, 3, "three failures open the breaker");
    assert!(
        relay
            .metrics()
            .await
            .contains("drsf_delivery_breaker_open{target=\"test\"} 1")
    );
    assert_eq!(
        relay.sf.apex_requests().await.len(),
        3,
        "two events kept their attempts"
    );
    relay.advance(Duration::from_secs(20));
    assert_eq!(relay.deliver_due().await, 0, "nothing during the cool-down");

    drop(failing);
    apex_ok(&relay.sf).await;
    relay.advance(Duration::from_secs(15));
    assert_eq!(
        relay.deliver_due().await,
        5,
        "after the cool-down: one trial, then the rest, and the three the outage failed"
    );
    for i in 0..5 {
        assert_eq!(
            relay.status_of(&format!("evt-b{i}")).await,
            Some(EventStatus::Delivered)
        );
    }
    assert_eq!(
        relay.sf.apex_requests().await.len(),
        8,
        "three failures, then each event once"
    );
    assert!(
        relay
            .metrics()
            .await
            .contains("drsf_delivery_breaker_open{target=\"test\"} 0")
    );
}

#[tokio::test]
async fn when_salesforce_is_back_what_failed_during_the_outage_is_delivered_without_waiting_out_its_schedule() {
    let sf = SalesforceStandIn::start().await;
    let failing = apex(ResponseTemplate::new(503)).mount_as_scoped(&sf.server).await;
    let relay = spawn_stepped_app_with(
        sf,
        &[
            ("salesforce.max_in_flight", "1"),
            ("delivery.breaker_threshold", "3"),
            ("delivery.breaker_cooldown_secs", "30"),
            ("delivery.retry_schedule", "0s,1h,1h"),
        ],
    )
    .await;
    relay.accept(&event("order.accepted", "evt-r0", "o-r0")).await;
    relay.accept(&event("order.complete", "evt-r0-next", "o-r0")).await;
    for i in 1..4 {
        relay
            .accept(&event("order.accepted", &format!("evt-r{i}"), &format!("o-r{i}")))
            .await;
    }
    assert_eq!(relay.deliver_due().await, 3, "three failures open the breaker");
    for i in 0..3 {
        let (summary, _) = relay.stored(&format!("evt-r{i}")).await;
        assert_eq!(summary.attempts, 1, "evt-r{i} failed once and waits an hour");
    }

    drop(failing);
    apex_ok(&relay.sf).await;
    relay.advance(Duration::from_secs(35));
    assert_eq!(
        relay.deliver_due().await,
        5,
        "the trial succeeds, and the events the outage failed follow it, not an hour later"
    );
    let requests = relay.sf.delivered_ids().await;
    let delivered = &requests[3..];
    assert_eq!(delivered.len(), 5, "each once after the three failures: {requests:?}");
    assert_eq!(
        delivered[0], "evt-r3",
        "the trial: the only event due at the end of the cool-down"
    );
    let position = |id: &str| delivered.iter().position(|d| d == id).unwrap();
    assert!(
        position("evt-r0") < position("evt-r0-next"),
        "an order's events in order"
    );
    assert_eq!(relay.stored("evt-r0").await.1.len(), 2, "one failure, one delivery");
}

#[tokio::test]
async fn a_refused_sign_in_does_not_burn_attempts_or_lock_the_user_out() {
    let sf = SalesforceStandIn::bare().await;
    token_endpoint(oauth_error("invalid_grant", "authentication failure"))
        .expect(1)
        .mount(&sf.server)
        .await;
    let relay = spawn_app_with(sf, &[]).await;
    for i in 0..3 {
        relay
            .accept(&event("order.accepted", &format!("evt-pw{i}"), &format!("o-pw{i}")))
            .await;
    }
    wait_until("the breaker to open", || async {
        relay
            .metrics()
            .await
            .contains("drsf_delivery_breaker_open{target=\"test\"} 1")
    })
    .await;
    for i in 0..3 {
        let (summary, _) = relay.stored(&format!("evt-pw{i}")).await;
        assert_eq!(summary.status, EventStatus::Pending);
        assert_eq!(summary.attempts, 0);
    }
    assert!(relay.sf.apex_requests().await.is_empty());
}

/// An Apex resource that takes 100 ms per request and remembers the most requests it saw at once.
async fn slow_apex() -> (String, Arc<AtomicUsize>) {
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (in_flight, max) = (now.clone(), peak.clone());
    let app = axum::Router::new().route(
        APEX_PATH,
        axum::routing::post(move || {
            let (in_flight, max) = (in_flight.clone(), max.clone());
            async move {
                let current = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(current, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, peak)
}

#[tokio::test]
async fn concurrency_toward_salesforce_is_bounded_by_max_in_flight() {
    let (apex_url, peak) = slow_apex().await;
    let sf = SalesforceStandIn::start().await;
    let relay = spawn_app_with(
        sf,
        &[
            ("salesforce.max_in_flight", "3"),
            ("salesforce.my_domain_url", &apex_url),
        ],
    )
    .await;
    for i in 0..12 {
        relay
            .accept(&event("order.accepted", &format!("evt-c{i}"), &format!("o-c{i}")))
            .await;
    }
    wait_until("12 deliveries", || async {
        relay.store.stats().await.unwrap().delivered == 12
    })
    .await;
    assert_eq!(
        peak.load(Ordering::SeqCst),
        3,
        "twelve different orders, never more than three at once"
    );
}

#[tokio::test]
async fn a_pending_event_is_delivered_after_a_restart() {
    let sf = SalesforceStandIn::start().await;
    let failing = apex(ResponseTemplate::new(503)).mount_as_scoped(&sf.server).await;
    let relay = spawn_app_with(sf, &[("delivery.retry_schedule", "0s,300ms,300ms")]).await;
    relay.accept(&event("order.accepted", "evt-restart", "o-1")).await;
    let id = EventId::parse("evt-restart").unwrap();
    wait_until("the first attempt", || async {
        relay.store.get(&id).await.unwrap().unwrap().0.attempts == 1
    })
    .await;
    let (sf, dir) = relay.stop().await;
    drop(failing);
    apex_ok(&sf).await;

    let restarted = spawn_app_in(sf, dir, &[("delivery.retry_schedule", "0s,300ms,300ms")]).await;
    restarted.wait_for_status("evt-restart", EventStatus::Delivered).await;
}

#[tokio::test]
async fn a_multi_line_apex_error_is_one_log_line() {
    let sf = SalesforceStandIn::start().await;
    apex(sf_error(
        500,
        "APEX_ERROR",
        "System.DmlException: Insert failed.\n\nClass.digitalriverv3.WebhookHandler.handle: line 42, column 1",
    ))
    .mount(&sf.server)
    .await;
    let relay = spawn_stepped_app_with(sf, &[]).await;
    relay.accept(&event("order.accepted", "evt-apex", "o-apex")).await;
    relay.deliver_due().await;
    let logs = relay.logs.text();
    let failed = logs
        .lines()
        .find(|l| l.contains("delivery failed") || l.contains("event is dead"))
        .expect("the failure is logged");
    assert!(failed.contains("Insert failed. Class.digitalriverv3"), "{failed}");
    assert!(!logs.lines().any(|l| l.starts_with("Class.digitalriverv3")), "{logs}");
}
