//! [`Store::confirm`](crate::store::Store::confirm) in SQLite: read, decide, change — one job of
//! the writer thread, so nothing else touches the event in between.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::writer::Admission;
use crate::store::confirm::{Confirmation, SalesforceFailure, decide};
use crate::store::{EventStatus, StoreError};

impl SqliteStore {
    pub(super) async fn apply_failure(
        &self,
        failure: &SalesforceFailure,
        now_ms: i64,
    ) -> Result<Confirmation, StoreError> {
        let failure = failure.clone();
        self.writer
            .run(Admission::WaitForRoom, move |conn| {
                let row: Option<(i64, String, Option<i64>, bool)> = conn
                    .query_row(
                        "SELECT seq, status, finished_at,
                                EXISTS (SELECT 1 FROM attempts WHERE event_seq = events.seq AND excerpt = ?2)
                         FROM events WHERE id = ?1",
                        params![failure.event_id.as_str(), failure.marker()],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                    )
                    .optional()?;
                let Some((seq, status, finished_at, applied)) = row else {
                    return Ok(Confirmation::NotStored);
                };
                let Some(status) = EventStatus::parse(&status) else {
                    return Ok(Confirmation::Unchanged);
                };
                let Some(next) = decide(status, finished_at, applied, &failure) else {
                    return Ok(Confirmation::Unchanged);
                };
                let line = failure.attempt_line(next, now_ms);
                conn.execute(
                    "UPDATE events SET status = ?2, last_error = ?3 WHERE seq = ?1",
                    params![seq, next.as_str(), line.error],
                )?;
                conn.execute(
                    "INSERT INTO attempts (event_seq, at, status_code, duration_ms, outcome, error, excerpt)
                     VALUES (?1, ?2, NULL, 0, ?3, ?4, ?5)",
                    params![seq, line.at_ms, line.outcome, line.error, line.excerpt],
                )?;
                Ok(Confirmation::of(Some(next)))
            })
            .await
    }
}
