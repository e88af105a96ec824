//! Durable storage of events and of every delivery attempt, behind one engine-neutral trait.
//!
//! The relay's promise — an event DR saw acknowledged is never lost — rests here: `insert`
//! answers only after the event is committed to disk. The delivery worker takes work with
//! `claim_due`, which hands out only events whose predecessors of the same order are done, under a
//! lease so that a crashed worker's events are taken over when the lease runs out.
//!
//! SQLite ([`sqlite::SqliteStore`]) is the embedded default, for one relay process;
//! PostgreSQL ([`postgres::PostgresStore`]) lets several relays share one store and one queue.

mod admission;
pub mod attempt_log;
pub mod confirm;
mod copy;
pub mod disk;
pub mod facts;
mod filter;
pub mod migrations;
pub mod postgres;
pub mod replay;
pub mod sqlite;
mod status;

pub(crate) use admission::Admission;
pub use copy::{CopyProgress, copy_all};
pub use filter::{ActivityBucket, EventFilter, FilterValue, activity_buckets};
pub use replay::ReplayedBy;
pub(crate) use status::REPLAYABLE_SQL;
pub use status::{EventSource, EventStatus};

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::domain::{EventId, EventType, Mode, OrderKey};
use crate::settings::StorageSettings;

/// An event to store, as received.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: EventId,
    pub event_type: EventType,
    pub live_mode: bool,
    /// `None`: no ordering constraint (the event is its own order).
    pub order_key: Option<OrderKey>,
    /// The exact bytes DR sent.
    pub body: Bytes,
    /// `Pending` to deliver, `Ignored` for types outside the subscription, `RejectedMode` for an
    /// event of the other mode.
    pub status: EventStatus,
    /// Why an event is not delivered (kept as its last error).
    pub reason: Option<String>,
    pub received_at_ms: i64,
    pub source: EventSource,
    /// The W3C `traceparent` of the span that received it, so that its delivery attempts —
    /// minutes or days later, on any relay — join its trace; `None` when traces are off.
    pub trace_parent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted,
    /// An event with this id is already stored.
    Duplicate,
}

/// An event handed to a worker for one delivery attempt.
#[derive(Debug, Clone)]
pub struct ClaimedEvent {
    pub seq: i64,
    pub id: EventId,
    pub event_type: EventType,
    pub body: Bytes,
    /// Attempts counted so far (not counting this one).
    pub attempts: u32,
    /// Of those, answered 400.
    pub attempts_400: u32,
    pub received_at_ms: i64,
    /// See [`NewEvent::trace_parent`].
    pub trace_parent: Option<String>,
}

/// One delivery attempt, for the audit trail.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub at_ms: i64,
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub outcome: &'static str,
    pub error: Option<String>,
    pub excerpt: Option<String>,
}

/// What an attempt does to its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Delivered,
    /// Try again at `at_ms`; `counted` says whether the attempt counts against the schedule, and
    /// `was_400` whether it counts against `max_attempts_on_400`.
    RetryAt {
        at_ms: i64,
        counted: bool,
        was_400: bool,
    },
    Dead,
}

/// A stored event as the operations commands show it.
#[derive(Debug, Clone, Serialize)]
pub struct EventSummary {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub status: EventStatus,
    #[serde(rename = "liveMode")]
    pub live_mode: bool,
    /// The Salesforce target of the event's mode (`test` or `live`).
    pub target: Mode,
    #[serde(rename = "orderKey")]
    pub order_key: Option<String>,
    #[serde(rename = "receivedAtMs")]
    pub received_at_ms: i64,
    pub attempts: u32,
    #[serde(rename = "nextAttemptAtMs")]
    pub next_attempt_at_ms: Option<i64>,
    #[serde(rename = "lastStatus")]
    pub last_status: Option<u16>,
    #[serde(rename = "lastError")]
    pub last_error: Option<String>,
    /// `webhook` or `backfill`.
    pub source: EventSource,
    /// Its place in this store: newer events have higher numbers (a page's key, never shown).
    #[serde(skip)]
    pub seq: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptSummary {
    #[serde(rename = "atMs")]
    pub at_ms: i64,
    #[serde(rename = "statusCode")]
    pub status_code: Option<u16>,
    #[serde(rename = "durationMs")]
    pub duration_ms: u64,
    pub outcome: String,
    pub error: Option<String>,
    pub excerpt: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOutcome {
    Replayed,
    NotFound,
    /// Only dead or delivered events are replayed; this one has the given status.
    NotReplayable(EventStatus),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreStats {
    pub pending: u64,
    pub delivered: u64,
    pub dead: u64,
    pub ignored: u64,
    #[serde(rename = "rejectedMode")]
    pub rejected_mode: u64,
    #[serde(rename = "failedInSalesforce")]
    pub failed_in_salesforce: u64,
    pub recovered: u64,
    /// Receive time of the oldest pending event.
    #[serde(rename = "oldestPendingReceivedAtMs")]
    pub oldest_pending_received_at_ms: Option<i64>,
}

/// An event with everything stored of it, as `store copy` moves it between stores.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Its place in the source store (copies keep the order, not the number).
    pub seq: i64,
    pub summary: EventSummary,
    pub attempts_400: u32,
    pub next_attempt_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub body: Bytes,
    pub attempt_log: Vec<AttemptSummary>,
    /// See [`NewEvent::trace_parent`]: a copied event's later attempts join its trace.
    pub trace_parent: Option<String>,
}

impl StoreStats {
    /// Notes how many events a stored status has (an unknown status counts nowhere).
    pub fn count(&mut self, status: &str, events: u64) {
        match EventStatus::parse(status) {
            Some(EventStatus::Pending) => self.pending = events,
            Some(EventStatus::Delivered) => self.delivered = events,
            Some(EventStatus::Dead) => self.dead = events,
            Some(EventStatus::Ignored) => self.ignored = events,
            Some(EventStatus::RejectedMode) => self.rejected_mode = events,
            Some(EventStatus::FailedInSalesforce) => self.failed_in_salesforce = events,
            Some(EventStatus::Recovered) => self.recovered = events,
            None => {}
        }
    }

    /// Each status with its count, in the table's order.
    pub fn by_status(&self) -> [(EventStatus, u64); 7] {
        [
            (EventStatus::Pending, self.pending),
            (EventStatus::Delivered, self.delivered),
            (EventStatus::Dead, self.dead),
            (EventStatus::Ignored, self.ignored),
            (EventStatus::RejectedMode, self.rejected_mode),
            (EventStatus::FailedInSalesforce, self.failed_in_salesforce),
            (EventStatus::Recovered, self.recovered),
        ]
    }

    /// Every stored event, whatever its status.
    pub fn total(&self) -> u64 {
        self.pending
            + self.delivered
            + self.dead
            + self.ignored
            + self.rejected_mode
            + self.failed_in_salesforce
            + self.recovered
    }
}

impl ReplayOutcome {
    /// Why an event that was not replayed was not: the status it has, if it exists.
    pub fn refused(stored: Option<&str>) -> Self {
        match stored.and_then(EventStatus::parse) {
            Some(status) => Self::NotReplayable(status),
            None => Self::NotFound,
        }
    }
}

/// Why the store did not do what was asked: callers decide on the variant.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Locked by another process or overloaded: the same request succeeds soon.
    #[error("the store is busy: {0}")]
    Busy(String),
    /// Cannot be reached, read or written (no such database, connection refused, locked by
    /// another relay, disk full, read-only, I/O error) until someone acts.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The change contradicts what is stored.
    #[error("the change conflicts with the stored data: {0}")]
    Conflict(String),
    /// Stored data is unreadable.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The store was shut down.
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Whether trying the same operation again may succeed without anyone acting.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Busy(_) | Self::Unavailable(_))
    }
}

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores the event durably, once per id; answers after the commit.
    async fn insert(&self, event: NewEvent) -> Result<InsertOutcome, StoreError>;

    /// Up to `limit` pending events of `mode` that are due at `now_ms`, not leased, and first among
    /// the pending events of their order; leases them until `now_ms + lease`. Each Salesforce
    /// target claims only its own mode's events, so a failing sandbox never holds back production.
    async fn claim_due(
        &self,
        mode: Mode,
        now_ms: i64,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedEvent>, StoreError>;

    /// Records an attempt and applies its transition, releasing the lease.
    async fn finish_attempt(&self, seq: i64, record: AttemptRecord, transition: Transition) -> Result<(), StoreError>;

    /// Drops leases (graceful shutdown) so the next start takes the events at once.
    async fn release(&self, seqs: Vec<i64>) -> Result<(), StoreError>;

    /// The earliest `next_attempt_at` of a claimable pending event of `mode`, to sleep until.
    async fn next_due_at(&self, mode: Mode) -> Result<Option<i64>, StoreError>;

    async fn list(&self, filter: EventFilter) -> Result<Vec<EventSummary>, StoreError>;

    async fn get(&self, id: &EventId) -> Result<Option<(EventSummary, Vec<AttemptSummary>)>, StoreError>;

    /// The stored body of an event.
    async fn body(&self, id: &EventId) -> Result<Option<Bytes>, StoreError>;

    /// Makes a dead (or delivered) event pending again with fresh attempts, and writes a
    /// [`attempt_log::OUTCOME_REPLAYED`] line naming `by` in its attempt log.
    async fn replay(&self, id: &EventId, by: ReplayedBy, now_ms: i64) -> Result<ReplayOutcome, StoreError>;

    /// Makes pending events due now instead of at their next scheduled attempt (the cause was
    /// fixed): the one `id`, or every pending one; answers how many. Attempts stay counted.
    async fn retry_now(&self, id: Option<&EventId>, now_ms: i64) -> Result<u64, StoreError>;

    /// Makes due now the pending events of `mode` that an attempt at or after `failed_since_ms`
    /// left waiting for a later retry: an outage of the org is over, and what failed during it
    /// need not wait out the schedule's growing delays. Answers how many. Attempts stay counted.
    async fn retry_failed_since(&self, mode: Mode, failed_since_ms: i64, now_ms: i64) -> Result<u64, StoreError>;

    /// Replays up to `limit` of the oldest events of `status` (dead or delivered) received at or
    /// after `since_ms`, in one transaction, each with its replay line; answers how many. Called
    /// again until it answers 0.
    async fn replay_batch(
        &self,
        status: EventStatus,
        since_ms: Option<i64>,
        limit: u32,
        by: ReplayedBy,
        now_ms: i64,
    ) -> Result<u64, StoreError>;

    /// Deletes delivered events (only those) received before `before_ms`; answers how many.
    async fn purge_delivered(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// How many delivered events were received before `before_ms` (what a purge would delete).
    async fn count_delivered_before(&self, before_ms: i64) -> Result<u64, StoreError>;

    async fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Events received, and events delivered, in each slice of `bucket_ms` from `since_ms` on
    /// (`buckets` slices, oldest first; see [`activity_buckets`]).
    async fn activity(&self, since_ms: i64, bucket_ms: i64, buckets: usize) -> Result<Vec<ActivityBucket>, StoreError>;

    /// Deletes delivered and ignored events received before `before_ms`; answers how many.
    async fn prune(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// Whether the store can commit now (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// A fact the relay remembers across restarts, by key.
    async fn state(&self, key: &str) -> Result<Option<String>, StoreError>;

    /// Sets (or, with `None`, forgets) a fact; `now_ms` is when.
    async fn set_state(&self, key: &str, value: Option<String>, now_ms: i64) -> Result<(), StoreError>;

    /// Takes (or renews) the lease `key` for `holder` until `until_ms`, unless another holder's
    /// lease runs past `now_ms`: one relay at a time does what it guards. Answers whether it is
    /// `holder`'s now. This default reads, then writes: right for an engine only one relay opens
    /// (SQLite's file lock); an engine several relays share overrides it with one atomic statement.
    async fn take_lease(&self, key: &str, holder: &str, now_ms: i64, until_ms: i64) -> Result<bool, StoreError> {
        if let Some(lease) = self.state(key).await?
            && let Some((other, until)) = lease.rsplit_once(' ')
            && other != holder
            && until.parse::<i64>().is_ok_and(|until| until > now_ms)
        {
            return Ok(false);
        }
        self.set_state(key, Some(format!("{holder} {until_ms}")), now_ms)
            .await?;
        Ok(true)
    }

    /// Applies what one of the DR package's failure records says of the stored event it names
    /// ([`confirm::decide`]): a delivered event becomes `failed_in_salesforce`, a failed one whose
    /// record was processed `recovered`, each change with a line in its attempt log. Atomic with
    /// a replay or a delivery of the same event.
    async fn confirm(
        &self,
        failure: &confirm::SalesforceFailure,
        now_ms: i64,
    ) -> Result<confirm::Confirmation, StoreError>;

    /// Up to `limit` events after `after_seq`, in store order, with their attempts: for copying.
    async fn export(&self, after_seq: i64, limit: u32) -> Result<Vec<StoredEvent>, StoreError>;

    /// Stores the events whose ids are new here, with their attempts and status (no lease), in
    /// the order given and in one transaction; answers how many were new.
    async fn import(&self, events: Vec<StoredEvent>) -> Result<u64, StoreError>;

    /// After a bulk load (`store copy`): brings the engine's bookkeeping up to date, so that the
    /// copy answers as fast as a store that grew by deliveries. PostgreSQL vacuums and analyzes the
    /// events (counts by status then read the index alone, not every row); SQLite needs nothing.
    async fn settle(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Wakes `wake` when someone else (another relay, an operations command) makes events
    /// pending; answers whether the engine does (then the worker can poll rarely).
    fn forward_wakeups(&self, _wake: std::sync::Arc<tokio::sync::Notify>) -> bool {
        false
    }

    /// Room left on the disk holding the store, when the relay can see it (SQLite's file).
    fn disk_space(&self) -> Option<disk::DiskSpace> {
        None
    }
}

/// Who opens the store: the relay that delivers from it, or an operations command beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Relay,
    Operations,
}

/// Opens the engine `storage.url` names: for the relay, creating the store (SQLite: holding its
/// relay lock); for an operations command, only a store that already exists.
pub async fn open(storage: &StorageSettings, role: Role) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    let url = storage.url.as_str();
    let unavailable = |e: anyhow::Error| StoreError::Unavailable(format!("storage.url `{url}`: {e:#}"));
    if let Some(path) = url.strip_prefix("sqlite://") {
        let path = std::path::Path::new(path);
        let store = match role {
            Role::Relay => sqlite::SqliteStore::open_for_relay(path).map_err(unavailable)?,
            Role::Operations => sqlite::SqliteStore::open_existing(path).map_err(unavailable)?,
        };
        return Ok(std::sync::Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = match role {
            Role::Relay => postgres::PostgresStore::open(url, storage.pool_size).await?,
            Role::Operations => postgres::PostgresStore::open_existing(url, storage.pool_size).await?,
        };
        return Ok(std::sync::Arc::new(store));
    }
    Err(StoreError::Unavailable(format!(
        "storage.url `{}`: must start with sqlite:// or postgres://",
        crate::support::text::redact_url(url)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_database_is_named_without_its_password() {
        let storage = StorageSettings {
            url: "postgres://relay:Sup3rSecretPw@127.0.0.1:1/relay".into(),
            retention_days: 30,
            pool_size: 2,
        };
        let error = open(&storage, Role::Relay).await.err().expect("refused");
        let text = error.to_string();
        assert!(matches!(error, StoreError::Unavailable(_)), "{text}");
        assert!(text.contains("127.0.0.1:1") && text.contains("***"), "{text}");
        assert!(!text.contains("Sup3rSecretPw"), "{text}");
        assert!(
            text.starts_with("the store is unavailable: storage.url `postgres://relay:***@127.0.0.1:1/relay`: cannot connect to 127.0.0.1:1 (connection refused)"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_missing_database_is_named_with_the_fix() {
        let storage = StorageSettings {
            url: "postgres://postgres@127.0.0.1:5432/drsf_no_such_database".into(),
            retention_days: 30,
            pool_size: 2,
        };
        let text = open(&storage, Role::Operations)
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(
            text.contains("storage.url `postgres://postgres@127.0.0.1:5432/drsf_no_such_database`: database `drsf_no_such_database` does not exist on 127.0.0.1:5432: create it (createdb drsf_no_such_database)"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_sqlite_file_another_relay_holds_names_the_key_and_the_relay() {
        let dir = tempfile::tempdir().unwrap();
        let storage = StorageSettings {
            url: format!("sqlite://{}", dir.path().join("relay.db").display()),
            retention_days: 30,
            pool_size: 2,
        };
        let _first = open(&storage, Role::Relay).await.expect("the first relay opens it");
        let text = open(&storage, Role::Relay).await.err().expect("refused").to_string();
        let pid = std::process::id();
        assert!(
            text.starts_with(&format!(
                "the store is unavailable: storage.url `{}`: another relay (pid {pid})",
                storage.url
            )),
            "{text}"
        );
    }
}
