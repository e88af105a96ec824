//! WAL checkpoints off the writer thread.
//!
//! In WAL mode every commit appends to the `-wal` file, and a checkpoint copies those pages back
//! into the database file (and flushes it). SQLite runs one automatically inside the commit that
//! takes the WAL past 1,000 pages — on the writer thread, so every event waiting behind that
//! commit waited for the copy too: the open-loop benchmark's p99 at 5,000/s went from 7 to 47 ms
//! with them, and stayed near 7 ms with them off. So the writer's connection turns automatic
//! checkpoints off and this thread, on a connection of its own, runs a `PASSIVE` checkpoint every
//! second: a passive checkpoint never blocks the writer (it copies what no reader still needs and
//! leaves the rest for the next round; with nothing new it only reads the WAL's index), and the
//! writer starts the WAL over once everything in it has been copied. A second's worth of commits
//! is what the WAL holds at most beyond what a reader pins.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

use super::writer::BUSY_TIMEOUT;

/// Time between checkpoints.
const EVERY: Duration = Duration::from_secs(1);

/// The checkpoint thread; it stops when this is dropped (with the store).
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Turns automatic checkpoints off on `writer` and starts the thread on a connection of its
    /// own to `path`.
    pub(super) fn start(writer: &Connection, path: &Path) -> anyhow::Result<Self> {
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut failures = 0u32;
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        Ok(()) => failures = 0,
                        Err(e) => {
                            failures += 1;
                            if failures == 1 || failures.is_multiple_of(300) {
                                tracing::warn!(error = %e, "could not checkpoint the SQLite WAL; trying again");
                            }
                        }
                    }
                }
            })?;
        Ok(Self { _stop: stop })
    }
}
