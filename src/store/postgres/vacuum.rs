//! The relay vacuums its own queue.
//!
//! Every finished delivery rewrites its event's row, and the old row stays in the claim index
//! until a `VACUUM` removes it; claims then wade through dead entries to find live ones (seen on a
//! 2-core machine: end-to-end delivery fell from 3,400 to 100 events/s within a minute of a
//! burst). Autovacuum wakes at most once a minute by default, and is sometimes off, so each relay
//! runs a plain `VACUUM` of the events table itself once enough events finished — `SKIP_LOCKED`,
//! so relays never queue behind each other's, and never blocking the relay's other work.
//!
//! It also `ANALYZE`s the table as the queue grows (each time by a fifth, or by 1,000 events
//! when small): a claim is planned from the table's statistics, and without them — a relay that
//! started on an empty store, then an outage's backlog — the planner takes the due events for a
//! handful and reads every one of them for each claim (a drain of 500 events/s instead of 4,000
//! until autovacuum's next look, up to a minute later).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::task::AbortHandle;

/// How often the relay looks whether a vacuum is due.
const LOOK_EVERY: Duration = Duration::from_secs(3);
/// Rows rewritten since the last vacuum that make the next one due.
const DUE_AFTER_ROWS: u64 = 2_000;
/// Rows inserted since the last analyze that make the next one due, at least.
const ANALYZE_AFTER_ROWS: u64 = 1_000;

pub(super) struct Vacuum {
    rewritten: Arc<AtomicU64>,
    inserted: Arc<AtomicU64>,
    task: Option<AbortHandle>,
}

impl Vacuum {
    /// Keeps count without ever vacuuming: for operations commands, which run briefly.
    pub(super) fn off() -> Self {
        Self {
            rewritten: Arc::new(AtomicU64::new(0)),
            inserted: Arc::new(AtomicU64::new(0)),
            task: None,
        }
    }

    pub(super) fn start(pool: Pool) -> Self {
        let rewritten = Arc::new(AtomicU64::new(0));
        let inserted = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(run(pool, rewritten.clone(), inserted.clone())).abort_handle();
        Self {
            rewritten,
            inserted,
            task: Some(task),
        }
    }

    /// Notes an event inserted pending.
    pub(super) fn inserted(&self) {
        self.inserted.fetch_add(1, Ordering::Relaxed);
    }

    /// Notes `rows` rewritten or deleted event rows.
    pub(super) fn rewrote(&self, rows: u64) {
        self.rewritten.fetch_add(rows, Ordering::Relaxed);
    }
}

impl Drop for Vacuum {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

async fn run(pool: Pool, rewritten: Arc<AtomicU64>, inserted: Arc<AtomicU64>) {
    // The events inserted since this relay started, as of its last analyze.
    let mut analyzed_at: u64 = 0;
    let mut total_inserted: u64 = 0;
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        total_inserted += inserted.swap(0, Ordering::Relaxed);
        if total_inserted - analyzed_at >= ANALYZE_AFTER_ROWS.max(analyzed_at / 5) {
            analyzed_at = total_inserted;
            maintain(&pool, "ANALYZE (SKIP_LOCKED) events").await;
        }
        if rewritten.load(Ordering::Relaxed) >= DUE_AFTER_ROWS {
            rewritten.store(0, Ordering::Relaxed);
            maintain(&pool, "VACUUM (SKIP_LOCKED) events").await;
        }
    }
}

async fn maintain(pool: &Pool, statement: &str) {
    let done = match pool.get().await {
        Ok(client) => client.batch_execute(statement).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = done {
        tracing::debug!(error = %e, statement, "could not maintain the events table; trying again later");
    }
}
