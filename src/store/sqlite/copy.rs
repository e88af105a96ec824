//! Export and import for `store copy` (see [`crate::store::copy_all`]).

use bytes::Bytes;
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::rows::{SUMMARY_COLUMNS, summary};
use super::writer::Admission;
use crate::store::{AttemptSummary, StoreError, StoredEvent};

/// An event's attempts, oldest first.
pub(super) fn attempts_of(conn: &Connection, seq: i64) -> rusqlite::Result<Vec<AttemptSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, status_code, duration_ms, outcome, error, excerpt FROM attempts WHERE event_seq = ?1 ORDER BY rowid",
    )?;
    stmt.query_map([seq], |row| {
        Ok(AttemptSummary {
            at_ms: row.get(0)?,
            status_code: row.get(1)?,
            duration_ms: row.get::<_, i64>(2)? as u64,
            outcome: row.get(3)?,
            error: row.get(4)?,
            excerpt: row.get(5)?,
        })
    })?
    .collect()
}

impl SqliteStore {
    pub(super) async fn export_events(&self, after_seq: i64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        self.reader
            .run(move |conn| {
                let sql = format!(
                    "SELECT {SUMMARY_COLUMNS}, attempts_400, next_attempt_at, finished_at, body, trace_parent
                     FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
                );
                let mut stmt = conn.prepare_cached(&sql)?;
                let events = stmt
                    .query_map(params![after_seq, limit], |row| {
                        Ok(StoredEvent {
                            summary: summary(row)?,
                            seq: row.get(10)?,
                            attempts_400: row.get(12)?,
                            next_attempt_at_ms: row.get(13)?,
                            finished_at_ms: row.get(14)?,
                            body: Bytes::from(row.get::<_, Vec<u8>>(15)?),
                            attempt_log: Vec::new(),
                            trace_parent: row.get(16)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                events
                    .into_iter()
                    .map(|mut event| {
                        event.attempt_log = attempts_of(conn, event.seq)?;
                        Ok(event)
                    })
                    .collect()
            })
            .await
    }

    pub(super) async fn import_events(&self, events: Vec<StoredEvent>) -> Result<u64, StoreError> {
        self.writer
            .run(Admission::WaitForRoom, move |conn| {
                let mut imported = 0;
                for event in events {
                    let e = &event.summary;
                    let inserted = conn
                        .prepare_cached(
                            "INSERT INTO events (id, type, live_mode, order_key, received_at, body, status, attempts,
                                             attempts_400, next_attempt_at, last_status, last_error, finished_at, source,
                                             trace_parent)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
                         ON CONFLICT (id) DO NOTHING",
                        )?
                        .execute(params![
                            e.id,
                            e.event_type,
                            e.live_mode,
                            e.order_key,
                            e.received_at_ms,
                            &event.body[..],
                            e.status.as_str(),
                            e.attempts,
                            event.attempts_400,
                            event.next_attempt_at_ms,
                            e.last_status,
                            e.last_error,
                            event.finished_at_ms,
                            e.source.as_str(),
                            event.trace_parent,
                        ])?;
                    if inserted == 0 {
                        continue;
                    }
                    imported += 1;
                    let seq = conn.last_insert_rowid();
                    let mut add = conn.prepare_cached(
                        "INSERT INTO attempts (event_seq, at, status_code, duration_ms, outcome, error, excerpt)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?;
                    for a in &event.attempt_log {
                        add.execute(params![
                            seq,
                            a.at_ms,
                            a.status_code,
                            a.duration_ms as i64,
                            a.outcome,
                            a.error,
                            a.excerpt
                        ])?;
                    }
                }
                Ok(imported)
            })
            .await
    }
}
