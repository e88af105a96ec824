//! The SQLite engine: one file, one writer thread, group commit.
//!
//! Durability costs a disk flush per commit, and one flush per event would cap ingest at the
//! disk's flush rate. So every operation is a job sent to a single thread that owns the
//! connection: it takes all jobs waiting, runs them in one transaction (each in its own savepoint,
//! so one failing job does not undo the others), commits once, and only then answers each caller.
//! Under load many events share one flush; alone, an event waits for nothing.
//!
//! The file is in WAL mode with `synchronous = FULL`: a commit that returned is on disk, so an
//! acknowledged event survives a crash or a power cut.
//!
//! One relay process uses a file at a time (several processes need the PostgreSQL engine); that is
//! what lets `open` take over the leases a crashed predecessor left behind.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::{
    AttemptRecord, AttemptSummary, ClaimedEvent, EventFilter, EventStatus, EventSummary, InsertOutcome, NewEvent,
    ReplayOutcome, Store, StoreError, StoreStats, Transition,
};
use crate::domain::{EventId, EventType};

/// The longest a batch grows before it is committed.
const MAX_BATCH: usize = 512;
/// How long a write waits for another process's lock before the store reports itself unavailable:
/// well under DR's 3 s answer limit.
const BUSY_TIMEOUT: Duration = Duration::from_millis(1000);

const SCHEMA_VERSION: i64 = 1;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    type            TEXT    NOT NULL,
    live_mode       INTEGER NOT NULL,
    order_key       TEXT,
    received_at     INTEGER NOT NULL,
    body            BLOB    NOT NULL,
    status          TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    attempts_400    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    finished_at     INTEGER
);
CREATE INDEX IF NOT EXISTS events_due ON events (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS events_pending_order ON events (order_key, seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS events_received ON events (received_at);
CREATE TABLE IF NOT EXISTS attempts (
    event_seq   INTEGER NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    status_code INTEGER,
    duration_ms INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    error       TEXT,
    excerpt     TEXT
);
CREATE INDEX IF NOT EXISTS attempts_event ON attempts (event_seq);
";

type Reply = Box<dyn FnOnce(Result<(), String>) + Send>;
/// A job runs its statements on the connection (or, given `None`, fails without running) and
/// answers how to reply once the batch's commit is known.
type Job = Box<dyn FnOnce(Option<&Connection>) -> Reply + Send>;

pub struct SqliteStore {
    jobs: mpsc::UnboundedSender<Job>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and starts its writer thread.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .context("setting up SQLite durability")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            anyhow::bail!(
                "{} was written by a newer dr-sf-bridge (schema {version})",
                path.display()
            );
        }
        conn.execute_batch(SCHEMA).context("creating the schema")?;
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;

        let (jobs, receiver) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer(conn, receiver))?;
        Ok(Self { jobs })
    }

    /// Drops every lease. One relay process owns a SQLite file, so a lease found when the relay
    /// starts belongs to a process that died: its events become claimable at once instead of after
    /// the lease runs out. Operations commands open the file without this.
    pub async fn take_over_leases(&self) -> Result<(), StoreError> {
        let released = self
            .run(|conn| conn.execute("UPDATE events SET lease_until = NULL WHERE lease_until IS NOT NULL", []))
            .await?;
        if released > 0 {
            tracing::warn!(released, "took over events left in flight by a previous run");
        }
        Ok(())
    }

    /// Runs `f` inside the next batch's transaction and answers after the commit.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Some(conn) => in_savepoint(conn, f).map_err(|e| StoreError::Unavailable(e.to_string())),
                None => Err(StoreError::Unavailable("the transaction could not start".into())),
            };
            Box::new(move |commit: Result<(), String>| {
                let answer = match (result, commit) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(StoreError::Unavailable(e)),
                };
                let _ = tx.send(answer);
            })
        });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    conn.execute_batch("SAVEPOINT job")?;
    match f(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE job")?;
            Ok(value)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e)
        }
    }
}

fn writer(conn: Connection, mut receiver: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let began = conn.execute_batch("BEGIN IMMEDIATE");
        let replies: Vec<Reply> = match &began {
            Ok(()) => batch.into_iter().map(|job| job(Some(&conn))).collect(),
            Err(_) => batch.into_iter().map(|job| job(None)).collect(),
        };
        let committed = began.and_then(|()| conn.execute_batch("COMMIT")).map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            tracing::error!(error = %e, jobs = replies.len(), "SQLite commit failed");
            e.to_string()
        });
        for reply in replies {
            reply(committed.clone());
        }
    }
}

fn corrupt(e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(e.to_string().into())
}

const SUMMARY_COLUMNS: &str =
    "id, type, status, live_mode, order_key, received_at, attempts, next_attempt_at, last_status, last_error";

fn summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<EventSummary> {
    let status: String = row.get(2)?;
    let status = EventStatus::parse(&status).ok_or_else(|| corrupt(format!("unknown status {status}")))?;
    Ok(EventSummary {
        id: row.get(0)?,
        event_type: row.get(1)?,
        status,
        live_mode: row.get(3)?,
        order_key: row.get(4)?,
        received_at_ms: row.get(5)?,
        attempts: row.get(6)?,
        next_attempt_at_ms: (status == EventStatus::Pending).then(|| row.get(7)).transpose()?,
        last_status: row.get(8)?,
        last_error: row.get(9)?,
    })
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn insert(&self, event: NewEvent) -> Result<InsertOutcome, StoreError> {
        self.run(move |conn| {
            let finished = (event.status != EventStatus::Pending).then_some(event.received_at_ms);
            let inserted = conn.execute(
                "INSERT INTO events (id, type, live_mode, order_key, received_at, body, status, next_attempt_at, finished_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?5, ?8)
                 ON CONFLICT (id) DO NOTHING",
                params![
                    event.id.as_str(),
                    event.event_type.as_str(),
                    event.live_mode,
                    event.order_key.as_ref().map(|k| k.as_str()),
                    event.received_at_ms,
                    &event.body[..],
                    event.status.as_str(),
                    finished,
                ],
            )?;
            Ok(if inserted == 1 { InsertOutcome::Inserted } else { InsertOutcome::Duplicate })
        })
        .await
    }

    async fn claim_due(&self, now_ms: i64, limit: u32, lease: Duration) -> Result<Vec<ClaimedEvent>, StoreError> {
        let lease_until = now_ms + lease.as_millis() as i64;
        self.run(move |conn| {
            let mut select = conn.prepare_cached(
                "SELECT e.seq, e.id, e.type, e.body, e.attempts, e.attempts_400, e.received_at
                 FROM events e
                 WHERE e.status = 'pending' AND e.next_attempt_at <= ?1
                   AND (e.lease_until IS NULL OR e.lease_until <= ?1)
                   AND NOT EXISTS (
                       SELECT 1 FROM events p
                       WHERE p.status = 'pending' AND p.order_key = e.order_key AND p.seq < e.seq)
                 ORDER BY e.next_attempt_at, e.seq
                 LIMIT ?2",
            )?;
            let rows = select.query_map(params![now_ms, limit], |row| {
                let id: String = row.get(1)?;
                let event_type: String = row.get(2)?;
                Ok(ClaimedEvent {
                    seq: row.get(0)?,
                    id: EventId::parse(&id).map_err(corrupt)?,
                    event_type: EventType::parse(&event_type).map_err(corrupt)?,
                    body: Bytes::from(row.get::<_, Vec<u8>>(3)?),
                    attempts: row.get(4)?,
                    attempts_400: row.get(5)?,
                    received_at_ms: row.get(6)?,
                })
            })?;
            let claimed: Vec<ClaimedEvent> = rows.collect::<rusqlite::Result<_>>()?;
            let mut lease_stmt = conn.prepare_cached("UPDATE events SET lease_until = ?1 WHERE seq = ?2")?;
            for event in &claimed {
                lease_stmt.execute(params![lease_until, event.seq])?;
            }
            Ok(claimed)
        })
        .await
    }

    async fn finish_attempt(&self, seq: i64, record: AttemptRecord, transition: Transition) -> Result<(), StoreError> {
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO attempts (event_seq, at, status_code, duration_ms, outcome, error, excerpt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                seq,
                record.at_ms,
                record.status_code,
                record.duration_ms as i64,
                record.outcome,
                record.error,
                record.excerpt
            ])?;
            match transition {
                Transition::Delivered => conn
                    .prepare_cached(
                        "UPDATE events SET status = 'delivered', attempts = attempts + 1, lease_until = NULL,
                         last_status = ?2, last_error = NULL, finished_at = ?3 WHERE seq = ?1",
                    )?
                    .execute(params![seq, record.status_code, record.at_ms])?,
                Transition::Dead => conn
                    .prepare_cached(
                        "UPDATE events SET status = 'dead', attempts = attempts + 1, lease_until = NULL,
                         last_status = ?2, last_error = ?3, finished_at = ?4 WHERE seq = ?1",
                    )?
                    .execute(params![seq, record.status_code, record.error, record.at_ms])?,
                Transition::RetryAt {
                    at_ms,
                    counted,
                    was_400,
                } => conn
                    .prepare_cached(
                        "UPDATE events SET attempts = attempts + ?2, attempts_400 = attempts_400 + ?3,
                         next_attempt_at = ?4, lease_until = NULL, last_status = ?5, last_error = ?6 WHERE seq = ?1",
                    )?
                    .execute(params![
                        seq,
                        counted as i64,
                        was_400 as i64,
                        at_ms,
                        record.status_code,
                        record.error
                    ])?,
            };
            Ok(())
        })
        .await
    }

    async fn release(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        self.run(move |conn| {
            let mut stmt = conn.prepare_cached("UPDATE events SET lease_until = NULL WHERE seq = ?1")?;
            for seq in seqs {
                stmt.execute([seq])?;
            }
            Ok(())
        })
        .await
    }

    async fn next_due_at(&self) -> Result<Option<i64>, StoreError> {
        self.run(|conn| {
            // Only events that could be claimed then: not in flight, first of their order. A successor
            // waiting behind a predecessor's retry must not make the worker spin.
            conn.query_row(
                "SELECT MIN(e.next_attempt_at) FROM events e
                 WHERE e.status = 'pending' AND e.lease_until IS NULL
                   AND NOT EXISTS (
                       SELECT 1 FROM events p
                       WHERE p.status = 'pending' AND p.order_key = e.order_key AND p.seq < e.seq)",
                [],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn list(&self, filter: EventFilter) -> Result<Vec<EventSummary>, StoreError> {
        self.run(move |conn| {
            let limit = if filter.limit == 0 { 100 } else { filter.limit };
            let sql = format!(
                "SELECT {SUMMARY_COLUMNS} FROM events WHERE (?1 IS NULL OR status = ?1) ORDER BY seq DESC LIMIT ?2"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![filter.status.map(|s| s.as_str()), limit], summary)?;
            rows.collect()
        })
        .await
    }

    async fn get(&self, id: &EventId) -> Result<Option<(EventSummary, Vec<AttemptSummary>)>, StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            let sql = format!("SELECT {SUMMARY_COLUMNS}, seq FROM events WHERE id = ?1");
            let Some((event, seq)) = conn
                .query_row(&sql, [&id], |row| Ok((summary(row)?, row.get::<_, i64>(10)?)))
                .optional()?
            else {
                return Ok(None);
            };
            let mut stmt = conn.prepare_cached(
                "SELECT at, status_code, duration_ms, outcome, error, excerpt FROM attempts WHERE event_seq = ?1 ORDER BY rowid",
            )?;
            let attempts = stmt
                .query_map([seq], |row| {
                    Ok(AttemptSummary {
                        at_ms: row.get(0)?,
                        status_code: row.get(1)?,
                        duration_ms: row.get::<_, i64>(2)? as u64,
                        outcome: row.get(3)?,
                        error: row.get(4)?,
                        excerpt: row.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some((event, attempts)))
        })
        .await
    }

    async fn body(&self, id: &EventId) -> Result<Option<Bytes>, StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            conn.query_row("SELECT body FROM events WHERE id = ?1", [&id], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .optional()
            .map(|b| b.map(Bytes::from))
        })
        .await
    }

    async fn replay(&self, id: &EventId, now_ms: i64) -> Result<ReplayOutcome, StoreError> {
        let id = id.as_str().to_owned();
        self.run(move |conn| {
            let changed = conn.execute(
                "UPDATE events SET status = 'pending', attempts = 0, attempts_400 = 0, next_attempt_at = ?2,
                     lease_until = NULL, finished_at = NULL
                 WHERE id = ?1 AND status IN ('dead', 'delivered')",
                params![id, now_ms],
            )?;
            if changed == 1 {
                return Ok(ReplayOutcome::Replayed);
            }
            let status: Option<String> = conn
                .query_row("SELECT status FROM events WHERE id = ?1", [&id], |r| r.get(0))
                .optional()?;
            Ok(match status.as_deref().and_then(EventStatus::parse) {
                Some(status) => ReplayOutcome::NotReplayable(status),
                None => ReplayOutcome::NotFound,
            })
        })
        .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.run(|conn| {
            let mut stats = StoreStats::default();
            let mut stmt = conn.prepare_cached("SELECT status, COUNT(*) FROM events GROUP BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
            for row in rows {
                let (status, count) = row?;
                match EventStatus::parse(&status) {
                    Some(EventStatus::Pending) => stats.pending = count,
                    Some(EventStatus::Delivered) => stats.delivered = count,
                    Some(EventStatus::Dead) => stats.dead = count,
                    Some(EventStatus::Ignored) => stats.ignored = count,
                    None => {}
                }
            }
            stats.oldest_pending_received_at_ms = conn.query_row(
                "SELECT MIN(received_at) FROM events WHERE status = 'pending'",
                [],
                |r| r.get(0),
            )?;
            Ok(stats)
        })
        .await
    }

    async fn prune(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.run(move |conn| {
            let deleted = conn.execute(
                "DELETE FROM events WHERE status IN ('delivered', 'ignored') AND received_at < ?1",
                [before_ms],
            )?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| conn.query_row("SELECT 1", [], |_| Ok(()))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrderKey;
    use crate::store::AttemptRecord;

    fn event(id: &str, order: &str, at: i64) -> NewEvent {
        NewEvent {
            id: EventId::parse(id).unwrap(),
            event_type: EventType::parse("order.accepted").unwrap(),
            live_mode: false,
            order_key: OrderKey::from_data_object(&serde_json::json!({ "id": order })),
            body: Bytes::from(format!(r#"{{"id":"{id}"}}"#)),
            status: EventStatus::Pending,
            received_at_ms: at,
        }
    }

    fn record(at: i64) -> AttemptRecord {
        AttemptRecord {
            at_ms: at,
            status_code: Some(503),
            duration_ms: 5,
            outcome: "retry",
            error: None,
            excerpt: None,
        }
    }

    #[tokio::test]
    async fn an_event_id_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
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

    #[tokio::test]
    async fn a_later_event_of_the_same_order_waits_for_the_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        store.insert(event("x1", "X", 1)).await.unwrap();
        store.insert(event("x2", "X", 2)).await.unwrap();
        store.insert(event("y1", "Y", 3)).await.unwrap();
        let lease = Duration::from_secs(60);

        let first: Vec<String> = store
            .claim_due(10, 10, lease)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id.to_string())
            .collect();
        assert_eq!(first, ["x1", "y1"]);
        assert!(
            store.claim_due(10, 10, lease).await.unwrap().is_empty(),
            "leased and blocked"
        );

        // x1 (seq 1) fails and waits for a retry: x2 still waits.
        store
            .finish_attempt(
                1,
                record(10),
                Transition::RetryAt {
                    at_ms: 1000,
                    counted: true,
                    was_400: false,
                },
            )
            .await
            .unwrap();
        assert!(store.claim_due(20, 10, lease).await.unwrap().is_empty());
        // x1 delivered: x2 is next.
        let again = store.claim_due(1000, 10, lease).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 1);
        store
            .finish_attempt(1, record(1000), Transition::Delivered)
            .await
            .unwrap();
        let next: Vec<String> = store
            .claim_due(1001, 10, lease)
            .await
            .unwrap()
            .iter()
            .map(|e| e.id.to_string())
            .collect();
        assert_eq!(next, ["x2"]);
    }

    #[tokio::test]
    async fn the_next_due_time_ignores_events_blocked_behind_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        store.insert(event("x1", "X", 1)).await.unwrap();
        store.insert(event("x2", "X", 2)).await.unwrap();
        store.claim_due(10, 10, Duration::from_secs(60)).await.unwrap();
        store
            .finish_attempt(
                1,
                record(10),
                Transition::RetryAt {
                    at_ms: 5_000,
                    counted: true,
                    was_400: false,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            store.next_due_at().await.unwrap(),
            Some(5_000),
            "x2 (due since 2) waits for x1"
        );
    }

    #[tokio::test]
    async fn an_expired_lease_is_claimed_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        store.insert(event("e1", "o1", 1)).await.unwrap();
        assert_eq!(
            store.claim_due(10, 10, Duration::from_millis(100)).await.unwrap().len(),
            1
        );
        assert!(
            store
                .claim_due(50, 10, Duration::from_millis(100))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .claim_due(111, 10, Duration::from_millis(100))
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn events_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            store.insert(event("e1", "o1", 1)).await.unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let body = store.body(&EventId::parse("e1").unwrap()).await.unwrap().unwrap();
        assert_eq!(&body[..], br#"{"id":"e1"}"#);
    }
}
