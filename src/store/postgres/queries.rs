//! The [`Store`] contract in PostgreSQL's SQL: the same statements as the SQLite engine's, with
//! row locks where several relays meet (claims) and a `NOTIFY` where another relay may be waiting
//! (new or replayed pending events).

use std::time::Duration;

use bytes::Bytes;
use tokio_postgres::Row;

use super::PostgresStore;
use super::connect::classify;
use super::group_commit::{Blob, Write};
use crate::domain::{EventId, EventType, Mode};
use crate::store::{
    ActivityBucket, Admission, AttemptRecord, AttemptSummary, ClaimedEvent, EventFilter, EventSource, EventStatus,
    EventSummary, FilterValue, InsertOutcome, NewEvent, ReplayOutcome, ReplayedBy, Store, StoreError, StoreStats,
    StoredEvent, Transition, activity_buckets,
};

/// "The event `e` is the first pending one of its order" — the rule that keeps one order's events
/// in the order received, shared by the claim and the next due time so that the two never drift
/// apart. A subquery run once per candidate through the order index: PostgreSQL plans it the same
/// on an empty table as on an analyzed one (an anti join planned on an empty table read every
/// pending event of the order for each candidate). An event without an order waits for none.
macro_rules! first_of_its_order {
    () => {
        "(e.order_key IS NULL OR e.seq = (
             SELECT MIN(p.seq) FROM events p WHERE p.status = 'pending' AND p.order_key = e.order_key))"
    };
}

/// The size of the write [`Store::ping`] commits: about one event's worth.
const READINESS_PROBE_BYTES: i32 = 64 * 1024;

pub(super) const SUMMARY_COLUMNS: &str = "id, type, status, live_mode, order_key, received_at, attempts, next_attempt_at, last_status, last_error, seq, source";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(super) fn summary(row: &Row) -> Result<EventSummary, StoreError> {
    let status: String = row.try_get(2).map_err(classify)?;
    let status = EventStatus::parse(&status).ok_or_else(|| corrupt(format!("unknown status {status}")))?;
    let attempts: i32 = row.try_get(6).map_err(classify)?;
    let last_status: Option<i32> = row.try_get(8).map_err(classify)?;
    Ok(EventSummary {
        id: row.try_get(0).map_err(classify)?,
        event_type: row.try_get(1).map_err(classify)?,
        status,
        live_mode: row.try_get(3).map_err(classify)?,
        target: Mode::of_event(row.try_get(3).map_err(classify)?),
        order_key: row.try_get(4).map_err(classify)?,
        received_at_ms: row.try_get(5).map_err(classify)?,
        attempts: attempts as u32,
        next_attempt_at_ms: if status == EventStatus::Pending {
            Some(row.try_get(7).map_err(classify)?)
        } else {
            None
        },
        last_status: last_status.map(|s| s as u16),
        last_error: row.try_get(9).map_err(classify)?,
        seq: row.try_get(10).map_err(classify)?,
        source: EventSource::parse(row.try_get::<_, &str>(11).map_err(classify)?),
    })
}

fn claimed(row: &Row) -> Result<(i64, ClaimedEvent), StoreError> {
    let id: String = row.try_get(1).map_err(classify)?;
    let event_type: String = row.try_get(2).map_err(classify)?;
    let attempts: i32 = row.try_get(4).map_err(classify)?;
    let attempts_400: i32 = row.try_get(5).map_err(classify)?;
    let due: i64 = row.try_get(7).map_err(classify)?;
    Ok((
        due,
        ClaimedEvent {
            seq: row.try_get(0).map_err(classify)?,
            id: EventId::parse(&id).map_err(corrupt)?,
            event_type: EventType::parse(&event_type).map_err(corrupt)?,
            body: Bytes::from(row.try_get::<_, Vec<u8>>(3).map_err(classify)?),
            attempts: attempts as u32,
            attempts_400: attempts_400 as u32,
            received_at_ms: row.try_get(6).map_err(classify)?,
            trace_parent: row.try_get(8).map_err(classify)?,
        },
    ))
}

/// An event's attempts, oldest first.
pub(super) async fn attempts_of(
    client: &deadpool_postgres::ClientWrapper,
    seq: i64,
) -> Result<Vec<AttemptSummary>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT at, status_code, duration_ms, outcome, error, excerpt FROM attempts WHERE event_seq = $1 ORDER BY n",
        )
        .await
        .map_err(classify)?;
    let rows = client.query(&statement, &[&seq]).await.map_err(classify)?;
    rows.iter()
        .map(|row| {
            let status_code: Option<i32> = row.try_get(1).map_err(classify)?;
            let duration_ms: i64 = row.try_get(2).map_err(classify)?;
            Ok(AttemptSummary {
                at_ms: row.try_get(0).map_err(classify)?,
                status_code: status_code.map(|s| s as u16),
                duration_ms: duration_ms as u64,
                outcome: row.try_get(3).map_err(classify)?,
                error: row.try_get(4).map_err(classify)?,
                excerpt: row.try_get(5).map_err(classify)?,
            })
        })
        .collect()
}

impl PostgresStore {
    /// Runs one statement and answers how many rows it changed.
    pub(super) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(classify)?;
        client.execute(&statement, params).await.map_err(classify)
    }

    pub(super) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(classify)?;
        client.query(&statement, params).await.map_err(classify)
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn insert(&self, event: NewEvent) -> Result<InsertOutcome, StoreError> {
        let finished = (event.status != EventStatus::Pending).then_some(event.received_at_ms);
        let pending = event.status == EventStatus::Pending;
        let id = event.id.as_str().to_owned();
        let write = Write {
            sql: "INSERT INTO events (id, type, live_mode, order_key, received_at, body, status, next_attempt_at,
                                     finished_at, last_error, source, trace_parent)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $5, $8, $9, $10, $11)
                 ON CONFLICT (id) DO NOTHING",
            params: vec![
                Box::new(id.clone()),
                Box::new(event.event_type.as_str().to_owned()),
                Box::new(event.live_mode),
                Box::new(event.order_key.map(|k| k.as_str().to_owned())),
                Box::new(event.received_at_ms),
                Box::new(Blob(event.body)),
                Box::new(event.status.as_str()),
                Box::new(finished),
                Box::new(event.reason),
                Box::new(event.source.as_str()),
                Box::new(event.trace_parent),
            ],
            lock_order: Some(id),
        };
        let inserted = self.writes.execute(Admission::RefuseWhenFull, write).await?;
        if inserted == 1 {
            if pending {
                self.announcer.stored();
                self.vacuum.inserted();
            }
            Ok(InsertOutcome::Inserted)
        } else {
            Ok(InsertOutcome::Duplicate)
        }
    }

    async fn claim_due(
        &self,
        mode: Mode,
        now_ms: i64,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        let lease_until = now_ms + lease.as_millis() as i64;
        let client = self.lease_client().await?;
        let statement = client
            .prepare_cached(concat!(
                "WITH due AS (
                     SELECT e.seq FROM events e
                     WHERE e.status = 'pending' AND e.live_mode = $4 AND e.next_attempt_at <= $1
                       AND (e.lease_until IS NULL OR e.lease_until <= $1)
                       AND ",
                first_of_its_order!(),
                "
                     ORDER BY e.next_attempt_at, e.seq
                     LIMIT $2
                     FOR UPDATE OF e SKIP LOCKED)
                 UPDATE events SET lease_until = $3 FROM due WHERE events.seq = due.seq
                 RETURNING events.seq, events.id, events.type, events.body, events.attempts, events.attempts_400,
                           events.received_at, events.next_attempt_at, events.trace_parent",
            ))
            .await
            .map_err(classify)?;
        let rows = client
            .query(&statement, &[&now_ms, &i64::from(limit), &lease_until, &mode.is_live()])
            .await
            .map_err(classify)?;
        let mut events = rows.iter().map(claimed).collect::<Result<Vec<_>, _>>()?;
        events.sort_by_key(|(due, event)| (*due, event.seq));
        Ok(events.into_iter().map(|(_, event)| event).collect())
    }

    async fn finish_attempt(&self, seq: i64, record: AttemptRecord, transition: Transition) -> Result<(), StoreError> {
        // One statement, in a commit shared with the other writes waiting: the event's order goes
        // on only once it is committed.
        let (status, counted, was_400, next_attempt_at, last_error, finished_at) = match transition {
            Transition::Delivered => ("delivered", 1, 0, None, None, Some(record.at_ms)),
            Transition::Dead => ("dead", 1, 0, None, record.error.clone(), Some(record.at_ms)),
            Transition::RetryAt {
                at_ms,
                counted,
                was_400,
            } => (
                "pending",
                i32::from(counted),
                i32::from(was_400),
                Some(at_ms),
                record.error.clone(),
                None,
            ),
        };
        let write = Write {
            sql: "WITH attempt AS (
                 INSERT INTO attempts (event_seq, at, status_code, duration_ms, outcome, error, excerpt)
                 VALUES ($1, $2, $3, $4, $5, $6, $7))
             UPDATE events SET status = $8, attempts = attempts + $9, attempts_400 = attempts_400 + $10,
                 next_attempt_at = coalesce($11, next_attempt_at), lease_until = NULL, last_status = $3,
                 last_error = $12, finished_at = $13
             WHERE seq = $1",
            params: vec![
                Box::new(seq),
                Box::new(record.at_ms),
                Box::new(record.status_code.map(i32::from)),
                Box::new(record.duration_ms as i64),
                Box::new(record.outcome),
                Box::new(record.error),
                Box::new(record.excerpt),
                Box::new(status),
                Box::new(counted),
                Box::new(was_400),
                Box::new(next_attempt_at),
                Box::new(last_error),
                Box::new(finished_at),
            ],
            // One relay holds an event's lease: no other write of the batch touches its row.
            lock_order: None,
        };
        self.writes.execute(Admission::WaitForRoom, write).await?;
        self.vacuum.rewrote(1);
        Ok(())
    }

    async fn release(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        self.lease_client()
            .await?
            .execute("UPDATE events SET lease_until = NULL WHERE seq = ANY($1)", &[&seqs])
            .await
            .map_err(classify)?;
        self.announcer.stored();
        Ok(())
    }

    async fn next_due_at(&self, mode: Mode) -> Result<Option<i64>, StoreError> {
        // Only events that could be claimed then: not in flight, first of their order.
        // On a claims' connection: the same "first of its order" test, planned as the claim's is.
        let client = self.lease_client().await?;
        let statement = client
            .prepare_cached(concat!(
                "SELECT MIN(e.next_attempt_at) FROM events e
                 WHERE e.status = 'pending' AND e.live_mode = $1 AND e.lease_until IS NULL AND ",
                first_of_its_order!()
            ))
            .await
            .map_err(classify)?;
        let rows = client.query(&statement, &[&mode.is_live()]).await.map_err(classify)?;
        rows[0].try_get(0).map_err(classify)
    }

    async fn list(&self, filter: EventFilter) -> Result<Vec<EventSummary>, StoreError> {
        // Only the conditions asked for, so that the planner sees each index it may use.
        let (conditions, values) = filter.conditions(|n| format!("${n}"));
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM events {conditions} ORDER BY seq DESC LIMIT {}",
            filter.page_size()
        );
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| match v {
                FilterValue::Text(text) => text as &(dyn tokio_postgres::types::ToSql + Sync),
                FilterValue::Number(n) => n as &(dyn tokio_postgres::types::ToSql + Sync),
            })
            .collect();
        let rows = self.query(&sql, &params).await?;
        rows.iter().map(summary).collect()
    }

    async fn get(&self, id: &EventId) -> Result<Option<(EventSummary, Vec<AttemptSummary>)>, StoreError> {
        let sql = format!("SELECT {SUMMARY_COLUMNS} FROM events WHERE id = $1");
        let rows = self.query(&sql, &[&id.as_str()]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let event = summary(row)?;
        let seq: i64 = row.try_get(10).map_err(classify)?;
        let client = self.client().await?;
        let attempts = attempts_of(&client, seq).await?;
        Ok(Some((event, attempts)))
    }

    async fn body(&self, id: &EventId) -> Result<Option<Bytes>, StoreError> {
        let rows = self
            .query("SELECT body FROM events WHERE id = $1", &[&id.as_str()])
            .await?;
        rows.first()
            .map(|row| row.try_get::<_, Vec<u8>>(0).map(Bytes::from).map_err(classify))
            .transpose()
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
        self.delete_before(&["delivered"], before_ms).await
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
        let mut stats = StoreStats::default();
        for row in self
            .query("SELECT status, COUNT(*) FROM events GROUP BY status", &[])
            .await?
        {
            let status: String = row.try_get(0).map_err(classify)?;
            let count = row.try_get::<_, i64>(1).map_err(classify)? as u64;
            stats.count(&status, count);
        }
        let oldest = self
            .query("SELECT MIN(received_at) FROM events WHERE status = 'pending'", &[])
            .await?;
        stats.oldest_pending_received_at_ms = oldest[0].try_get(0).map_err(classify)?;
        Ok(stats)
    }

    async fn activity(&self, since_ms: i64, bucket_ms: i64, buckets: usize) -> Result<Vec<ActivityBucket>, StoreError> {
        let from = since_ms;
        let counts = |rows: Vec<Row>| -> Result<Vec<(i64, u64)>, StoreError> {
            rows.iter()
                .map(|r| {
                    Ok((
                        r.try_get::<_, i64>(0).map_err(classify)?,
                        r.try_get::<_, i64>(1).map_err(classify)? as u64,
                    ))
                })
                .collect()
        };
        // Two of the pool's connections at once: the page waits for the slower query, not both.
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&from, &bucket_ms];
        let (received, delivered) = tokio::try_join!(
            self.query(
                "SELECT (received_at - $1) / $2, COUNT(*) FROM events WHERE received_at >= $1 GROUP BY 1",
                &params,
            ),
            self.query(
                "SELECT (finished_at - $1) / $2, COUNT(*) FROM events
                 WHERE status = 'delivered' AND finished_at >= $1 GROUP BY 1",
                &params,
            )
        )?;
        Ok(activity_buckets(
            from,
            bucket_ms,
            buckets,
            counts(received)?,
            counts(delivered)?,
        ))
    }

    async fn prune(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.delete_before(&["delivered", "ignored", "recovered"], before_ms)
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A write, committed: a read-only or full database fails it, where a read would succeed.
        self.execute(
            "INSERT INTO relay_state (key, value, updated_at) VALUES ('readiness.probe', repeat('0', $1), 0)
             ON CONFLICT (key) DO UPDATE SET value = repeat('0', $1), updated_at = relay_state.updated_at + 1",
            &[&READINESS_PROBE_BYTES],
        )
        .await
        .map(|_| ())
    }

    async fn confirm(
        &self,
        failure: &crate::store::confirm::SalesforceFailure,
        now_ms: i64,
    ) -> Result<crate::store::confirm::Confirmation, StoreError> {
        self.apply_failure(failure, now_ms).await
    }

    async fn state(&self, key: &str) -> Result<Option<String>, StoreError> {
        let rows = self
            .query("SELECT value FROM relay_state WHERE key = $1", &[&key])
            .await?;
        rows.first().map(|r| r.try_get(0)).transpose().map_err(classify)
    }

    async fn set_state(&self, key: &str, value: Option<String>, now_ms: i64) -> Result<(), StoreError> {
        match value {
            Some(value) => {
                self.execute(
                    "INSERT INTO relay_state (key, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    &[&key, &value, &now_ms],
                )
                .await?
            }
            None => self.execute("DELETE FROM relay_state WHERE key = $1", &[&key]).await?,
        };
        Ok(())
    }

    async fn take_lease(&self, key: &str, holder: &str, now_ms: i64, until_ms: i64) -> Result<bool, StoreError> {
        self.take_lease_atomically(key, holder, now_ms, until_ms).await
    }

    async fn export(&self, after_seq: i64, limit: u32) -> Result<Vec<StoredEvent>, StoreError> {
        self.export_events(after_seq, limit).await
    }

    async fn import(&self, events: Vec<StoredEvent>) -> Result<u64, StoreError> {
        self.import_events(events).await
    }

    async fn settle(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.batch_execute("VACUUM (ANALYZE) events").await.map_err(classify)
    }

    fn forward_wakeups(&self, wake: std::sync::Arc<tokio::sync::Notify>) -> bool {
        self.listen_for_wakeups(wake);
        true
    }
}
