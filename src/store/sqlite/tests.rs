//! What only this engine does; the behaviour every engine shares is in the store contract
//! suite (tests/integration/store_contract.rs).

use super::*;
use crate::domain::{EventType, OrderKey};

fn event(id: &str) -> NewEvent {
    NewEvent {
        source: Default::default(),
        trace_parent: None,
        id: EventId::parse(id).unwrap(),
        event_type: EventType::parse("order.accepted").unwrap(),
        live_mode: false,
        order_key: OrderKey::from_text("o1"),
        body: Bytes::from(format!(r#"{{"id":"{id}"}}"#)),
        status: EventStatus::Pending,
        reason: None,
        received_at_ms: 1,
    }
}

#[tokio::test]
async fn events_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store.insert(event("e1")).await.unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    let body = store.body(&EventId::parse("e1").unwrap()).await.unwrap().unwrap();
    assert_eq!(&body[..], br#"{"id":"e1"}"#);
}

#[tokio::test]
async fn a_file_locked_by_another_process_is_busy_not_broken() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).unwrap();
    let locker = Connection::open(&path).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let error = store.insert(event("e1")).await.unwrap_err();
    assert!(matches!(error, StoreError::Busy(_)), "{error:?}");
    assert!(error.is_transient());
    locker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(store.insert(event("e1")).await.unwrap(), InsertOutcome::Inserted);
}

#[tokio::test]
async fn a_full_write_queue_refuses_new_events_at_once() {
    // A store whose writer never takes a job: the queue fills and stays full.
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(store_with_a_stuck_writer(&dir.path().join("s.db"), 2));
    for n in 0..2 {
        let store = store.clone();
        tokio::spawn(async move { store.insert(event(&format!("queued{n}"))).await });
    }
    // The current-thread runtime runs both queued inserts up to their wait for a reply.
    tokio::task::yield_now().await;
    let error = tokio::time::timeout(Duration::from_secs(10), store.insert(event("one-too-many")))
        .await
        .expect("refused at once, not queued")
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Busy(reason) if reason.contains("queue is full")),
        "{error:?}"
    );
}

/// A store on a real file whose writer thread never takes a job from its queue of `capacity`.
fn store_with_a_stuck_writer(path: &std::path::Path, capacity: usize) -> SqliteStore {
    drop(SqliteStore::open(path).unwrap());
    let (jobs, receiver) = tokio::sync::mpsc::channel(capacity);
    std::mem::forget(receiver);
    store_with_writer_queue(path, jobs)
}

/// A store on a real (migrated) file whose writer's jobs wait in `jobs` for whoever receives them.
fn store_with_writer_queue(path: &std::path::Path, jobs: tokio::sync::mpsc::Sender<writer::Job>) -> SqliteStore {
    SqliteStore {
        writer: Writer::from_sender(jobs),
        reader: super::reader::Reader::open(path).unwrap(),
        leases: Default::default(),
        _relay_lock: None,
        dir: path.parent().unwrap().to_owned(),
    }
}

#[tokio::test]
async fn reads_are_answered_while_the_writer_is_busy() {
    // The notifier's counts and the status page must not wait in the queue of writes (nor make
    // the events behind them wait): with the writer stuck and its queue full, reads still answer.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store.insert(event("stored-before")).await.unwrap();
    }
    let store = std::sync::Arc::new(store_with_a_stuck_writer(&path, 1));
    let queued = tokio::spawn({
        let store = store.clone();
        async move { store.insert(event("never-written")).await }
    });
    tokio::task::yield_now().await;
    let reads = async {
        let stats = store.stats().await.unwrap();
        let listed = store.list(crate::store::EventFilter::default()).await.unwrap();
        let found = store.get(&EventId::parse("stored-before").unwrap()).await.unwrap();
        (stats, listed, found)
    };
    let (stats, listed, found) = tokio::time::timeout(Duration::from_secs(30), reads)
        .await
        .expect("reads answered beside a stuck writer");
    assert_eq!(stats.pending, 1);
    assert_eq!(listed.len(), 1);
    assert!(found.is_some());
    assert!(!queued.is_finished(), "the write is still waiting for the writer");
}

#[test]
fn a_second_relay_on_the_same_file_is_refused_until_the_first_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let first = SqliteStore::open_for_relay(&path).unwrap();
    let error = SqliteStore::open_for_relay(&path).err().unwrap();
    let text = format!("{error:#}");
    assert!(
        text.contains("another relay") && text.contains(&std::process::id().to_string()),
        "{text}"
    );
    SqliteStore::open_existing(&path).expect("operations commands open it beside the relay");
    drop(first);
    SqliteStore::open_for_relay(&path).expect("free once the first relay is gone");
}

#[test]
fn operations_never_create_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo").join("relay.db");
    let error = SqliteStore::open_existing(&path).err().unwrap();
    assert!(format!("{error:#}").contains("no store at"), "{error:#}");
    assert!(!dir.path().join("typo").exists(), "no folder was created");
}

#[test]
fn a_file_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let error = SqliteStore::open(&path).err().unwrap();
    assert!(format!("{error:#}").contains("newer dr-sf-bridge"), "{error:#}");
}

#[test]
fn migrations_run_once_and_record_their_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    SqliteStore::open(&path).unwrap();
    SqliteStore::open(&path).unwrap();
    let version: i64 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, crate::store::migrations::LATEST);
}

#[tokio::test]
async fn a_store_in_folders_that_do_not_exist_yet_creates_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("var/lib/dr-sf-bridge/relay.db");
    let store = SqliteStore::open(&path).expect("the folders are created");
    store.insert(event("e1")).await.unwrap();
    assert!(path.is_file());
}

#[tokio::test]
async fn a_relay_starting_on_the_file_takes_over_the_leases_a_dead_one_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let crashed = SqliteStore::open(&path).unwrap();
        crashed.insert(event("e1")).await.unwrap();
        let claimed = crashed
            .claim_due(Mode::Test, 10, 10, Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "in flight when the relay died");
    }
    let storage = crate::settings::StorageSettings {
        url: format!("sqlite://{}", path.display()),
        retention_days: 30,
        pool_size: 1,
    };
    let restarted = crate::store::open(&storage, crate::store::Role::Relay).await.unwrap();
    let claimed = restarted
        .claim_due(Mode::Test, 20, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "claimable at once, not after the hour-long lease");
}

/// A claim only reads: its lease lives in the relay's memory, so it costs the file no write and
/// no disk flush (one of an event's three at DR's usual trickle); the outcome is what is written.
#[tokio::test]
async fn a_claim_writes_nothing_to_the_file_and_its_lease_holds_until_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = SqliteStore::open(&path).unwrap();
    store.insert(event("e1")).await.unwrap();
    let observer = Connection::open(&path).unwrap();
    let version = || -> i64 { observer.query_row("PRAGMA data_version", [], |r| r.get(0)).unwrap() };
    let before = version();

    let claimed = store
        .claim_due(Mode::Test, 10, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(version(), before, "the claim changed the file");
    assert!(
        store
            .claim_due(Mode::Test, 20, 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_due_at(Mode::Test).await.unwrap(), None, "leased");

    let record = AttemptRecord {
        at_ms: 30,
        status_code: Some(503),
        duration_ms: 5,
        outcome: "retry",
        error: None,
        excerpt: None,
    };
    let retry = Transition::RetryAt {
        at_ms: 40,
        counted: true,
        was_400: false,
    };
    store.finish_attempt(claimed[0].seq, record, retry).await.unwrap();
    assert_ne!(version(), before, "the outcome is written");
    assert_eq!(
        store.next_due_at(Mode::Test).await.unwrap(),
        Some(40),
        "no longer leased"
    );
    assert_eq!(
        store
            .claim_due(Mode::Test, 40, 10, Duration::from_secs(60))
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A claim's leases are taken when its job runs; if the batch it shares then fails to commit, the
/// claim answers an error and its events must not stay leased (they would wait for the lease to
/// run out instead of being claimed again at once).
#[tokio::test]
async fn a_claim_whose_batch_fails_to_commit_gives_its_leases_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    SqliteStore::open(&path).unwrap().insert(event("e1")).await.unwrap();
    let conn = Connection::open(&path).unwrap();
    // A foreign key checked at COMMIT: a row without its parent fails the whole batch there.
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         CREATE TABLE parent (id INTEGER PRIMARY KEY);
         CREATE TABLE child (parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
    )
    .unwrap();
    let (jobs, receiver) = tokio::sync::mpsc::channel(8);
    let store = store_with_writer_queue(&path, jobs);

    let orphan = store.writer.run_statement(Admission::WaitForRoom, |conn| {
        conn.execute("INSERT INTO child (parent) VALUES (42)", [])
    });
    let claim = store.claim_due(Mode::Test, 10, 10, Duration::from_secs(3600));
    // Both are queued before the writer starts, so that they share its first batch.
    let start = async {
        tokio::task::yield_now().await;
        std::thread::spawn(move || super::writer::writer(conn, receiver));
    };
    let (orphan, claim, ()) = tokio::join!(orphan, claim, start);
    assert!(orphan.is_err() && claim.is_err(), "the batch's commit failed");

    let again = store
        .claim_due(Mode::Test, 20, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "e1 is claimable at once, not after the hour-long lease");
}

/// The steps SQLite's engine takes to run the claim's statement on a file whose one pending event
/// comes after `delivered` delivered events of its order.
fn claim_steps_behind(delivered: usize) -> i32 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("BEGIN").unwrap();
    for n in 0..=delivered {
        conn.execute(
            "INSERT INTO events (id, type, live_mode, order_key, received_at, body, status, next_attempt_at)
             VALUES (?1, 'order.accepted', 0, 'o1', 1, X'7B7D', ?2, 1)",
            params![format!("e{n}"), if n < delivered { "delivered" } else { "pending" }],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    let mut claim = conn.prepare(leases::CLAIM_DUE).unwrap();
    let claimed: Vec<i64> = claim
        .query_map(params![1_000, 32, false], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(claimed.len(), 1, "the pending event is first of its order");
    claim.get_status(rusqlite::StatementStatus::VmStep)
}

#[test]
fn an_order_with_thousands_of_delivered_events_costs_a_claim_no_more_than_one_with_none() {
    let (alone, behind_thousands) = (claim_steps_behind(0), claim_steps_behind(3_000));
    assert!(
        behind_thousands <= alone + 20,
        "a claim took {behind_thousands} steps behind 3,000 delivered events of its order, {alone} with none"
    );
}
