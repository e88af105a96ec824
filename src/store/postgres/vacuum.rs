//! The relay vacuums its own queue.
//!
//! Every finished delivery rewrites its event's row, and the old row stays in the claim index
//! until a `VACUUM` removes it; claims then wade through dead entries to find live ones (seen on a
//! 2-core machine: end-to-end delivery fell from 3,400 to 100 events/s within a minute of a
//! burst). Autovacuum wakes at most once a minute by default, and is sometimes off, so each relay
//! runs a plain `VACUUM` of the events table itself once enough events finished — `SKIP_LOCKED`,
//! so relays never queue behind each other's, and never blocking the relay's other work.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::task::AbortHandle;

/// How often the relay looks whether a vacuum is due.
const LOOK_EVERY: Duration = Duration::from_secs(3);
/// Rows rewritten since the last vacuum that make the next one due.
const DUE_AFTER_ROWS: u64 = 2_000;

pub(super) struct Vacuum {
    rewritten: Arc<AtomicU64>,
    task: Option<AbortHandle>,
}

impl Vacuum {
    /// Keeps count without ever vacuuming: for operations commands, which run briefly.
    pub(super) fn off() -> Self {
        Self {
            rewritten: Arc::new(AtomicU64::new(0)),
            task: None,
        }
    }

    pub(super) fn start(pool: Pool) -> Self {
        let rewritten = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(run(pool, rewritten.clone())).abort_handle();
        Self {
            rewritten,
            task: Some(task),
        }
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

async fn run(pool: Pool, rewritten: Arc<AtomicU64>) {
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        if rewritten.load(Ordering::Relaxed) < DUE_AFTER_ROWS {
            continue;
        }
        rewritten.store(0, Ordering::Relaxed);
        let vacuumed = match pool.get().await {
            Ok(client) => client
                .batch_execute("VACUUM (SKIP_LOCKED) events")
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = vacuumed {
            tracing::debug!(error = %e, "could not vacuum the events table; trying again later");
        }
    }
}
