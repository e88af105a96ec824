//! Export and import for `store copy` (see [`crate::store::copy_all`]).

use bytes::Bytes;

use super::PostgresStore;
use super::connect::classify;
use super::queries::{SUMMARY_COLUMNS, attempts_of, summary};
use crate::store::{StoreError, StoredEvent};

impl PostgresStore {
    pub(super) async fn export_events(&self, after_seq: i64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS}, attempts_400, next_attempt_at, finished_at, body, trace_parent
             FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        let rows = client
            .query(&sql, &[&after_seq, &i64::from(limit)])
            .await
            .map_err(classify)?;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let seq: i64 = row.try_get(10).map_err(classify)?;
            let attempts_400: i32 = row.try_get(12).map_err(classify)?;
            events.push(StoredEvent {
                summary: summary(row)?,
                seq,
                attempts_400: attempts_400 as u32,
                next_attempt_at_ms: row.try_get(13).map_err(classify)?,
                finished_at_ms: row.try_get(14).map_err(classify)?,
                body: Bytes::from(row.try_get::<_, Vec<u8>>(15).map_err(classify)?),
                attempt_log: attempts_of(&client, seq).await?,
                trace_parent: row.try_get(16).map_err(classify)?,
            });
        }
        Ok(events)
    }

    pub(super) async fn import_events(&self, events: Vec<StoredEvent>) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(classify)?;
        let insert = tx
            .prepare(
                "INSERT INTO events (id, type, live_mode, order_key, received_at, body, status, attempts,
                                     attempts_400, next_attempt_at, last_status, last_error, finished_at, source,
                                             trace_parent)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
                 ON CONFLICT (id) DO NOTHING RETURNING seq",
            )
            .await
            .map_err(classify)?;
        let add = tx
            .prepare(
                "INSERT INTO attempts (event_seq, at, status_code, duration_ms, outcome, error, excerpt)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await
            .map_err(classify)?;
        let mut imported = 0;
        let mut pending = false;
        for event in events {
            let e = &event.summary;
            let inserted = tx
                .query_opt(
                    &insert,
                    &[
                        &e.id,
                        &e.event_type,
                        &e.live_mode,
                        &e.order_key,
                        &e.received_at_ms,
                        &&event.body[..],
                        &e.status.as_str(),
                        &(e.attempts as i32),
                        &(event.attempts_400 as i32),
                        &event.next_attempt_at_ms,
                        &e.last_status.map(i32::from),
                        &e.last_error,
                        &event.finished_at_ms,
                        &e.source.as_str(),
                        &event.trace_parent,
                    ],
                )
                .await
                .map_err(classify)?;
            let Some(row) = inserted else { continue };
            imported += 1;
            pending |= e.status == crate::store::EventStatus::Pending;
            let seq: i64 = row.try_get(0).map_err(classify)?;
            for a in &event.attempt_log {
                tx.execute(
                    &add,
                    &[
                        &seq,
                        &a.at_ms,
                        &a.status_code.map(i32::from),
                        &(a.duration_ms as i64),
                        &a.outcome,
                        &a.error,
                        &a.excerpt,
                    ],
                )
                .await
                .map_err(classify)?;
            }
        }
        tx.commit().await.map_err(classify)?;
        if pending {
            self.announcer.stored();
        }
        Ok(imported)
    }
}
