//! [`Store::confirm`](crate::store::Store::confirm) in PostgreSQL: read, decide, then one
//! statement that changes the event only if its status is still the one decided on (a replay or
//! a delivery by another relay in between wins), with its attempt-log line.

use super::PostgresStore;
use super::connect::classify;
use crate::store::confirm::{Confirmation, SalesforceFailure, decide};
use crate::store::{EventStatus, StoreError};

impl PostgresStore {
    pub(super) async fn apply_failure(
        &self,
        failure: &SalesforceFailure,
        now_ms: i64,
    ) -> Result<Confirmation, StoreError> {
        let client = self.client().await?;
        let marker = failure.marker();
        let row = client
            .query_opt(
                "SELECT seq, status, finished_at,
                        EXISTS (SELECT 1 FROM attempts WHERE event_seq = events.seq AND excerpt = $2)
                 FROM events WHERE id = $1",
                &[&failure.event_id.as_str(), &marker],
            )
            .await
            .map_err(classify)?;
        let Some(row) = row else {
            return Ok(Confirmation::NotStored);
        };
        let seq: i64 = row.try_get(0).map_err(classify)?;
        let status: String = row.try_get(1).map_err(classify)?;
        let finished_at: Option<i64> = row.try_get(2).map_err(classify)?;
        let applied: bool = row.try_get(3).map_err(classify)?;
        let Some(status) = EventStatus::parse(&status) else {
            return Ok(Confirmation::Unchanged);
        };
        let Some(next) = decide(status, finished_at, applied, failure) else {
            return Ok(Confirmation::Unchanged);
        };
        let line = failure.attempt_line(next, now_ms);
        let changed = client
            .execute(
                "WITH changed AS (
                     UPDATE events SET status = $3, last_error = $4 WHERE seq = $1 AND status = $2 RETURNING seq)
                 INSERT INTO attempts (event_seq, at, status_code, duration_ms, outcome, error, excerpt)
                 SELECT seq, $5, NULL, 0, $6, $4, $7 FROM changed",
                &[
                    &seq,
                    &status.as_str(),
                    &next.as_str(),
                    &line.error,
                    &line.at_ms,
                    &line.outcome,
                    &line.excerpt,
                ],
            )
            .await
            .map_err(classify)?;
        Ok(if changed == 1 {
            Confirmation::of(Some(next))
        } else {
            Confirmation::Unchanged
        })
    }
}
