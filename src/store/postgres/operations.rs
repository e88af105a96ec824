//! What the operations commands ask beyond the relays' own work: sending events again (each with
//! its replay line in the attempt log), deleting by age, counting what a purge would delete,
//! making waiting events due now (and waking the relays for them).

use super::PostgresStore;
use super::connect::classify;
use crate::domain::{EventId, Mode};
use crate::store::attempt_log::OUTCOME_REPLAYED;
use crate::store::{EventStatus, REPLAYABLE_SQL, ReplayOutcome, ReplayedBy, StoreError};

/// Makes the events `$1…` select pending with fresh attempts and writes each one's replay line,
/// in one statement: `$replayed_at` and `$by` are the statement's last two parameters.
fn replay_statement(select: &str, replayed_at: &str, by: &str) -> String {
    format!(
        "WITH replayed AS (
             UPDATE events SET status = 'pending', attempts = 0, attempts_400 = 0, next_attempt_at = {replayed_at},
                 lease_until = NULL, finished_at = NULL
             WHERE seq IN ({select}) RETURNING seq)
         INSERT INTO attempts (event_seq, at, status_code, duration_ms, outcome, error, excerpt)
         SELECT seq, {replayed_at}::BIGINT, NULL, 0, '{OUTCOME_REPLAYED}', {by}::TEXT, NULL FROM replayed"
    )
}

impl PostgresStore {
    pub(super) async fn replay_one(
        &self,
        id: &EventId,
        by: ReplayedBy,
        now_ms: i64,
    ) -> Result<ReplayOutcome, StoreError> {
        let select = format!("SELECT seq FROM events WHERE id = $1 AND status IN ({REPLAYABLE_SQL}) FOR UPDATE");
        let changed = self
            .execute(
                &replay_statement(&select, "$2", "$3"),
                &[&id.as_str(), &now_ms, &by.words()],
            )
            .await?;
        if changed == 1 {
            self.announcer.stored();
            return Ok(ReplayOutcome::Replayed);
        }
        let rows = self
            .query("SELECT status FROM events WHERE id = $1", &[&id.as_str()])
            .await?;
        let status: Option<String> = rows.first().map(|r| r.try_get(0)).transpose().map_err(classify)?;
        Ok(ReplayOutcome::refused(status.as_deref()))
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
        let select = "SELECT seq FROM events WHERE status = $1 AND ($2::BIGINT IS NULL OR received_at >= $2)
                      ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED";
        let replayed = self
            .execute(
                &replay_statement(select, "$4", "$5"),
                &[&status.as_str(), &since_ms, &i64::from(limit), &now_ms, &by.words()],
            )
            .await?;
        if replayed > 0 {
            self.announcer.stored();
        }
        Ok(replayed)
    }

    pub(super) async fn delete_before(&self, statuses: &[&str], before_ms: i64) -> Result<u64, StoreError> {
        let statuses: Vec<String> = statuses.iter().map(|s| s.to_string()).collect();
        let deleted = self
            .execute(
                "DELETE FROM events WHERE status = ANY($1) AND received_at < $2",
                &[&statuses, &before_ms],
            )
            .await?;
        self.vacuum.rewrote(deleted);
        Ok(deleted)
    }

    pub(super) async fn make_due(&self, id: Option<&EventId>, now_ms: i64) -> Result<u64, StoreError> {
        let id = id.map(|id| id.as_str().to_owned());
        let changed = self
            .execute(
                "UPDATE events SET next_attempt_at = $1
                 WHERE status = 'pending' AND next_attempt_at > $1 AND ($2::TEXT IS NULL OR id = $2)",
                &[&now_ms, &id],
            )
            .await?;
        if changed > 0 {
            self.announcer.stored();
        }
        Ok(changed)
    }

    pub(super) async fn make_due_failed_since(
        &self,
        mode: Mode,
        failed_since_ms: i64,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let changed = self
            .execute(
                "UPDATE events e SET next_attempt_at = $1
                 WHERE e.status = 'pending' AND e.live_mode = $2 AND e.next_attempt_at > $1
                   AND EXISTS (SELECT 1 FROM attempts a WHERE a.event_seq = e.seq AND a.at >= $3)",
                &[&now_ms, &mode.is_live(), &failed_since_ms],
            )
            .await?;
        if changed > 0 {
            self.announcer.stored();
        }
        Ok(changed)
    }

    pub(super) async fn count_delivered(&self, before_ms: i64) -> Result<u64, StoreError> {
        let rows = self
            .query(
                "SELECT COUNT(*) FROM events WHERE status = 'delivered' AND received_at < $1",
                &[&before_ms],
            )
            .await?;
        let count: i64 = rows
            .first()
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(classify)?
            .unwrap_or(0);
        Ok(count as u64)
    }
}
