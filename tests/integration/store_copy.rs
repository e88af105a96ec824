//! `store copy`: a SQLite store with events in every status moved to PostgreSQL and back, run
//! twice, and a relay on the copy that delivers the pending events.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dr_sf_bridge::domain::{EventId, EventType, Mode, OrderKey};
use dr_sf_bridge::store::postgres::PostgresStore;
use dr_sf_bridge::store::sqlite::SqliteStore;
use dr_sf_bridge::store::{AttemptRecord, EventFilter, EventStatus, NewEvent, Store, Transition};
use serde_json::Value;
use wiremock::ResponseTemplate;

use crate::helpers::cli;
use crate::relay_helpers::*;
use crate::relay_process::{RelayProcess, free_port};
use crate::salesforce_standin::*;

fn new_event(id: &str, order: &str, status: EventStatus, at: i64) -> NewEvent {
    NewEvent {
        source: Default::default(),
        trace_parent: None,
        id: EventId::parse(id).unwrap(),
        event_type: EventType::parse("order.accepted").unwrap(),
        live_mode: false,
        order_key: OrderKey::from_text(order),
        body: Bytes::from(event("order.accepted", id, order)),
        status,
        reason: (status == EventStatus::RejectedMode).then(|| "a live event at a test-mode relay".to_owned()),
        received_at_ms: at,
    }
}

fn attempt(at: i64, status: u16) -> AttemptRecord {
    AttemptRecord {
        at_ms: at,
        status_code: Some(status),
        duration_ms: 12,
        outcome: "retry",
        error: Some(format!("Salesforce answered {status}")),
        excerpt: Some("[{\"errorCode\":\"APEX_ERROR\"}]".into()),
    }
}

/// A store with a delivered event, a dead one (two attempts), an ignored and a rejected one, and
/// three pending events: two of one order (the first retried once), one of another.
async fn a_store_in_every_status(store: &dyn Store) {
    let now = dr_sf_bridge::support::clock::now_ms();
    for (id, order, status) in [
        ("copy-delivered", "o-1", EventStatus::Pending),
        ("copy-dead", "o-2", EventStatus::Pending),
        ("copy-ignored", "o-3", EventStatus::Ignored),
        ("copy-rejected", "o-4", EventStatus::RejectedMode),
        ("copy-pending-a1", "o-a", EventStatus::Pending),
        ("copy-pending-a2", "o-a", EventStatus::Pending),
        ("copy-pending-b", "o-b", EventStatus::Pending),
    ] {
        store.insert(new_event(id, order, status, now - 60_000)).await.unwrap();
    }
    let claimed = store
        .claim_due(Mode::Test, now, 10, Duration::from_secs(60))
        .await
        .unwrap();
    let seq = |id: &str| claimed.iter().find(|e| e.id.as_str() == id).unwrap().seq;
    store
        .finish_attempt(seq("copy-delivered"), attempt(now - 50_000, 200), Transition::Delivered)
        .await
        .unwrap();
    let retry = Transition::RetryAt {
        at_ms: now - 1,
        counted: true,
        was_400: false,
    };
    store
        .finish_attempt(seq("copy-dead"), attempt(now - 50_000, 500), retry.clone())
        .await
        .unwrap();
    store
        .finish_attempt(seq("copy-pending-a1"), attempt(now - 50_000, 503), retry)
        .await
        .unwrap();
    store.release(vec![seq("copy-pending-b")]).await.unwrap();
    let again = store
        .claim_due(Mode::Test, now, 10, Duration::from_secs(60))
        .await
        .unwrap();
    let dead = again.iter().find(|e| e.id.as_str() == "copy-dead").unwrap().seq;
    store
        .finish_attempt(dead, attempt(now - 40_000, 404), Transition::Dead)
        .await
        .unwrap();
    store.release(again.iter().map(|e| e.seq).collect()).await.unwrap();
}

/// Runs `store copy --output json`; answers its report.
async fn copy(from: &str, to: &str) -> Value {
    let out = cli(&["--output", "json", "store", "copy", "--from", from, "--to", to])
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // Opening a store that exists (a second run, or a relay's restart) is not news: PostgreSQL's
    // "relation … already exists, skipping" notices of the schema's creation are kept out of the log.
    assert!(!out.stderr.contains("already exists"), "{}", out.stderr);
    serde_json::from_str(&out.stdout).unwrap()
}

/// Everything `events list` and `events show` say of each event, and its body.
async fn everything(store: &dyn Store) -> Vec<(Value, Value, Bytes)> {
    let mut all = Vec::new();
    for summary in store
        .list(EventFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
    {
        let id = EventId::parse(&summary.id).unwrap();
        let (_, attempts) = store.get(&id).await.unwrap().unwrap();
        let body = store.body(&id).await.unwrap().unwrap();
        all.push((
            serde_json::to_value(&summary).unwrap(),
            serde_json::to_value(&attempts).unwrap(),
            body,
        ));
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_moves_every_status_and_a_relay_on_the_copy_delivers_the_pending_ones() {
    let Some(schema) = crate::pg::fresh_schema("store_copy").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source_path = dir.path().join("source.db");
    let source: Arc<dyn Store> = Arc::new(SqliteStore::open(&source_path).unwrap());
    a_store_in_every_status(source.as_ref()).await;
    let expected = everything(source.as_ref()).await;
    assert_eq!(expected.len(), 7);
    drop(source);
    let from = format!("sqlite://{}", source_path.display());

    let report = copy(&from, &schema.url).await;
    assert_eq!(
        (report["read"].as_u64(), report["copied"].as_u64()),
        (Some(7), Some(7)),
        "{report}"
    );
    let target = PostgresStore::open_existing(&schema.url, 2).await.unwrap();
    assert_eq!(
        everything(&target).await,
        expected,
        "every event, status, attempt and body"
    );
    // The copy ends as a relay's own vacuums would leave the table (the status page's counts read
    // the index alone then).
    let stats = crate::pg::connect(&schema.url).await.unwrap();
    poll_until(
        "the copy's vacuum on record",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let stats = &stats;
            async move {
                stats
                    .query_one(
                        "SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL FROM pg_stat_user_tables
                     WHERE relid = 'events'::regclass",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get::<_, bool>(0)
            }
        },
    )
    .await;

    let report = copy(&from, &schema.url).await;
    assert_eq!(
        report["copied"].as_u64(),
        Some(0),
        "a second run copies nothing: {report}"
    );
    assert_eq!(
        report["alreadyThere"].as_u64(),
        Some(expected.len() as u64),
        "and says they were all there already: {report}"
    );
    assert_eq!(everything(&target).await, expected);

    // And back, into a new SQLite file.
    let back_path = dir.path().join("back.db");
    let back = format!("sqlite://{}", back_path.display());
    let home = cli(&["store", "copy", "--from", &schema.url, "--to", &back])
        .run()
        .await;
    assert_eq!(home.code, 0, "{}", home.stderr);
    assert!(home.stdout.contains("Copied 7 event(s)"), "{}", home.stdout);
    let returned = SqliteStore::open(&back_path).unwrap();
    assert_eq!(everything(&returned).await, expected, "the round trip keeps everything");

    // A relay on the copy delivers what was pending, each order in order, and nothing else.
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    let _relay = RelayProcess::start(&sf, dir.path(), free_port(), &[("storage.url", schema.url.as_str())]).await;
    wait_until("the pending events to be delivered", || async {
        target.stats().await.unwrap().pending == 0
    })
    .await;
    let delivered = sf.delivered_ids().await;
    let mut sorted = delivered.clone();
    sorted.sort();
    assert_eq!(sorted, ["copy-pending-a1", "copy-pending-a2", "copy-pending-b"]);
    let position = |id: &str| delivered.iter().position(|d| d == id).unwrap();
    assert!(
        position("copy-pending-a1") < position("copy-pending-a2"),
        "{delivered:?}"
    );
    let (a1, attempts) = target
        .get(&EventId::parse("copy-pending-a1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (a1.attempts, attempts.len()),
        (2, 2),
        "the copied attempt is kept and counted"
    );
}

#[tokio::test]
async fn store_copy_refuses_a_missing_source_and_a_store_a_relay_uses_with_the_stores_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let to = format!("sqlite://{}", dir.path().join("to.db").display());
    let missing = format!("sqlite://{}", dir.path().join("typo.db").display());
    let out = cli(&["store", "copy", "--from", &missing, "--to", &to]).run().await;
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(out.stderr.contains("no store at"), "{}", out.stderr);
    assert!(!dir.path().join("typo.db").exists(), "a mistyped source is not created");

    let busy_path = dir.path().join("busy.db");
    let _relay_holds_it = SqliteStore::open_for_relay(&busy_path).unwrap();
    let busy = format!("sqlite://{}", busy_path.display());
    let out = cli(&["store", "copy", "--from", &busy, "--to", &to]).run().await;
    assert_eq!(out.code, 5, "{}", out.stderr);
    let pid = std::process::id();
    assert!(
        out.stderr.contains(&format!("another relay (pid {pid})")) && out.stderr.contains("stop the relay"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_relay_on_a_sqlite_file_another_relay_holds_exits_with_the_stores_code_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let busy_path = dir.path().join("relay.db");
    let _relay_holds_it = SqliteStore::open_for_relay(&busy_path).unwrap();
    let sf = SalesforceStandIn::start().await;
    let env: Vec<(String, String)> =
        crate::relay_helpers::relay_overrides(&sf, &busy_path, &[("relay.listen", "127.0.0.1:0")])
            .into_iter()
            .map(|(key, value)| (format!("DRSF__{}", key.to_ascii_uppercase().replace('.', "__")), value))
            .collect();
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let out = cli(&["relay"]).envs(&env).run().await;
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(
        out.stderr.contains("storage.url `sqlite://")
            && out
                .stderr
                .contains(&format!("another relay (pid {})", std::process::id())),
        "{}",
        out.stderr
    );
}
