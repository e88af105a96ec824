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
//! what lets the worker's leases live in the relay's memory ([`leases`]), gone with a relay that
//! dies.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

mod confirm;
mod copy;
mod leases;
mod lock;
mod operations;
mod reader;
mod rows;
mod wal_appends;
mod writer;

use lock::relay_lock;
use reader::Reader;
use rows::{SUMMARY_COLUMNS, summary};

pub use writer::QUEUE_CAPACITY;
use writer::{Admission, BUSY_TIMEOUT, Writer, migrate};

use super::{
    ActivityBucket, AttemptRecord, AttemptSummary, ClaimedEvent, EventFilter, EventStatus, EventSummary, FilterValue,
    InsertOutcome, NewEvent, ReplayOutcome, ReplayedBy, Store, StoreError, StoreStats, StoredEvent, Transition,
    activity_buckets,
};
use crate::domain::{EventId, Mode};

/// "The event `e` is the first pending one of its order" — the rule that keeps one order's events
/// in the order received, shared by the claim and the next due time so that the two never drift
/// apart. Answered through the partial index of pending events by order (`events_pending_order`):
/// the order's earlier events that are finished are not in it, so an order with thousands of
/// delivered events costs a claim no more than one with none. An event without an order
/// (`order_key` NULL) equals no other, so it waits for none.
macro_rules! first_of_its_order {
    () => {
        "NOT EXISTS (
             SELECT 1 FROM events p
             WHERE p.status = 'pending' AND p.order_key = e.order_key AND p.seq < e.seq)"
    };
}
use first_of_its_order;

/// The size of the write [`Store::ping`] commits: about one event's worth.
const READINESS_PROBE_BYTES: i64 = 64 * 1024;

pub struct SqliteStore {
    writer: Writer,
    reader: Reader,
    /// The events in flight (leases live in memory: see [`leases`]).
    leases: leases::Leases,
    /// Held while a relay uses the file: a second relay on the same file is refused.
    _relay_lock: Option<std::fs::File>,
    /// The directory of the database file, whose disk the store fills.
    dir: std::path::PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and starts its writer thread.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        Self::open_with_queue(path, QUEUE_CAPACITY)
    }

    /// Opens the file for the one relay that may use it: refused while another relay holds it
    /// (two relays on one file would deliver some events twice).
    pub fn open_for_relay(path: &Path) -> anyhow::Result<Self> {
        let lock = relay_lock(path)?;
        let mut store = Self::open(path)?;
        store._relay_lock = Some(lock);
        Ok(store)
    }

    /// Opens a file that exists, for an operations command beside the relay: a mistyped path is
    /// an error, never a new empty store.
    pub fn open_existing(path: &Path) -> anyhow::Result<Self> {
        if !path.is_file() {
            anyhow::bail!(
                "no store at {}: nothing has been stored there (check storage.url, or start the relay first)",
                path.display()
            );
        }
        Self::open(path)
    }

    /// [`open`](Self::open) with room for `capacity` waiting jobs.
    pub fn open_with_queue(path: &Path, capacity: usize) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let conn = open_for_writing(path).with_context(|| format!("opening {}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .context("setting up SQLite durability")?;
        migrate(&conn).with_context(|| format!("migrating {}", path.display()))?;

        Ok(Self {
            reader: Reader::open(path).with_context(|| format!("opening {} for reading", path.display()))?,
            writer: Writer::start(conn, capacity)?,
            leases: leases::Leases::default(),
            _relay_lock: None,
            dir: match path.parent().filter(|d| !d.as_os_str().is_empty()) {
                Some(dir) => dir.to_owned(),
                None => ".".into(),
            },
        })
    }
}

/// The writer's connection, through [`wal_appends`]: a commit's frames reach the WAL in a few
/// writes instead of two for each.
fn open_for_writing(path: &Path) -> anyhow::Result<Connection> {
    wal_appends::register()?;
    let vfs = wal_appends::VFS_NAME.to_str().context("the VFS layer's name")?;
    Ok(Connection::open_with_flags_and_vfs(
        path,
        rusqlite::OpenFlags::default(),
        vfs,
    )?)
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn insert(&self, event: NewEvent) -> Result<InsertOutcome, StoreError> {
        self.writer.run_statement(Admission::RefuseWhenFull, move |conn| {
            let finished = (event.status != EventStatus::Pending).then_some(event.received_at_ms);
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO events (id, type, live_mode, order_key, received_at, body, status, next_attempt_at, finished_at,
                                     last_error, source, trace_parent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?5, ?8, ?9, ?10, ?11)
                 ON CONFLICT (id) DO NOTHING",
                )?
                .execute(params![
                    event.id.as_str(),
                    event.event_type.as_str(),
                    event.live_mode,
                    event.order_key.as_ref().map(|k| k.as_str()),
                    event.received_at_ms,
                    &event.body[..],
                    event.status.as_str(),
                    finished,
                    event.reason,
                    event.source.as_str(),
                    event.trace_parent,
                ])?;
            Ok(if inserted == 1 { InsertOutcome::Inserted } else { InsertOutcome::Duplicate })
        })
        .await
    }

    async fn claim_due(
        &self,
        mode: Mode,
        now_ms: i64,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        self.claim(mode, now_ms, limit, lease).await
    }

    async fn finish_attempt(&self, seq: i64, record: AttemptRecord, transition: Transition) -> Result<(), StoreError> {
        self.writer
            .run(Admission::WaitForRoom, move |conn| {
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
                            "UPDATE events SET status = 'delivered', attempts = attempts + 1,
                         last_status = ?2, last_error = NULL, finished_at = ?3 WHERE seq = ?1",
                        )?
                        .execute(params![seq, record.status_code, record.at_ms])?,
                    Transition::Dead => conn
                        .prepare_cached(
                            "UPDATE events SET status = 'dead', attempts = attempts + 1,
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
                         next_attempt_at = ?4, last_status = ?5, last_error = ?6 WHERE seq = ?1",
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
            .await?;
        // Only once committed: an outcome that failed to commit keeps its event leased.
        self.leases.free(&[seq]);
        Ok(())
    }

    async fn release(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        self.leases.free(&seqs);
        Ok(())
    }

    async fn next_due_at(&self, mode: Mode) -> Result<Option<i64>, StoreError> {
        self.next_due(mode).await
    }

    async fn list(&self, filter: EventFilter) -> Result<Vec<EventSummary>, StoreError> {
        self.reader
            .run(move |conn| {
                // Only the conditions asked for, so that each can use its index.
                let (conditions, values) = filter.conditions(|n| format!("?{n}"));
                let sql = format!(
                    "SELECT {SUMMARY_COLUMNS} FROM events {conditions} ORDER BY seq DESC LIMIT {}",
                    filter.page_size()
                );
                let mut stmt = conn.prepare_cached(&sql)?;
                let values = values.into_iter().map(|v| match v {
                    FilterValue::Text(text) => rusqlite::types::Value::Text(text),
                    FilterValue::Number(n) => rusqlite::types::Value::Integer(n),
                });
                let rows = stmt.query_map(rusqlite::params_from_iter(values), summary)?;
                rows.collect()
            })
            .await
    }

    async fn get(&self, id: &EventId) -> Result<Option<(EventSummary, Vec<AttemptSummary>)>, StoreError> {
        let id = id.as_str().to_owned();
        self.reader
            .run(move |conn| {
                let sql = format!("SELECT {SUMMARY_COLUMNS} FROM events WHERE id = ?1");
                let Some((event, seq)) = conn
                    .query_row(&sql, [&id], |row| Ok((summary(row)?, row.get::<_, i64>(10)?)))
                    .optional()?
                else {
                    return Ok(None);
                };
                let attempts = copy::attempts_of(conn, seq)?;
                Ok(Some((event, attempts)))
            })
            .await
    }

    async fn body(&self, id: &EventId) -> Result<Option<Bytes>, StoreError> {
        let id = id.as_str().to_owned();
        self.reader
            .run(move |conn| {
                conn.query_row("SELECT body FROM events WHERE id = ?1", [&id], |r| {
                    r.get::<_, Vec<u8>>(0)
                })
                .optional()
                .map(|b| b.map(Bytes::from))
            })
            .await
    }

    async fn replay(&self, id: &EventId, by: ReplayedBy, now_ms: i64) -> Result<ReplayOutcome, StoreError> {
        self.replay_one(id, by, now_ms).await
    }

    async fn replay_batch(
        &self,
        status: EventStatus,
        since_ms: Option<i64>,
        limit: u32,
        by: ReplayedBy,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        self.replay_oldest(status, since_ms, limit, by, now_ms).await
    }

    async fn purge_delivered(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.delete_before("'delivered'", before_ms).await
    }

    async fn retry_now(&self, id: Option<&EventId>, now_ms: i64) -> Result<u64, StoreError> {
        self.make_due(id, now_ms).await
    }

    async fn retry_failed_since(&self, mode: Mode, failed_since_ms: i64, now_ms: i64) -> Result<u64, StoreError> {
        self.make_due_failed_since(mode, failed_since_ms, now_ms).await
    }

    async fn count_delivered_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.count_delivered(before_ms).await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.reader
            .run(|conn| {
                let mut stats = StoreStats::default();
                let mut stmt = conn.prepare_cached("SELECT status, COUNT(*) FROM events GROUP BY status")?;
                let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
                for row in rows {
                    let (status, count) = row?;
                    stats.count(&status, count);
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

    async fn activity(&self, since_ms: i64, bucket_ms: i64, buckets: usize) -> Result<Vec<ActivityBucket>, StoreError> {
        let from = since_ms;
        self.reader
            .run(move |conn| {
                let counts = |sql: &str| -> rusqlite::Result<Vec<(i64, u64)>> {
                    let mut stmt = conn.prepare_cached(sql)?;
                    let rows = stmt.query_map(params![from, bucket_ms], |r| {
                        Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
                    })?;
                    rows.collect()
                };
                let received =
                    counts("SELECT (received_at - ?1) / ?2, COUNT(*) FROM events WHERE received_at >= ?1 GROUP BY 1")?;
                let delivered = counts(
                    // Without statistics the planner would take events_status and read every
                    // delivered event's row.
                    "SELECT (finished_at - ?1) / ?2, COUNT(*) FROM events INDEXED BY events_delivered
                     WHERE status = 'delivered' AND finished_at >= ?1 GROUP BY 1",
                )?;
                Ok(activity_buckets(from, bucket_ms, buckets, received, delivered))
            })
            .await
    }

    async fn prune(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.delete_before("'delivered', 'ignored', 'recovered'", before_ms)
            .await
    }

    async fn confirm(
        &self,
        failure: &super::confirm::SalesforceFailure,
        now_ms: i64,
    ) -> Result<super::confirm::Confirmation, StoreError> {
        self.apply_failure(failure, now_ms).await
    }

    async fn state(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.reader
            .run(move |conn| {
                conn.query_row("SELECT value FROM relay_state WHERE key = ?1", [&key], |r| r.get(0))
                    .optional()
            })
            .await
    }

    async fn set_state(&self, key: &str, value: Option<String>, now_ms: i64) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.writer
            .run(Admission::WaitForRoom, move |conn| {
                match value {
                    Some(value) => conn.execute(
                        "INSERT INTO relay_state (key, value, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                        params![key, value, now_ms],
                    )?,
                    None => conn.execute("DELETE FROM relay_state WHERE key = ?1", [&key])?,
                };
                Ok(())
            })
            .await
    }

    async fn export(&self, after_seq: i64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        self.export_events(after_seq, limit).await
    }

    async fn import(&self, events: Vec<StoredEvent>) -> Result<u64, StoreError> {
        self.import_events(events).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A write that needs fresh space, committed: a full disk or a read-only file fails it,
        // where a read would still succeed.
        self.writer
            .run(Admission::WaitForRoom, |conn| {
                conn.execute(
                    "INSERT INTO relay_state (key, value, updated_at) VALUES ('readiness.probe', zeroblob(?1), 0)
                     ON CONFLICT (key) DO UPDATE SET value = zeroblob(?1), updated_at = updated_at + 1",
                    [READINESS_PROBE_BYTES],
                )
                .map(|_| ())
            })
            .await
    }

    fn disk_space(&self) -> Option<crate::store::disk::DiskSpace> {
        crate::store::disk::DiskSpace::of(&self.dir)
    }
}

#[cfg(test)]
mod tests;
