//! Delivery paced by the org's own limits: the project's stand-in org (`ops::org_standin`) with a
//! capacity (requests beyond it at once are refused with `ConcurrentPerOrgLongTxn`, as Salesforce
//! refuses Apex requests past its long-running limit), a daily allocation (`TotalRequests`) and a
//! usage it reports in `Sforce-Limit-Info` and at `/limits`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dr_sf_bridge::ops::org_standin::{Org, OrgStandIn};
use dr_sf_bridge::store::{EventFilter, EventStatus};

use crate::relay_helpers::*;
use crate::salesforce_standin::*;

/// A stepped relay (it delivers when the test says, on a clock the test moves) whose token comes
/// from the usual stand-in and whose Apex resource is `org`'s.
async fn relay_for(org: Arc<Org>, extra: &[(&str, &str)]) -> TestRelay {
    let sf = SalesforceStandIn::start().await;
    let address = OrgStandIn::detached(org).await.unwrap();
    let mut overrides = vec![
        ("salesforce.my_domain_url", address.as_str()),
        ("delivery.rate_limit_min_delay_secs", "1"),
    ];
    overrides.extend_from_slice(extra);
    spawn_stepped_app_with(sf, &overrides).await
}

fn org(capacity: usize, latency_ms: u64) -> Arc<Org> {
    let org = Org::default();
    org.capacity.store(capacity, Ordering::SeqCst);
    org.latency_us.store(latency_ms * 1_000, Ordering::SeqCst);
    org.max.store(1_000_000, Ordering::SeqCst);
    Arc::new(org)
}

async fn paused(relay: &TestRelay) -> bool {
    relay
        .metrics()
        .await
        .contains("drsf_delivery_paused{target=\"test\"} 1")
}

async fn concurrency_limit(relay: &TestRelay) -> usize {
    relay
        .metrics()
        .await
        .lines()
        .find_map(|l| l.strip_prefix("drsf_delivery_concurrency_limit{target=\"test\"} "))
        .unwrap()
        .parse()
        .unwrap()
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

/// C at once or fewer, round by round: the relay's limit grows from a few to near C, then every
/// round stays within 80–100% of C (one more now and then, to see whether the org has room), with
/// under 2% of its requests refused; every refused event is delivered a round later, uncounted.
/// (How many the org runs at once on average, in real time, is the benchmark's `slow org` figure.)
async fn settles_near_capacity(capacity: usize, events: usize) {
    let org = org(capacity, 50);
    let relay = relay_for(org.clone(), &[]).await;
    post_events(&relay, events, "evt").await;
    let mut rounds = Vec::new();
    while delivered(&relay).await < events as u64 {
        assert!(
            rounds.len() < events,
            "C = {capacity}: not delivered in {} rounds",
            rounds.len()
        );
        // Refused events are due again a second later (uncounted), with their jitter.
        relay.advance(Duration::from_millis(1_200));
        rounds.push((relay.claim_round().await, concurrency_limit(&relay).await));
    }

    let near = capacity * 4 / 5..=capacity + 1;
    assert!(
        rounds[0].0 <= 4,
        "C = {capacity}: a slow start, not {} at once",
        rounds[0].0
    );
    let reached = rounds
        .iter()
        .position(|(_, limit)| near.contains(limit))
        .unwrap_or_else(|| panic!("C = {capacity}: the limit never neared C: {rounds:?}"));
    // The steady part: every full round after the limit neared C, but the last (the remainder).
    let steady = &rounds[reached + 1..rounds.len() - 1];
    assert!(steady.len() >= 5, "C = {capacity}: too few rounds to judge: {rounds:?}");
    for (started, limit) in steady {
        assert!(
            near.contains(started) && near.contains(limit),
            "C = {capacity}: a round of {started} at a limit of {limit} after nearing C: {rounds:?}"
        );
    }

    let refused = org.refused.load(Ordering::SeqCst);
    let attempts = org.delivered.load(Ordering::SeqCst) + refused;
    assert!(
        (refused as f64) < 0.02 * attempts as f64,
        "C = {capacity}: {refused} of {attempts} requests refused"
    );
    // Each refusal was tried again, and not counted against its event.
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
    let relay = relay_for(
        org.clone(),
        &[
            ("salesforce.api_reserve_percent", "0"),
            ("delivery.rate_limit_min_delay_secs", "60"),
        ],
    )
    .await;
    post_events(&relay, 10, "evt").await;
    relay.deliver_due().await;
    assert!(paused(&relay).await, "the refusal paused every delivery");
    let refused_at_pause = org.refused.load(Ordering::SeqCst);
    assert!(
        refused_at_pause <= 4,
        "at most the first round was sent: {refused_at_pause}"
    );
    relay.advance(Duration::from_secs(30));
    assert_eq!(relay.deliver_due().await, 0, "nothing during the pause");
    assert_eq!(org.limits_asked.load(Ordering::SeqCst), 0, "nor a look before its end");
    relay.advance(Duration::from_secs(40));
    assert_eq!(relay.deliver_due().await, 0, "still spent at the end of the pause");
    assert_eq!(org.limits_asked.load(Ordering::SeqCst), 1, "one look at the usage");
    assert_eq!(
        org.refused.load(Ordering::SeqCst),
        refused_at_pause,
        "nothing sent while the allocation is spent"
    );

    org.used.store(200, Ordering::SeqCst);
    org.spent.store(false, Ordering::SeqCst);
    relay.advance(Duration::from_secs(70));
    relay.deliver_due().await;
    assert_eq!(delivered(&relay).await, 10, "delivered after the pause");
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
    let relay = relay_for(
        org.clone(),
        &[
            ("salesforce.api_reserve_percent", "10"),
            ("delivery.rate_limit_min_delay_secs", "60"),
        ],
    )
    .await;
    post_events(&relay, 5, "evt").await;
    assert_eq!(
        relay.deliver_due().await,
        0,
        "the first look finds usage in the reserve"
    );
    assert!(paused(&relay).await);
    relay.advance(Duration::from_secs(70));
    assert_eq!(relay.deliver_due().await, 0, "and the next, at the end of the pause");
    assert_eq!(org.limits_asked.load(Ordering::SeqCst), 2);
    assert_eq!(
        org.delivered.load(Ordering::SeqCst) + org.refused.load(Ordering::SeqCst),
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
    relay.advance(Duration::from_secs(70));
    assert_eq!(relay.deliver_due().await, 5, "delivered once usage falls");
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
