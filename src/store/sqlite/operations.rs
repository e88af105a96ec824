//! What the operations commands ask beyond the relay's own work: deleting by age, counting what a
//! purge would delete, making waiting events due now.

use rusqlite::params;

use super::SqliteStore;
use super::writer::Admission;
use crate::domain::EventId;
use crate::store::StoreError;

impl SqliteStore {
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
