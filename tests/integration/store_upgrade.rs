//! A store made by the release before the shared migration list opens with this build on both
//! engines: its events are still there and still delivered, and its schema is recorded in the
//! numbering both engines now share.

use std::path::Path;

use dr_sf_bridge::domain::{EventId, Mode};
use dr_sf_bridge::store::migrations::LATEST;
use dr_sf_bridge::store::postgres::PostgresStore;
use dr_sf_bridge::store::sqlite::SqliteStore;
use dr_sf_bridge::store::{EventStatus, Store};

use crate::pg::{connect, fresh_schema};

/// The previous release's migration files of `engine`, in order.
fn previous_release(engine: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/previous_release")
        .join(engine);
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect()
}

/// What the old relay stored for one received event.
const OLD_EVENT: &str =
    "INSERT INTO events (id, type, live_mode, order_key, received_at, body, status, next_attempt_at)
     VALUES ('evt-from-the-old-release', 'order.accepted', {live}, 'o-1', 1000, {body}, 'pending', 1000)";

async fn the_old_event_is_claimed_and_shown(store: &dyn Store) {
    let id = EventId::parse("evt-from-the-old-release").unwrap();
    let (summary, _) = store.get(&id).await.unwrap().expect("the old event is still stored");
    assert_eq!(summary.status, EventStatus::Pending);
    let claimed = store
        .claim_due(Mode::Test, 2_000, 10, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "and it is claimed for delivery");
    assert_eq!(claimed[0].body.as_ref(), b"{}");
}

#[tokio::test]
async fn a_sqlite_store_of_the_previous_release_opens_and_keeps_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        // The release before the last one (schema 3) too: the status page's migration runs now.
        for (number, sql) in previous_release("sqlite").iter().take(3).enumerate() {
            conn.execute_batch(&format!("BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;", number + 1))
                .unwrap();
        }
        conn.execute_batch(&OLD_EVENT.replace("{live}", "0").replace("{body}", "X'7B7D'"))
            .unwrap();
    }
    let store = SqliteStore::open(&path).expect("the old store opens");
    the_old_event_is_claimed_and_shown(&store).await;
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, LATEST);
}

#[tokio::test]
async fn a_postgres_store_of_the_previous_release_opens_keeps_its_events_and_is_renumbered() {
    let Some(schema) = fresh_schema("previous_release").await else {
        return;
    };
    let client = connect(&schema.url).await.unwrap();
    // As the previous release's runner did: its three migrations, numbered 1 to 3.
    client
        .batch_execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .await
        .unwrap();
    for (number, sql) in previous_release("postgres").iter().enumerate() {
        client.batch_execute(sql).await.unwrap();
        let version = number as i32 + 1;
        client
            .execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&version])
            .await
            .unwrap();
    }
    client
        .batch_execute(
            &OLD_EVENT
                .replace("{live}", "false")
                .replace("{body}", "'\\x7b7d'::bytea"),
        )
        .await
        .unwrap();

    let store = PostgresStore::open(&schema.url, 2)
        .await
        .expect("the old database opens");
    the_old_event_is_claimed_and_shown(&store).await;
    let versions: Vec<i32> = client
        .query("SELECT version FROM schema_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        versions,
        (1..=LATEST as i32).collect::<Vec<_>>(),
        "recorded as both engines count"
    );
    drop(store);
    PostgresStore::open(&schema.url, 2)
        .await
        .expect("and opens again, with nothing left to apply");
}
