//! The store contract: what every engine promises the relay, written against the `Store` trait
//! alone. Each engine runs every case through `store_contract!` with a factory that opens a
//! fresh, empty store.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dr_sf_bridge::domain::{EventId, EventType, Mode, OrderKey};
use dr_sf_bridge::store::{
    AttemptRecord, EventFilter, EventSource, EventStatus, InsertOutcome, NewEvent, ReplayOutcome, ReplayedBy, Store,
    Transition,
};

const LEASE: Duration = Duration::from_secs(60);

pub(crate) fn event(id: &str, order: &str, at: i64) -> NewEvent {
    NewEvent {
        source: Default::default(),
        trace_parent: None,
        id: EventId::parse(id).unwrap(),
        event_type: EventType::parse("order.accepted").unwrap(),
        live_mode: false,
        order_key: OrderKey::from_text(order),
        body: Bytes::from(format!(r#"{{"id":"{id}"}}"#)),
        status: EventStatus::Pending,
        reason: None,
        received_at_ms: at,
    }
}

pub(crate) fn record(at: i64, status: u16) -> AttemptRecord {
    AttemptRecord {
        at_ms: at,
        status_code: Some(status),
        duration_ms: 5,
        outcome: "retry",
        error: Some(format!("Salesforce answered {status}")),
        excerpt: Some("excerpt".into()),
    }
}

fn retry_at(at_ms: i64) -> Transition {
    Transition::RetryAt {
        at_ms,
        counted: true,
        was_400: false,
    }
}

pub(crate) fn id(raw: &str) -> EventId {
    EventId::parse(raw).unwrap()
}

async fn claimed_ids(store: &dyn Store, now: i64) -> Vec<String> {
    store
        .claim_due(Mode::Test, now, 10, LEASE)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id.to_string())
        .collect()
}

/// The seq of the single event claimable at `now`.
pub(crate) async fn claim_one(store: &dyn Store, now: i64) -> i64 {
    let claimed = store.claim_due(Mode::Test, now, 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1, "expected exactly one claimable event");
    claimed[0].seq
}

pub(crate) async fn status(store: &dyn Store, raw: &str) -> EventStatus {
    store.get(&id(raw)).await.unwrap().unwrap().0.status
}

pub async fn an_event_id_is_stored_once(store: Arc<dyn Store>) {
    assert_eq!(
        store.insert(event("e1", "o1", 1)).await.unwrap(),
        InsertOutcome::Inserted
    );
    assert_eq!(
        store.insert(event("e1", "o1", 2)).await.unwrap(),
        InsertOutcome::Duplicate
    );
    assert_eq!(store.stats().await.unwrap().pending, 1);
}

/// Many writes at once (a burst of DR's posts, deliveries finishing together) may share a commit;
/// each still gets its own answer: the first of two posts of one id is stored, the second is a
/// duplicate, and every outcome is recorded.
pub async fn writes_arriving_together_each_get_their_own_answer(store: Arc<dyn Store>) {
    let posts = (0..100).map(|n| store.insert(event(&format!("t{}", n % 50), &format!("o{n}"), 1)));
    let outcomes = futures_util::future::join_all(posts).await;
    let inserted = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(InsertOutcome::Inserted)))
        .count();
    let duplicates = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(InsertOutcome::Duplicate)))
        .count();
    assert_eq!((inserted, duplicates), (50, 50), "{outcomes:?}");
    for (n, first) in outcomes[..50].iter().enumerate() {
        assert!(
            matches!(first, Ok(InsertOutcome::Inserted)),
            "the first post of t{n} is the one stored: {first:?}"
        );
    }
    assert_eq!(store.stats().await.unwrap().pending, 50);

    let claimed = store.claim_due(Mode::Test, 10, 50, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 50);
    let finishing = claimed
        .iter()
        .map(|e| store.finish_attempt(e.seq, record(20, 200), Transition::Delivered));
    for finished in futures_util::future::join_all(finishing).await {
        finished.unwrap();
    }
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.pending, stats.delivered), (0, 50));
    let (_, attempts) = store.get(&id("t7")).await.unwrap().unwrap();
    assert_eq!(attempts.len(), 1);
}

pub async fn the_exact_body_is_kept(store: Arc<dyn Store>) {
    store.insert(event("e1", "o1", 1)).await.unwrap();
    let body = store.body(&id("e1")).await.unwrap().unwrap();
    assert_eq!(&body[..], br#"{"id":"e1"}"#);
    assert!(store.body(&id("nope")).await.unwrap().is_none());
}

pub async fn a_later_event_of_the_same_order_waits_for_the_earlier_one(store: Arc<dyn Store>) {
    store.insert(event("x1", "X", 1)).await.unwrap();
    store.insert(event("x2", "X", 2)).await.unwrap();
    store.insert(event("y1", "Y", 3)).await.unwrap();

    let first = store.claim_due(Mode::Test, 10, 10, LEASE).await.unwrap();
    let ids: Vec<String> = first.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, ["x1", "y1"]);
    assert!(claimed_ids(&*store, 10).await.is_empty(), "leased and blocked");

    // x1 fails and waits for a retry: x2 still waits.
    let x1 = first[0].seq;
    store.finish_attempt(x1, record(10, 503), retry_at(1000)).await.unwrap();
    assert!(claimed_ids(&*store, 20).await.is_empty());
    // x1 delivered: x2 is next.
    let again = store.claim_due(Mode::Test, 1000, 10, LEASE).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1, "the failed attempt counted");
    store
        .finish_attempt(x1, record(1000, 200), Transition::Delivered)
        .await
        .unwrap();
    assert_eq!(claimed_ids(&*store, 1001).await, ["x2"]);
}

pub async fn a_dead_event_no_longer_blocks_its_order(store: Arc<dyn Store>) {
    store.insert(event("x1", "X", 1)).await.unwrap();
    store.insert(event("x2", "X", 2)).await.unwrap();
    let x1 = claim_one(&*store, 10).await;
    store
        .finish_attempt(x1, record(10, 404), Transition::Dead)
        .await
        .unwrap();
    assert_eq!(status(&*store, "x1").await, EventStatus::Dead);
    assert_eq!(claimed_ids(&*store, 11).await, ["x2"]);
}

pub async fn claims_are_limited_and_due_first(store: Arc<dyn Store>) {
    for n in 0..5 {
        store
            .insert(event(&format!("e{n}"), &format!("o{n}"), n))
            .await
            .unwrap();
    }
    let two = store.claim_due(Mode::Test, 100, 2, LEASE).await.unwrap();
    let ids: Vec<String> = two.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, ["e0", "e1"], "the oldest due first, no more than asked");
    assert!(
        store.claim_due(Mode::Test, -1, 10, LEASE).await.unwrap().is_empty(),
        "nothing is due before it arrived"
    );
}

pub async fn the_next_due_time_ignores_events_blocked_behind_their_order(store: Arc<dyn Store>) {
    assert_eq!(store.next_due_at(Mode::Test).await.unwrap(), None);
    store.insert(event("x1", "X", 1)).await.unwrap();
    store.insert(event("x2", "X", 2)).await.unwrap();
    let x1 = claim_one(&*store, 10).await;
    store
        .finish_attempt(x1, record(10, 503), retry_at(5_000))
        .await
        .unwrap();
    assert_eq!(
        store.next_due_at(Mode::Test).await.unwrap(),
        Some(5_000),
        "x2 (due since 2) waits for x1"
    );
}

/// An event that names no order waits for nothing and holds up nothing: it is claimed when due,
/// beside others without an order, and counts towards the next due time.
pub async fn events_without_an_order_wait_for_none_and_hold_up_none(store: Arc<dyn Store>) {
    store.insert(event("n1", "", 1)).await.unwrap();
    store.insert(event("n2", "", 2)).await.unwrap();
    assert_eq!(store.next_due_at(Mode::Test).await.unwrap(), Some(1));
    let first = store.claim_due(Mode::Test, 10, 10, LEASE).await.unwrap();
    let ids: Vec<String> = first.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, ["n1", "n2"]);
    store
        .finish_attempt(first[0].seq, record(10, 503), retry_at(5_000))
        .await
        .unwrap();
    store.release(vec![first[1].seq]).await.unwrap();
    assert_eq!(
        store.next_due_at(Mode::Test).await.unwrap(),
        Some(2),
        "n2 waits for no n1"
    );
    assert_eq!(claimed_ids(&*store, 20).await, ["n2"]);
}

pub async fn an_expired_lease_is_claimed_again(store: Arc<dyn Store>) {
    let short = Duration::from_millis(100);
    store.insert(event("e1", "o1", 1)).await.unwrap();
    assert_eq!(store.claim_due(Mode::Test, 10, 10, short).await.unwrap().len(), 1);
    assert!(store.claim_due(Mode::Test, 50, 10, short).await.unwrap().is_empty());
    assert_eq!(store.claim_due(Mode::Test, 111, 10, short).await.unwrap().len(), 1);
}

pub async fn a_released_lease_is_claimable_at_once(store: Arc<dyn Store>) {
    store.insert(event("e1", "o1", 1)).await.unwrap();
    let seq = claim_one(&*store, 10).await;
    store.release(vec![seq]).await.unwrap();
    assert_eq!(claimed_ids(&*store, 11).await, ["e1"]);
}

pub async fn uncounted_retries_and_400s_are_kept_apart(store: Arc<dyn Store>) {
    store.insert(event("e1", "o1", 1)).await.unwrap();
    let seq = claim_one(&*store, 10).await;
    let uncounted = Transition::RetryAt {
        at_ms: 20,
        counted: false,
        was_400: false,
    };
    store.finish_attempt(seq, record(10, 401), uncounted).await.unwrap();
    let claimed = store.claim_due(Mode::Test, 20, 10, LEASE).await.unwrap();
    assert_eq!((claimed[0].attempts, claimed[0].attempts_400), (0, 0));
    let on_400 = Transition::RetryAt {
        at_ms: 30,
        counted: true,
        was_400: true,
    };
    store.finish_attempt(seq, record(20, 400), on_400).await.unwrap();
    let claimed = store.claim_due(Mode::Test, 30, 10, LEASE).await.unwrap();
    assert_eq!((claimed[0].attempts, claimed[0].attempts_400), (1, 1));
}

pub async fn every_attempt_is_recorded_in_order(store: Arc<dyn Store>) {
    store.insert(event("e1", "o1", 1)).await.unwrap();
    let seq = claim_one(&*store, 10).await;
    store.finish_attempt(seq, record(10, 503), retry_at(20)).await.unwrap();
    claim_one(&*store, 20).await;
    store
        .finish_attempt(seq, record(20, 200), Transition::Delivered)
        .await
        .unwrap();
    let (summary, attempts) = store.get(&id("e1")).await.unwrap().unwrap();
    assert_eq!(summary.status, EventStatus::Delivered);
    assert_eq!(summary.attempts, 2);
    assert_eq!(summary.last_status, Some(200));
    assert_eq!(
        summary.next_attempt_at_ms, None,
        "only pending events have a next attempt"
    );
    let codes: Vec<Option<u16>> = attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(503), Some(200)]);
    assert_eq!(attempts[0].excerpt.as_deref(), Some("excerpt"));
    assert!(store.get(&id("nope")).await.unwrap().is_none());
}

pub async fn lists_are_newest_first_and_filter_by_status(store: Arc<dyn Store>) {
    for n in 0..3 {
        store
            .insert(event(&format!("e{n}"), &format!("o{n}"), n))
            .await
            .unwrap();
    }
    let seq = claim_one_of(&*store, "e1").await;
    store
        .finish_attempt(seq, record(10, 404), Transition::Dead)
        .await
        .unwrap();
    let all: Vec<String> = store
        .list(EventFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all, ["e2", "e1", "e0"]);
    let dead = store
        .list(EventFilter {
            status: Some(EventStatus::Dead),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, "e1");
    assert_eq!(
        store
            .list(EventFilter {
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn claim_one_of(store: &dyn Store, wanted: &str) -> i64 {
    let claimed = store.claim_due(Mode::Test, 10_000, 10, LEASE).await.unwrap();
    let seq = claimed.iter().find(|e| e.id.as_str() == wanted).unwrap().seq;
    let others: Vec<i64> = claimed.iter().map(|e| e.seq).filter(|s| *s != seq).collect();
    store.release(others).await.unwrap();
    seq
}

pub async fn only_dead_or_delivered_events_are_replayed(store: Arc<dyn Store>) {
    store.insert(event("e1", "o1", 1)).await.unwrap();
    assert_eq!(
        store.replay(&id("e1"), ReplayedBy::CommandLine, 5).await.unwrap(),
        ReplayOutcome::NotReplayable(EventStatus::Pending)
    );
    assert_eq!(
        store.replay(&id("nope"), ReplayedBy::CommandLine, 5).await.unwrap(),
        ReplayOutcome::NotFound
    );
    let seq = claim_one(&*store, 10).await;
    store
        .finish_attempt(seq, record(10, 404), Transition::Dead)
        .await
        .unwrap();
    assert_eq!(
        store.replay(&id("e1"), ReplayedBy::CommandLine, 20).await.unwrap(),
        ReplayOutcome::Replayed
    );
    let claimed = store.claim_due(Mode::Test, 20, 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempts, 0, "a replay starts with fresh attempts");
    let (_, log) = store.get(&id("e1")).await.unwrap().unwrap();
    let outcomes: Vec<&str> = log.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        ["retry", "replayed"],
        "the log keeps the attempt and says who replayed it"
    );
    assert_eq!(log[1].at_ms, 20);
    assert_eq!(log[1].error.as_deref(), Some(ReplayedBy::CommandLine.words()));
}

pub async fn stats_count_by_status_and_know_the_oldest_pending(store: Arc<dyn Store>) {
    store.insert(event("e1", "o1", 100)).await.unwrap();
    store.insert(event("e2", "o2", 200)).await.unwrap();
    let mut ignored = event("e3", "o3", 300);
    ignored.status = EventStatus::Ignored;
    store.insert(ignored).await.unwrap();
    let seq = claim_one_of(&*store, "e1").await;
    store
        .finish_attempt(seq, record(400, 200), Transition::Delivered)
        .await
        .unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.delivered, stats.dead, stats.ignored),
        (1, 1, 0, 1)
    );
    assert_eq!(stats.oldest_pending_received_at_ms, Some(200));
}

pub async fn pruning_removes_only_finished_events_before_the_cut(store: Arc<dyn Store>) {
    store.insert(event("old-delivered", "o1", 100)).await.unwrap();
    store.insert(event("old-pending", "o2", 100)).await.unwrap();
    let mut old_ignored = event("old-ignored", "o3", 100);
    old_ignored.status = EventStatus::Ignored;
    store.insert(old_ignored).await.unwrap();
    store.insert(event("new-delivered", "o4", 900)).await.unwrap();
    for name in ["old-delivered", "new-delivered"] {
        let seq = claim_one_of(&*store, name).await;
        store
            .finish_attempt(seq, record(950, 200), Transition::Delivered)
            .await
            .unwrap();
    }
    assert_eq!(store.prune(500).await.unwrap(), 2);
    assert!(store.get(&id("old-delivered")).await.unwrap().is_none());
    assert!(store.get(&id("old-ignored")).await.unwrap().is_none());
    assert!(
        store.get(&id("old-pending")).await.unwrap().is_some(),
        "pending events are never pruned"
    );
    assert!(store.get(&id("new-delivered")).await.unwrap().is_some());
}

pub async fn a_healthy_store_answers_ping(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

pub async fn lists_filter_by_type_order_and_time(store: Arc<dyn Store>) {
    store.insert(event("a", "O1", 100)).await.unwrap();
    let mut complete = event("b", "O1", 200);
    complete.event_type = EventType::parse("order.complete").unwrap();
    store.insert(complete).await.unwrap();
    store.insert(event("c", "O2", 300)).await.unwrap();
    let ids = |events: Vec<dr_sf_bridge::store::EventSummary>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
    let by_type = EventFilter {
        event_type: Some(EventType::parse("order.accepted").unwrap()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(ids(store.list(by_type).await.unwrap()), ["c", "a"]);
    let by_order = EventFilter {
        order_key: Some(OrderKey::from_stored("O1".into())),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(ids(store.list(by_order).await.unwrap()), ["b", "a"]);
    let since = EventFilter {
        since_ms: Some(200),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(ids(store.list(since).await.unwrap()), ["c", "b"]);
}

pub async fn bulk_replay_takes_dead_events_since_a_time_in_batches(store: Arc<dyn Store>) {
    for n in 0..5 {
        store
            .insert(event(&format!("d{n}"), &format!("o{n}"), n * 100))
            .await
            .unwrap();
    }
    for claimed in store.claim_due(Mode::Test, 10_000, 10, LEASE).await.unwrap() {
        store
            .finish_attempt(claimed.seq, record(10_000, 404), Transition::Dead)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .replay_batch(EventStatus::Pending, None, 10, ReplayedBy::CommandLine, 20_000)
            .await
            .unwrap(),
        0,
        "only dead or delivered"
    );
    assert_eq!(
        store
            .replay_batch(EventStatus::Dead, Some(200), 2, ReplayedBy::CommandLine, 20_000)
            .await
            .unwrap(),
        2,
        "a batch"
    );
    let rest = dr_sf_bridge::store::replay::replay_all(
        &*store,
        EventStatus::Dead,
        Some(200),
        ReplayedBy::CommandLine,
        20_000,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(rest, 1, "d2, d3, d4 received since 200");
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.dead, stats.pending), (2, 3));
    let replayed = store.claim_due(Mode::Test, 20_000, 10, LEASE).await.unwrap();
    assert!(replayed.iter().all(|e| e.attempts == 0));
    for (name, replays) in [("d1", 0), ("d2", 1), ("d4", 1)] {
        let (_, log) = store.get(&id(name)).await.unwrap().unwrap();
        let lines = log.iter().filter(|a| a.outcome == "replayed").count();
        assert_eq!(
            lines, replays,
            "{name}: one replay line for each event a batch replayed"
        );
    }
}

pub async fn purge_removes_only_delivered_events_before_the_cut(store: Arc<dyn Store>) {
    store.insert(event("old-delivered", "o1", 100)).await.unwrap();
    store.insert(event("old-dead", "o2", 100)).await.unwrap();
    let mut old_ignored = event("old-ignored", "o3", 100);
    old_ignored.status = EventStatus::Ignored;
    store.insert(old_ignored).await.unwrap();
    store.insert(event("old-pending", "o4", 100)).await.unwrap();
    store.insert(event("new-delivered", "o5", 900)).await.unwrap();
    for (name, transition) in [
        ("old-delivered", Transition::Delivered),
        ("old-dead", Transition::Dead),
        ("new-delivered", Transition::Delivered),
    ] {
        let seq = claim_one_of(&*store, name).await;
        store.finish_attempt(seq, record(950, 200), transition).await.unwrap();
    }
    assert_eq!(
        store.count_delivered_before(500).await.unwrap(),
        1,
        "what a purge would delete"
    );
    assert_eq!(store.purge_delivered(500).await.unwrap(), 1);
    assert_eq!(store.count_delivered_before(500).await.unwrap(), 0);
    for (name, kept) in [
        ("old-delivered", false),
        ("old-dead", true),
        ("old-ignored", true),
        ("old-pending", true),
        ("new-delivered", true),
    ] {
        assert_eq!(store.get(&id(name)).await.unwrap().is_some(), kept, "{name}");
    }
}

pub async fn state_is_kept_replaced_and_forgotten(store: Arc<dyn Store>) {
    assert_eq!(store.state("k").await.unwrap(), None);
    store.set_state("k", Some("one".into()), 1).await.unwrap();
    store.set_state("k", Some("two".into()), 2).await.unwrap();
    assert_eq!(store.state("k").await.unwrap().as_deref(), Some("two"));
    store.set_state("k", None, 3).await.unwrap();
    assert_eq!(store.state("k").await.unwrap(), None);
}

/// A lease is one holder's until it runs out; its holder renews it; a source of events the
/// webhook never brought (`backfill`) is kept with the event.
pub async fn a_lease_is_one_holders_until_it_runs_out(store: Arc<dyn Store>) {
    assert!(store.take_lease("sweep", "relay-a", 1_000, 5_000).await.unwrap());
    assert!(
        !store.take_lease("sweep", "relay-b", 2_000, 6_000).await.unwrap(),
        "a's until 5,000"
    );
    assert!(
        store.take_lease("sweep", "relay-a", 3_000, 9_000).await.unwrap(),
        "a renews it"
    );
    assert!(!store.take_lease("sweep", "relay-b", 8_999, 12_000).await.unwrap());
    assert!(
        store.take_lease("sweep", "relay-b", 9_000, 12_000).await.unwrap(),
        "run out: b's now"
    );
    assert!(!store.take_lease("sweep", "relay-a", 9_500, 13_000).await.unwrap());
    assert!(
        store.take_lease("other", "relay-a", 9_500, 13_000).await.unwrap(),
        "each key its own"
    );

    let mut backfilled = event("from-dr", "o1", 5);
    backfilled.source = EventSource::Backfill;
    store.insert(backfilled).await.unwrap();
    store.insert(event("by-webhook", "o2", 6)).await.unwrap();
    let source = |id: &'static str| {
        let store = store.clone();
        async move { store.get(&EventId::parse(id).unwrap()).await.unwrap().unwrap().0.source }
    };
    assert_eq!(source("from-dr").await, EventSource::Backfill);
    assert_eq!(source("by-webhook").await, EventSource::Webhook);
}

/// When an event finished (stored as ignored or rejected, delivered, dead) is kept, and what
/// is pending again has no finish: `store copy` moves it with the rest.
pub async fn the_finish_time_is_kept_for_finished_events_only(store: Arc<dyn Store>) {
    let mut ignored = event("ignored", "o1", 5);
    ignored.status = EventStatus::Ignored;
    store.insert(ignored).await.unwrap();
    store.insert(event("delivered", "o2", 6)).await.unwrap();
    store.insert(event("replayed", "o3", 7)).await.unwrap();
    let claimed = store.claim_due(Mode::Test, 100, 10, LEASE).await.unwrap();
    for e in &claimed {
        store
            .finish_attempt(e.seq, record(200, 200), Transition::Delivered)
            .await
            .unwrap();
    }
    store
        .replay(&id("replayed"), ReplayedBy::CommandLine, 300)
        .await
        .unwrap();
    let finished: Vec<(String, Option<i64>)> = store
        .export(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.summary.id, e.finished_at_ms))
        .collect();
    assert_eq!(
        finished,
        [
            ("ignored".to_owned(), Some(5)),
            ("delivered".to_owned(), Some(200)),
            ("replayed".to_owned(), None)
        ]
    );
}

async fn each_mode_claims_only_its_own_events(store: Arc<dyn Store>) {
    let mut live = event("l-1", "o-l1", 1);
    live.live_mode = true;
    store.insert(event("t-1", "o-t1", 1)).await.unwrap();
    store.insert(live.clone()).await.unwrap();
    let mut later = event("l-2", "o-l2", 2);
    later.live_mode = true;
    store.insert(later).await.unwrap();
    let l2 = store.claim_due(Mode::Live, 5, 10, LEASE).await.unwrap();
    assert_eq!(l2.len(), 2, "both live events are due at 5");
    let l2_seq = l2.iter().find(|e| e.id.as_str() == "l-2").unwrap().seq;
    store
        .finish_attempt(l2_seq, record(5, 503), retry_at(500))
        .await
        .unwrap();
    store
        .release(l2.iter().filter(|e| e.seq != l2_seq).map(|e| e.seq).collect())
        .await
        .unwrap();

    assert_eq!(store.next_due_at(Mode::Live).await.unwrap(), Some(1), "l-1 is due");
    assert_eq!(
        claimed_ids(store.as_ref(), 10).await,
        ["t-1"],
        "the test target sees only t-1"
    );
    let live_ids: Vec<String> = store
        .claim_due(Mode::Live, 10, 10, LEASE)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id.to_string())
        .collect();
    assert_eq!(live_ids, ["l-1"], "the live target sees only l-1 (l-2 waits until 500)");
    assert_eq!(store.next_due_at(Mode::Test).await.unwrap(), None, "t-1 is leased");
    assert_eq!(store.next_due_at(Mode::Live).await.unwrap(), Some(500));
}

/// The status page's list: pages by key (each page's last event is where the next begins), one
/// event by id, combined filters.
async fn lists_page_by_key_and_find_one_event_by_id(store: Arc<dyn Store>) {
    for n in 0..7 {
        store
            .insert(event(&format!("p{n}"), &format!("o{}", n % 2), n))
            .await
            .unwrap();
    }
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list(EventFilter {
                limit: 3,
                before_seq: before,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|e| e.seq);
        pages.push(page.into_iter().map(|e| e.id).collect::<Vec<_>>());
    }
    assert_eq!(pages, [vec!["p6", "p5", "p4"], vec!["p3", "p2", "p1"], vec!["p0"]]);
    let one = EventFilter {
        event_id: Some(id("p3")),
        limit: 10,
        ..Default::default()
    };
    let found = store.list(one).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, "p3");
    let odd_before_p5 = EventFilter {
        order_key: Some(OrderKey::from_stored("o1".into())),
        before_seq: Some(found[0].seq + 2),
        limit: 10,
        ..Default::default()
    };
    let ids: Vec<String> = store
        .list(odd_before_p5)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["p3", "p1"], "order o1, older than p5");
}

/// Received and delivered per slice of time, for the status page's chart: slices from the start
/// given, delivered counted when delivered (not when received), nothing outside the range.
async fn activity_counts_received_and_delivered_per_slice(store: Arc<dyn Store>) {
    for (n, at) in [50, 1_050, 1_100, 2_500, 9_000].into_iter().enumerate() {
        store
            .insert(event(&format!("a{n}"), &format!("o{n}"), at))
            .await
            .unwrap();
    }
    let claimed = store.claim_due(Mode::Test, 3_000, 10, LEASE).await.unwrap();
    for e in claimed.iter().filter(|e| e.id.as_str() != "a3") {
        let transition = if e.id.as_str() == "a2" {
            Transition::Dead
        } else {
            Transition::Delivered
        };
        store
            .finish_attempt(e.seq, record(2_200, 200), transition)
            .await
            .unwrap();
    }
    let activity = store.activity(1_000, 1_000, 3).await.unwrap();
    let slices: Vec<(i64, u64, u64)> = activity.iter().map(|b| (b.start_ms, b.received, b.delivered)).collect();
    // Received: a0 (50) before the range, a1 and a2 in the first slice, a3 in the second, a4
    // (9,000) after it. Delivered at 2,200: a0 and a1 (a2 is dead, a3 still in flight, a4 not due).
    assert_eq!(slices, [(1_000, 2, 0), (2_000, 1, 2), (3_000, 0, 0)]);
}

async fn retry_now_makes_a_waiting_event_due_and_leaves_finished_ones_alone(store: Arc<dyn Store>) {
    store.insert(event("w1", "o1", 1)).await.unwrap();
    store.insert(event("d1", "o2", 1)).await.unwrap();
    let claimed = store.claim_due(Mode::Test, 10, 10, LEASE).await.unwrap();
    for e in &claimed {
        let transition = if e.id.as_str() == "w1" {
            retry_at(1_000_000)
        } else {
            Transition::Delivered
        };
        store.finish_attempt(e.seq, record(10, 503), transition).await.unwrap();
    }
    assert!(claimed_ids(&*store, 20).await.is_empty(), "w1 waits for its retry");
    assert_eq!(store.retry_now(Some(&id("d1")), 20).await.unwrap(), 0, "not pending");
    assert_eq!(store.retry_now(None, 20).await.unwrap(), 1);
    assert_eq!(claimed_ids(&*store, 20).await, ["w1"]);
    assert_eq!(
        store.get(&id("w1")).await.unwrap().unwrap().0.attempts,
        1,
        "attempts stay counted"
    );
}

/// After an outage only what failed during it is made due: not an event that failed before it
/// began, nor the other mode's, nor one already finished.
async fn the_events_that_failed_during_an_outage_are_due_when_it_ends(store: Arc<dyn Store>) {
    let mut live = event("live", "o3", 1);
    live.live_mode = true;
    for new in [
        event("before", "o1", 1),
        event("during", "o2", 1),
        live,
        event("done", "o4", 1),
    ] {
        store.insert(new).await.unwrap();
    }
    let mut claimed = store.claim_due(Mode::Test, 10, 10, LEASE).await.unwrap();
    claimed.extend(store.claim_due(Mode::Live, 10, 10, LEASE).await.unwrap());
    for e in &claimed {
        let (failed_at, transition) = match e.id.as_str() {
            "before" => (100, retry_at(1_000_000)),
            "done" => (500, Transition::Delivered),
            _ => (500, retry_at(1_000_000)),
        };
        store
            .finish_attempt(e.seq, record(failed_at, 503), transition)
            .await
            .unwrap();
    }
    store.insert(event("never-tried", "o5", 600)).await.unwrap();

    assert_eq!(store.retry_failed_since(Mode::Test, 400, 2_000).await.unwrap(), 1);
    let mut due = claimed_ids(&*store, 2_000).await;
    due.sort();
    assert_eq!(due, ["during", "never-tried"]);
    let (during, _) = store.get(&id("during")).await.unwrap().unwrap();
    assert_eq!(during.attempts, 1, "attempts stay counted");
    let (live, _) = store.get(&id("live")).await.unwrap().unwrap();
    assert_eq!(
        live.next_attempt_at_ms,
        Some(1_000_000),
        "the other mode's outage is its own"
    );
    assert_eq!(
        store.retry_failed_since(Mode::Live, 400, 2_000).await.unwrap(),
        1,
        "and ends on its own"
    );
}

/// The W3C trace context an event was received in comes back with every claim (so that each
/// attempt joins its trace) and moves with it between stores.
async fn the_trace_context_comes_back_with_each_claim_and_with_a_copy(store: Arc<dyn Store>) {
    const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut traced = event("evt-traced", "o-1", 1_000);
    traced.trace_parent = Some(TRACE.into());
    store.insert(traced).await.unwrap();
    store.insert(event("evt-untraced", "o-2", 1_001)).await.unwrap();
    let claimed = store.claim_due(Mode::Test, 2_000, 10, LEASE).await.unwrap();
    let trace_of = |id: &str| {
        claimed
            .iter()
            .find(|e| e.id.as_str() == id)
            .unwrap()
            .trace_parent
            .clone()
    };
    assert_eq!(trace_of("evt-traced").as_deref(), Some(TRACE));
    assert_eq!(trace_of("evt-untraced"), None);
    let exported = store.export(0, 10).await.unwrap();
    assert_eq!(exported[0].trace_parent.as_deref(), Some(TRACE));
    assert_eq!(exported[1].trace_parent, None);
}

/// One test per contract case for an engine: `store_contract!(module, factory)`, where
/// `factory(test_name).await` opens a fresh, empty store (with a guard that keeps it), or answers
/// `None` when the engine's server is not there (the test is skipped, saying so).
macro_rules! store_contract {
    ($engine:ident, $open:expr) => {
        mod $engine {
            use super::*;
            store_contract!(@cases $open;
                an_event_id_is_stored_once,
                the_exact_body_is_kept,
                a_later_event_of_the_same_order_waits_for_the_earlier_one,
                a_dead_event_no_longer_blocks_its_order,
                claims_are_limited_and_due_first,
                the_next_due_time_ignores_events_blocked_behind_their_order,
                events_without_an_order_wait_for_none_and_hold_up_none,
                an_expired_lease_is_claimed_again,
                a_released_lease_is_claimable_at_once,
                uncounted_retries_and_400s_are_kept_apart,
                every_attempt_is_recorded_in_order,
                lists_are_newest_first_and_filter_by_status,
                only_dead_or_delivered_events_are_replayed,
                stats_count_by_status_and_know_the_oldest_pending,
                pruning_removes_only_finished_events_before_the_cut,
                a_healthy_store_answers_ping,
                writes_arriving_together_each_get_their_own_answer,
                lists_filter_by_type_order_and_time,
                bulk_replay_takes_dead_events_since_a_time_in_batches,
                purge_removes_only_delivered_events_before_the_cut,
                state_is_kept_replaced_and_forgotten,
                a_lease_is_one_holders_until_it_runs_out,
                the_finish_time_is_kept_for_finished_events_only,
                each_mode_claims_only_its_own_events,
                lists_page_by_key_and_find_one_event_by_id,
                activity_counts_received_and_delivered_per_slice,
                retry_now_makes_a_waiting_event_due_and_leaves_finished_ones_alone,
                the_events_that_failed_during_an_outage_are_due_when_it_ends,
                the_trace_context_comes_back_with_each_claim_and_with_a_copy
            );
        }
    };
    (@cases $open:expr; $($case:ident),+) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some((store, _guard)) = $open(stringify!($case)).await else {
                    return;
                };
                super::$case(store).await;
            }
        )+
    };
}

pub(crate) async fn open_sqlite(_test: &str) -> Option<(Arc<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = dr_sf_bridge::store::sqlite::SqliteStore::open(&dir.path().join("contract.db")).unwrap();
    Some((Arc::new(store), dir))
}

pub(crate) async fn open_postgres(test: &str) -> Option<(Arc<dyn Store>, crate::pg::Schema)> {
    let schema = crate::pg::fresh_schema(test).await?;
    let store = dr_sf_bridge::store::postgres::PostgresStore::open(&schema.url, 4)
        .await
        .unwrap();
    Some((Arc::new(store), schema))
}

store_contract!(sqlite, open_sqlite);
store_contract!(postgres, open_postgres);
