//! Reconciliation with Digital River's Events API: what DR created and the webhook never brought
//! is stored as if it had — after an outage longer than DR's retries, or while DR had the webhook
//! disabled — so that "acknowledged means delivered" extends to "created by DR means delivered".
//!
//! [`store_window`] is the one way in, used by the relay's sweeps ([`Reconciler`]) and by
//! `events backfill`: DR's events of one window, oldest first, each through the webhook's own
//! insert (once per event id: an event the webhook did bring is not stored twice, and one
//! order's events go in in `createdTime` order), marked `source = backfill`.
//!
//! A [`Reconciler`] per mode (with that mode's DR key) sweeps every `reconcile.interval`: from its
//! cursor (kept in the store, so a relay that was down resumes there, 30 days back at most) minus
//! an overlap, to now minus a settle delay (DR's own delivery and retries come first). Relays
//! sharing a PostgreSQL store sweep one at a time under a lease in the store.
//!
//! [`confirm`] closes the loop on the other side: what the DR package in each org kept as a
//! failure though it answered 2xx.

pub mod confirm;
pub mod silence;
pub mod watchdog;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::digital_river::events_api::RETENTION_DAYS;
use crate::digital_river::{DigitalRiverClient, DigitalRiverError};
use crate::domain::{EventType, Mode};
use crate::metrics::ReconcileMetrics;
use crate::settings::reconcile::ReconcileSettings;
use crate::store::{EventSource, EventStatus, InsertOutcome, NewEvent, Store, StoreError};
use crate::support::clock::{Clock, rfc3339};

/// The part of a window listed in one go: no more than an hour of events is held in memory.
pub const SLICE_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    DigitalRiver(#[from] DigitalRiverError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one window held, and what was done with it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WindowCount {
    /// Events DR listed.
    pub listed: u64,
    /// Of those, already in the store (the webhook brought them, or an earlier sweep).
    pub already_stored: u64,
    /// Stored now (when only comparing: that would be stored).
    pub stored: u64,
    /// Listed but not stored, by type: outside the subscription, or of the other mode.
    pub skipped: BTreeMap<String, u64>,
    /// `createdTime` of the oldest event stored.
    #[serde(skip)]
    pub oldest_stored_ms: Option<i64>,
}

impl WindowCount {
    pub fn add(&mut self, other: WindowCount) {
        self.listed += other.listed;
        self.already_stored += other.already_stored;
        self.stored += other.stored;
        for (event_type, n) in other.skipped {
            *self.skipped.entry(event_type).or_default() += n;
        }
        self.oldest_stored_ms = match (self.oldest_stored_ms, other.oldest_stored_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Stores the events of `mode` and `types` DR created in `[from_ms, until_ms)` that the store
/// lacks (with `store_them` false, only counts them).
#[allow(clippy::too_many_arguments)]
pub async fn store_window(
    client: &DigitalRiverClient,
    store: &dyn Store,
    types: &[EventType],
    mode: Mode,
    from_ms: i64,
    until_ms: i64,
    now_ms: i64,
    store_them: bool,
) -> Result<WindowCount, ReconcileError> {
    let mut count = WindowCount::default();
    for event in client.list_events(types, from_ms, until_ms).await? {
        count.listed += 1;
        let envelope = event.envelope;
        if !types.contains(&envelope.event_type) || Mode::of_event(envelope.live_mode) != mode {
            *count.skipped.entry(envelope.event_type.to_string()).or_default() += 1;
            continue;
        }
        let new = if store_them {
            let trace_parent = crate::telemetry::backfilled_trace(&envelope.id, &envelope.event_type);
            let outcome = store
                .insert(NewEvent {
                    id: envelope.id,
                    event_type: envelope.event_type,
                    live_mode: envelope.live_mode,
                    order_key: envelope.order_key,
                    body: event.body,
                    status: EventStatus::Pending,
                    reason: None,
                    received_at_ms: now_ms,
                    source: EventSource::Backfill,
                    trace_parent,
                })
                .await?;
            outcome == InsertOutcome::Inserted
        } else {
            store.get(&envelope.id).await?.is_none()
        };
        if new {
            count.stored += 1;
            count.oldest_stored_ms.get_or_insert(event.created_ms);
        } else {
            count.already_stored += 1;
        }
    }
    Ok(count)
}

/// This relay's name on a sweep's lease in the store.
pub(crate) fn lease_holder() -> String {
    format!("relay-{}", hex::encode(rand::random::<[u8; 8]>()))
}

/// Whether the `failures`-th failure in a row of a periodic sweep is logged: the first, then every
/// tenth, so that a lasting outage is one line an hour, not one a sweep.
pub(crate) fn worth_logging(failures: u32) -> bool {
    failures == 1 || failures.is_multiple_of(10)
}

/// Where a mode's sweeps have reached (`createdTime` in ms), in the store's `relay_state`.
pub fn cursor_key(mode: Mode) -> String {
    format!("reconcile.cursor.{mode}")
}

/// What one sweep did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sweep {
    /// Another relay holds the sweep's lease.
    NotMine,
    /// The first sweep of this store: the cursor now starts at the end of the settle delay.
    Started,
    /// Swept `[from_ms, until_ms)`.
    Swept {
        from_ms: i64,
        until_ms: i64,
        count: WindowCount,
    },
}

/// One mode's sweeps.
#[derive(Clone)]
pub struct Reconciler {
    mode: Mode,
    client: DigitalRiverClient,
    store: Arc<dyn Store>,
    types: Vec<EventType>,
    settings: ReconcileSettings,
    clock: Clock,
    wake: Arc<Notify>,
    metrics: ReconcileMetrics,
    /// This relay's name on the lease.
    holder: String,
}

impl Reconciler {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mode: Mode,
        client: DigitalRiverClient,
        store: Arc<dyn Store>,
        types: Vec<EventType>,
        settings: ReconcileSettings,
        clock: Clock,
        wake: Arc<Notify>,
        metrics: ReconcileMetrics,
    ) -> Self {
        let holder = lease_holder();
        Self {
            mode,
            client,
            store,
            types,
            settings,
            clock,
            wake,
            metrics,
            holder,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn cursor_key(&self) -> String {
        cursor_key(self.mode)
    }

    /// One sweep, now.
    #[tracing::instrument(skip_all, fields(mode = self.mode.as_str()))]
    pub async fn sweep(&self) -> Result<Sweep, ReconcileError> {
        let started = Instant::now();
        let now = self.clock.now_ms();
        let lease_key = format!("reconcile.lease.{}", self.mode);
        // Longer than a sweep takes; a relay that dies mid-sweep frees it when it runs out.
        let lease_until = now + self.settings.interval.as_millis() as i64 + 600_000;
        if !self
            .store
            .take_lease(&lease_key, &self.holder, now, lease_until)
            .await?
        {
            return Ok(Sweep::NotMine);
        }
        let until = now - self.settings.settle.as_millis() as i64;
        let cursor = self
            .store
            .state(&self.cursor_key())
            .await?
            .and_then(|c| c.parse::<i64>().ok());
        let Some(cursor) = cursor else {
            self.store
                .set_state(&self.cursor_key(), Some(until.to_string()), now)
                .await?;
            return Ok(Sweep::Started);
        };
        let from = (cursor - self.settings.overlap.as_millis() as i64).max(now - RETENTION_DAYS * DAY_MS + 60_000);
        let mut count = WindowCount::default();
        let mut slice_from = from;
        while slice_from < until {
            let slice_until = (slice_from + SLICE_MS).min(until);
            let found = store_window(
                &self.client,
                &*self.store,
                &self.types,
                self.mode,
                slice_from,
                slice_until,
                self.clock.now_ms(),
                true,
            )
            .await?;
            if found.stored > 0 {
                self.metrics.recovered.inc_by(found.stored);
                self.wake.notify_one();
            }
            count.add(found);
            // Kept after each slice: a sweep cut short resumes where it was.
            let at = slice_until.max(cursor);
            self.store
                .set_state(&self.cursor_key(), Some(at.to_string()), now)
                .await?;
            slice_from = slice_until;
        }
        let cursor_now = until.max(cursor);
        self.metrics.cursor_lag.set((self.clock.now_ms() - cursor_now) / 1000);
        self.metrics.last_success.set(self.clock.now_ms() / 1000);
        self.metrics.last_duration_ms.set(started.elapsed().as_millis() as i64);
        if count.stored > 0 {
            tracing::warn!(
                stored = count.stored,
                oldest = count.oldest_stored_ms.map(rfc3339),
                "reconciliation found events DR created that never reached the relay: stored, and delivered as usual"
            );
        }
        Ok(Sweep::Swept {
            from_ms: from,
            until_ms: until,
            count,
        })
    }

    /// Sweeps every `reconcile.interval` until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut failures = 0u32;
        loop {
            match self.sweep().await {
                Ok(_) => failures = 0,
                Err(e) => {
                    failures += 1;
                    if worth_logging(failures) {
                        tracing::error!(mode = self.mode.as_str(), error = %e, "reconciliation with DR's Events API failed; trying again at the next sweep");
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.settings.interval) => {}
            }
        }
    }
}
