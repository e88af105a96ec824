//! What the operations commands ask beyond the relays' own work: deleting by age, counting what a
//! purge would delete, making waiting events due now (and waking the relays for them).

use super::PostgresStore;
use super::connect::classify;
use crate::domain::EventId;
use crate::store::StoreError;

impl PostgresStore {
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
