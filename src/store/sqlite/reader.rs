//! Reads beside the writer thread: the status page, the notifier's counts, `events list` and the
//! worker's "when is the next event due" run on connections of their own.
//!
//! Every job on the writer thread waits for the jobs ahead of it and for their commit's disk
//! flush. A read sent there (the notifier counting events by status every few seconds, say)
//! delays every event acknowledged behind it: it showed as a p99 a tenth higher in the notification
//! benchmark. In WAL mode a reader sees the last commit and neither waits for the writer nor makes
//! it wait, so reads take a connection from this small pool, on tokio's blocking threads.
//!
//! Each read runs in one read transaction: two counts taken together come from one snapshot.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use super::writer::{BUSY_TIMEOUT, classify};
use crate::store::StoreError;

/// Idle connections kept open; more readers at once open more and close them after.
const IDLE_CONNECTIONS: usize = 2;

pub(super) struct Reader {
    pool: Arc<Pool>,
}

/// Shared with the blocking thread that runs a read: the file, and the connections not in use.
struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Reader {
    /// A pool for the file the writer has opened (and migrated): the first connection is opened
    /// now, so that a file that cannot be read fails `open`, not the first read.
    pub(super) fn open(path: &Path) -> rusqlite::Result<Self> {
        let first = connect(path)?;
        Ok(Self {
            pool: Arc::new(Pool {
                path: path.to_owned(),
                idle: Mutex::new(vec![first]),
            }),
        })
    }

    /// Runs `f` in a read transaction on a connection of the pool.
    pub(super) async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = Arc::clone(&self.pool);
        tokio::task::spawn_blocking(move || {
            let taken = pool.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
            let conn = match taken {
                Some(conn) => conn,
                None => connect(&pool.path).map_err(classify)?,
            };
            let result = in_read_transaction(&conn, f).map_err(classify);
            let mut idle = pool.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if idle.len() < IDLE_CONNECTIONS {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("a store read stopped: {e}")))?
    }
}

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    // Read-write flags with `query_only`: a read-only connection to a WAL file cannot recover the
    // shared-memory index if it has to; this one can, and still cannot change a row.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA query_only = ON;")?;
    Ok(conn)
}

fn in_read_transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached("BEGIN")?.execute([])?;
    let result = f(conn);
    // A read transaction has nothing to undo: ending it releases the snapshot either way.
    let ended = conn.prepare_cached("COMMIT").and_then(|mut end| end.execute([]));
    let value = result?;
    ended?;
    Ok(value)
}
