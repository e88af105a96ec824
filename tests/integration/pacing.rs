//! Delivery paced by the org's own limits: a stand-in org with a capacity (requests beyond it at
//! once are refused with `ConcurrentPerOrgLongTxn`, as Salesforce refuses Apex requests past its
//! long-running limit), a daily allocation (`TotalRequests`) and a usage it reports in
//! `Sforce-Limit-Info` and at `/limits`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dr_sf_bridge::store::{EventFilter, EventStatus};
use serde_json::json;

use crate::helpers::*;
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

/// The org's Apex resource and `limits`, with the org's limits.
#[derive(Default)]
struct Org {
    capacity: usize,
    apex_latency: Duration,
    in_flight: AtomicUsize,
    accepted: AtomicUsize,
    refused: AtomicUsize,
    /// The day's allocation is spent: every Apex request is refused with `TotalRequests`.
    spent: AtomicBool,
    used: AtomicU64,
    max: AtomicU64,
    limits_asked: AtomicUsize,
}

impl Org {
    fn usage_header(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = format!(
            "api-usage={}/{}",
            self.used.load(Ordering::SeqCst),
            self.max.load(Ordering::SeqCst)
        );
        headers.insert("sforce-limit-info", HeaderValue::from_str(&value).unwrap());
        headers
    }

    fn limit_error(&self, message: &str) -> Response {
        let body = json!([{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}]);
        (StatusCode::FORBIDDEN, self.usage_header(), axum::Json(body)).into_response()
    }
}

async fn apex(State(org): State<Arc<Org>>) -> Response {
    if org.spent.load(Ordering::SeqCst) {
        org.refused.fetch_add(1, Ordering::SeqCst);
        return org.limit_error("TotalRequests Limit exceeded.");
    }
    let now = org.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    if now > org.capacity {
        org.in_flight.fetch_sub(1, Ordering::SeqCst);
        org.refused.fetch_add(1, Ordering::SeqCst);
        return org.limit_error("ConcurrentPerOrgLongTxn Limit exceeded");
    }
    tokio::time::sleep(org.apex_latency).await;
    org.in_flight.fetch_sub(1, Ordering::SeqCst);
    org.accepted.fetch_add(1, Ordering::SeqCst);
    org.used.fetch_add(1, Ordering::SeqCst);
    (StatusCode::OK, org.usage_header(), "").into_response()
}

async fn limits(State(org): State<Arc<Org>>) -> Response {
    org.limits_asked.fetch_add(1, Ordering::SeqCst);
    let (used, max) = (org.used.load(Ordering::SeqCst), org.max.load(Ordering::SeqCst));
    let body = json!({"DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)}});
    (StatusCode::OK, org.usage_header(), axum::Json(body)).into_response()
}

/// Serves `org` on a port of its own; answers its base URL.
async fn serve(org: Arc<Org>) -> String {
    let app = axum::Router::new()
        .route(APEX_PATH, post(apex))
        .route("/services/data/v60.0/limits", get(limits))
        .with_state(org);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// A relay whose token comes from the usual stand-in and whose Apex resource is `org`'s.
async fn relay_for(org: Arc<Org>, extra: &[(&str, &str)]) -> TestRelay {
    let sf = SalesforceStandIn::start().await;
    let address = serve(org).await;
    let mut overrides = vec![
        ("salesforce.my_domain_url", address.as_str()),
        ("delivery.rate_limit_min_delay_secs", "1"),
    ];
    overrides.extend_from_slice(extra);
    spawn_app_with(sf, &overrides).await
}

fn org(capacity: usize, latency_ms: u64) -> Arc<Org> {
    let org = Org {
        capacity,
        apex_latency: Duration::from_millis(latency_ms),
        max: AtomicU64::new(1_000_000),
        ..Org::default()
    };
    Arc::new(org)
}

async fn wait_for_pause(relay: &TestRelay) {
    poll_until(
        "the pause",
        Duration::from_secs(15),
        Duration::from_millis(20),
        || async {
            relay
                .metrics()
                .await
                .contains("drsf_delivery_paused{target=\"test\"} 1")
        },
    )
    .await;
}

/// Until the relay has asked the org's usage `times` times.
async fn wait_for_looks(org: &Org, times: usize) {
    poll_until(
        "looks at the usage",
        Duration::from_secs(15),
        Duration::from_millis(20),
        || async { org.limits_asked.load(Ordering::SeqCst) >= times },
    )
    .await;
}

async fn post_events(relay: &TestRelay, count: usize, prefix: &str) {
    for n in 0..count {
        relay
            .accept(&event(
                "order.accepted",
                &format!("{prefix}-{n}"),
                &format!("o-{prefix}-{n}"),
            ))
            .await;
    }
}

async fn delivered(relay: &TestRelay) -> u64 {
    relay.store.stats().await.unwrap().delivered
}

/// C at once or fewer: the relay's concurrency settles at 80–100% of C with under 2% of its
/// requests refused, and every refused event is delivered seconds later, uncounted.
async fn settles_near_capacity(capacity: usize, events: usize) {
    let org = org(capacity, 50);
    let relay = relay_for(org.clone(), &[]).await;
    post_events(&relay, events, "evt").await;
    // The org's load, sampled every 2 ms until the last event is delivered.
    let mut load = Vec::new();
    poll_until(
        "every event delivered",
        Duration::from_secs(60),
        Duration::from_millis(2),
        || {
            load.push((
                org.accepted.load(Ordering::SeqCst),
                org.in_flight.load(Ordering::SeqCst),
            ));
            let look = load.len().is_multiple_of(25);
            let relay = &relay;
            async move { look && delivered(relay).await == events as u64 }
        },
    )
    .await;

    let refused = org.refused.load(Ordering::SeqCst);
    let attempts = org.accepted.load(Ordering::SeqCst) + refused;
    assert!(
        (refused as f64) < 0.02 * attempts as f64,
        "C = {capacity}: {refused} of {attempts} requests refused"
    );
    // The steady part: while the second and third quarters of the events are delivered.
    let steady: Vec<usize> = load
        .iter()
        .filter(|(accepted, _)| (events / 4..events * 3 / 4).contains(accepted))
        .map(|(_, in_flight)| *in_flight)
        .collect();
    let mean = steady.iter().sum::<usize>() as f64 / steady.len() as f64;
    assert!(
        (capacity as f64 * 0.8..=capacity as f64).contains(&mean),
        "C = {capacity}: the org ran {mean:.1} at once on average (steady part)"
    );
    let metrics = relay.metrics().await;
    let limit: usize = metrics
        .lines()
        .find_map(|l| l.strip_prefix("drsf_delivery_concurrency_limit{target=\"test\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (capacity * 4 / 5..=capacity).contains(&limit),
        "C = {capacity}: limit {limit}"
    );

    // Each refusal was tried again in seconds, and not counted against its event.
    let all = relay
        .store
        .list(EventFilter {
            limit: events as u32,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        all.iter()
            .all(|e| e.status == EventStatus::Delivered && e.attempts == 1)
    );
    let mut congested = 0;
    for e in all.iter().take(events) {
        let (_, log) = relay.stored(&e.id).await;
        congested += log.iter().filter(|a| a.outcome == "congested").count();
    }
    assert_eq!(congested, refused, "every refusal is on record, as congested");
}

#[tokio::test]
async fn with_room_for_4_the_relay_settles_at_4_with_few_limit_errors() {
    settles_near_capacity(4, 300).await;
}

#[tokio::test]
async fn with_room_for_24_the_relay_settles_near_24_with_few_limit_errors() {
    settles_near_capacity(24, 1500).await;
}

#[tokio::test]
async fn a_spent_daily_allocation_pauses_every_delivery_and_resumes_by_itself() {
    let org = org(100, 5);
    org.spent.store(true, Ordering::SeqCst);
    org.used.store(1000, Ordering::SeqCst);
    org.max.store(1000, Ordering::SeqCst);
    // No reserve: the relay does not ask the usage first, and meets the refusal itself.
    let relay = relay_for(org.clone(), &[("salesforce.api_reserve_percent", "0")]).await;
    post_events(&relay, 10, "evt").await;
    wait_for_pause(&relay).await;
    let refused_at_pause = org.refused.load(Ordering::SeqCst);
    assert!(
        refused_at_pause <= 4,
        "at most the first round was sent: {refused_at_pause}"
    );
    wait_for_looks(&org, 2).await;
    assert_eq!(
        org.refused.load(Ordering::SeqCst),
        refused_at_pause,
        "nothing sent while the allocation is spent"
    );

    org.used.store(200, Ordering::SeqCst);
    org.spent.store(false, Ordering::SeqCst);
    poll_until(
        "delivered after the pause",
        Duration::from_secs(15),
        Duration::from_millis(20),
        || async { delivered(&relay).await == 10 },
    )
    .await;
    for n in 0..10 {
        let (summary, _) = relay.stored(&format!("evt-{n}")).await;
        assert_eq!(summary.attempts, 1, "the refusals are not counted against evt-{n}");
    }
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("drsf_delivery_pauses_total{target=\"test\",cause=\"daily_limit\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("drsf_delivery_paused{target=\"test\"} 0"));
    assert!(relay.logs.text().contains("daily API allocation is spent"));
}

#[tokio::test]
async fn usage_in_the_reserve_holds_every_delivery_until_it_falls() {
    let org = org(100, 5);
    org.used.store(950, Ordering::SeqCst);
    org.max.store(1000, Ordering::SeqCst);
    let relay = relay_for(org.clone(), &[("salesforce.api_reserve_percent", "10")]).await;
    post_events(&relay, 5, "evt").await;
    wait_for_pause(&relay).await;
    wait_for_looks(&org, 2).await;
    assert_eq!(
        org.accepted.load(Ordering::SeqCst) + org.refused.load(Ordering::SeqCst),
        0,
        "no delivery sent while usage is in the reserve"
    );
    for n in 0..5 {
        let (summary, attempts) = relay.stored(&format!("evt-{n}")).await;
        assert_eq!(
            (summary.status, attempts.len()),
            (EventStatus::Pending, 0),
            "evt-{n} waits, untried"
        );
    }

    org.used.store(500, Ordering::SeqCst);
    poll_until(
        "delivered once usage falls",
        Duration::from_secs(15),
        Duration::from_millis(20),
        || async { delivered(&relay).await == 5 },
    )
    .await;
    for n in 0..5 {
        let (summary, attempts) = relay.stored(&format!("evt-{n}")).await;
        assert_eq!((summary.attempts, attempts.len()), (1, 1), "nothing failed for evt-{n}");
    }
    assert_eq!(relay.store.stats().await.unwrap().dead, 0);
    assert!(
        relay
            .metrics()
            .await
            .contains("drsf_delivery_pauses_total{target=\"test\",cause=\"api_reserve\"} 1")
    );
}
