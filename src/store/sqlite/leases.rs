//! The worker's leases on a SQLite store, kept in the relay's memory instead of the file.
//!
//! A lease keeps an event that is being delivered from being claimed again. On PostgreSQL several
//! relays share the queue, so a lease must be a row every relay sees. A SQLite file has one relay
//! ([`relay_lock`](super::lock)), and a lease left in the file by a relay that died is void at the
//! next start anyway: written there, a lease was a transaction with its own disk flush per claim —
//! at DR's usual trickle one of the three flushes of every event, which the event behind it
//! waited for. So a claim only reads, on the writer thread (it sees every commit before it), and
//! the leases live here; an outcome frees its event's lease once it is committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rusqlite::params;

use super::rows::corrupt;
use super::writer::Admission;
use super::{SqliteStore, first_of_its_order};
use crate::domain::{EventId, EventType, Mode};
use crate::store::{ClaimedEvent, StoreError};

/// Events in flight: each one's sequence number, and when its lease runs out (ms since the epoch).
#[derive(Clone, Default)]
pub(super) struct Leases(Arc<Mutex<HashMap<i64, i64>>>);

impl Leases {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<i64, i64>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The events whose lease runs past `now_ms`; the expired ones are forgotten (claimable again).
    fn in_flight(&self, now_ms: i64) -> Vec<i64> {
        let mut held = self.held();
        held.retain(|_, until| *until > now_ms);
        held.keys().copied().collect()
    }

    /// Every event leased, expired or not.
    fn leased(&self) -> Vec<i64> {
        self.held().keys().copied().collect()
    }

    pub(super) fn free(&self, seqs: &[i64]) {
        let mut held = self.held();
        for seq in seqs {
            held.remove(seq);
        }
    }
}

/// The due events that are first of their orders, soonest first: `?1` now (ms), `?2` how many,
/// `?3` the mode (live or not).
pub(super) const CLAIM_DUE: &str = concat!(
    "SELECT e.seq, e.id, e.type, e.body, e.attempts, e.attempts_400, e.received_at, e.trace_parent
     FROM events e
     WHERE e.status = 'pending' AND e.live_mode = ?3 AND e.next_attempt_at <= ?1 AND ",
    first_of_its_order!(),
    "
     ORDER BY e.next_attempt_at, e.seq
     LIMIT ?2",
);

impl SqliteStore {
    /// [`Store::claim_due`](crate::store::Store::claim_due): the first due events of their orders,
    /// past the ones in flight. The leases are taken on the writer thread, so that a claim behind
    /// this one in the same batch sees them, and given back if the batch's commit fails.
    pub(super) async fn claim(
        &self,
        mode: Mode,
        now_ms: i64,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        let leases = self.leases.clone();
        let taken = Arc::new(Mutex::new(Vec::new()));
        let claim_taken = Arc::clone(&taken);
        let claimed = self
            .writer
            .run_statement(Admission::WaitForRoom, move |conn| {
                let in_flight = leases.in_flight(now_ms);
                let mut select = conn.prepare_cached(CLAIM_DUE)?;
                let candidates = limit as usize + in_flight.len();
                let rows = select.query_map(params![now_ms, candidates, mode.is_live()], |row| {
                    let seq: i64 = row.get(0)?;
                    if in_flight.contains(&seq) {
                        return Ok(None);
                    }
                    let id: String = row.get(1)?;
                    let event_type: String = row.get(2)?;
                    Ok(Some(ClaimedEvent {
                        seq,
                        id: EventId::parse(&id).map_err(corrupt)?,
                        event_type: EventType::parse(&event_type).map_err(corrupt)?,
                        body: Bytes::from(row.get::<_, Vec<u8>>(3)?),
                        attempts: row.get(4)?,
                        attempts_400: row.get(5)?,
                        received_at_ms: row.get(6)?,
                        trace_parent: row.get(7)?,
                    }))
                })?;
                let mut claimed = Vec::new();
                for row in rows {
                    if let Some(event) = row? {
                        claimed.push(event);
                    }
                    if claimed.len() == limit as usize {
                        break;
                    }
                }
                let until = now_ms + lease.as_millis() as i64;
                let seqs: Vec<i64> = claimed.iter().map(|event| event.seq).collect();
                leases.held().extend(seqs.iter().map(|&seq| (seq, until)));
                *claim_taken.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = seqs;
                Ok(claimed)
            })
            .await;
        if claimed.is_err() {
            self.leases
                .free(&taken.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        }
        claimed
    }

    /// [`Store::next_due_at`](crate::store::Store::next_due_at): when the first event that is
    /// first of its order and not leased falls due.
    pub(super) async fn next_due(&self, mode: Mode) -> Result<Option<i64>, StoreError> {
        let in_flight = self.leases.leased();
        self.reader
            .run(move |conn| {
                // Cached: the worker asks each time it runs dry, and parsing and planning this
                // query cost about 80,000 instructions (BENCHMARKS.md, "Instructions per event").
                let mut select = conn.prepare_cached(concat!(
                    "SELECT e.seq, e.next_attempt_at FROM events e
                     WHERE e.status = 'pending' AND e.live_mode = ?1 AND ",
                    first_of_its_order!(),
                    " ORDER BY e.next_attempt_at LIMIT ?2"
                ))?;
                let mut rows = select.query(params![mode.is_live(), in_flight.len() + 1])?;
                while let Some(row) = rows.next()? {
                    if !in_flight.contains(&row.get(0)?) {
                        return Ok(Some(row.get(1)?));
                    }
                }
                Ok(None)
            })
            .await
    }
}
