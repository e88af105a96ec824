//! What the operations commands ask beyond the relay's own work: sending events again (each with
//! its replay line in the attempt log), deleting by age, counting what a purge would delete,
//! making waiting events due now.

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::writer::Admission;
use crate::domain::{EventId, Mode};
use crate::store::attempt_log::OUTCOME_REPLAYED;
use crate::store::{EventStatus, REPLAYABLE_SQL, ReplayOutcome, ReplayedBy, StoreError};

/// Makes the events `seq` selects pending with fresh attempts, each with its replay line.
fn replay_selected(
    conn: &Connection,
    select: &str,
    values: impl rusqlite::Params,
    by: ReplayedBy,
    now_ms: i64,
) -> rusqlite::Result<u64> {
    let seqs: Vec<i64> = conn
        .prepare(select)?
        .query_map(values, |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = conn.prepare_cached(
        "UPDATE events SET status = 'pending', attempts = 0, attempts_400 = 0, next_attempt_at = ?2,
             finished_at = NULL
         WHERE seq = ?1",
    )?;
    let mut line = conn.prepare_cached(
        "INSERT INTO attempts (event_seq, at, status_code, duration_ms, outcome, error, excerpt)
         VALUES (?1, ?2, NULL, 0, ?3, ?4, NULL)",
    )?;
    for seq in &seqs {
        update.execute(params![seq, now_ms])?;
        line.execute(params![seq, now_ms, OUTCOME_REPLAYED, by.words()])?;
    }
    Ok(seqs.len() as u64)
}

impl SqliteStore {
    pub(super) async fn replay_one(
        &self,
        id: &EventId,
        by: ReplayedBy,
        now_ms: i64,
    ) -> Result<ReplayOutcome, StoreError> {
        let id = id.as_str().to_owned();
        self.writer
            .run(Admission::WaitForRoom, move |conn| {
                let select = format!("SELECT seq FROM events WHERE id = ?1 AND status IN ({REPLAYABLE_SQL})");
                if replay_selected(conn, &select, [&id], by, now_ms)? == 1 {
                    return Ok(ReplayOutcome::Replayed);
                }
                let status: Option<String> = conn
                    .query_row("SELECT status FROM events WHERE id = ?1", [&id], |r| r.get(0))
                    .optional()?;
                Ok(ReplayOutcome::refused(status.as_deref()))
            })
            .await
    }

    pub(super) async fn replay_oldest(
        &self,
        status: EventStatus,
        since_ms: Option<i64>,
        limit: u32,
        by: ReplayedBy,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if !status.is_replayable() {
            return Ok(0);
        }
        self.writer
            .run(Admission::WaitForRoom, move |conn| {
                replay_selected(
                    conn,
                    "SELECT seq FROM events WHERE status = ?1 AND (?2 IS NULL OR received_at >= ?2) ORDER BY seq LIMIT ?3",
                    params![status.as_str(), since_ms, limit],
                    by,
                    now_ms,
                )
            })
            .await
    }

    /// Deletes the events of `statuses` (an SQL list of literals) received before `before_ms`.
    pub(super) async fn delete_before(&self, statuses: &'static str, before_ms: i64) -> Result<u64, StoreError> {
        self.writer
            .run(Admission::WaitForRoom, move |conn| {
                let sql = format!("DELETE FROM events WHERE status IN ({statuses}) AND received_at < ?1");
                Ok(conn.execute(&sql, [before_ms])? as u64)
            })
            .await
    }

    pub(super) async fn make_due(&self, id: Option<&EventId>, now_ms: i64) -> Result<u64, StoreError> {
        let id = id.map(|id| id.as_str().to_owned());
        self.writer
            .run(Admission::WaitForRoom, move |conn| {
                let changed = conn.execute(
                    "UPDATE events SET next_attempt_at = ?1
                     WHERE status = 'pending' AND next_attempt_at > ?1 AND (?2 IS NULL OR id = ?2)",
                    params![now_ms, id],
                )?;
                Ok(changed as u64)
            })
            .await
    }

    pub(super) async fn make_due_failed_since(
        &self,
        mode: Mode,
        failed_since_ms: i64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        self.writer
            .run(Admission::WaitForRoom, move |conn| {
                let changed = conn.execute(
                    "UPDATE events SET next_attempt_at = ?1
                     WHERE status = 'pending' AND live_mode = ?2 AND next_attempt_at > ?1
                       AND EXISTS (SELECT 1 FROM attempts a WHERE a.event_seq = events.seq AND a.at >= ?3)",
                    params![now_ms, mode.is_live(), failed_since_ms],
                )?;
                Ok(changed as u64)
            })
            .await
    }

    pub(super) async fn count_delivered(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.reader
            .run(move |conn| {
                conn.query_row(
                    "SELECT COUNT(*) FROM events WHERE status = 'delivered' AND received_at < ?1",
                    [before_ms],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n as u64)
            })
            .await
    }
}
