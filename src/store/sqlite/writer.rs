//! The writer thread behind [`SqliteStore`](super::SqliteStore): one connection, batches of
//! jobs in one transaction each, and the answer to each caller only after the commit.
//!
//! The queue to the thread is bounded: past [`QUEUE_CAPACITY`] waiting jobs a new event is refused
//! at once ([`StoreError::Busy`], so DR gets 503 and retries) rather than held in memory.

use std::time::Duration;

use anyhow::Context;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

pub(super) use crate::store::Admission;
use crate::store::{StoreError, migrations};

/// The longest a batch grows before it is committed.
const MAX_BATCH: usize = 512;
/// How long a write waits for another process's lock before the store reports itself unavailable:
/// well under DR's 3 s answer limit.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_millis(1000);

/// The schema's versions, applied in order; `PRAGMA user_version` records how many ran.
/// Jobs waiting for the writer at most; past that, new events are refused at once (DR gets 503
/// and retries) instead of queueing in memory without bound.
pub const QUEUE_CAPACITY: usize = 4096;

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A job runs its statements on the connection (or, given the error that kept the transaction
/// from starting, fails without running) and answers how to reply once the batch's commit is
/// known.
pub(super) type Job = Box<dyn FnOnce(Result<&Connection, StoreError>) -> Reply + Send>;

/// What SQLite said, as the variant callers decide on.
pub(super) fn classify(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    let text = e.to_string();
    match &e {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Busy(text),
            ErrorCode::ConstraintViolation => StoreError::Conflict(text),
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreError::Corrupt(text),
            _ => StoreError::Unavailable(text),
        },
        rusqlite::Error::ToSqlConversionFailure(_)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(text),
        _ => StoreError::Unavailable(text),
    }
}

/// The handle to the writer thread.
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the thread that owns `conn`, with room for `capacity` waiting jobs.
    pub(super) fn start(conn: Connection, capacity: usize) -> anyhow::Result<Self> {
        let (jobs, receiver) = mpsc::channel(capacity.max(1));
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer(conn, receiver))?;
        Ok(Self { jobs })
    }

    #[cfg(test)]
    pub(super) fn from_sender(jobs: mpsc::Sender<Job>) -> Self {
        Self { jobs }
    }

    /// Runs `f` inside the next batch's transaction, in a savepoint of its own (a failing job
    /// undoes only its own statements), and answers after the commit.
    pub(super) async fn run<T, F>(&self, admission: Admission, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.run_statement(admission, move |conn| in_savepoint(conn, f)).await
    }

    /// [`run`](Self::run) for a job that is one statement: SQLite undoes a failed statement by
    /// itself and the transaction goes on, so it needs no savepoint — whose `SAVEPOINT`, `RELEASE`
    /// and journal of the pages it touches showed as a sixth of the writer's time per stored event.
    pub(super) async fn run_statement<T, F>(&self, admission: Admission, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |conn| {
            let result = conn.and_then(|conn| f(conn).map_err(classify));
            Box::new(move |commit: Result<(), StoreError>| {
                let answer = match (result, commit) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                };
                let _ = tx.send(answer);
            })
        });
        admission.submit(&self.jobs, job).await?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// Runs a statement of the hot path from the connection's cache: parsing `BEGIN` or `COMMIT`
/// again for every batch costs more instructions than running it.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs one job in a savepoint of the batch's transaction. The savepoint statements are prepared
/// once (cached): parsing them for every job showed in the ingest profile.
fn in_savepoint<T>(conn: &Connection, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    match f(conn) {
        Ok(value) => {
            conn.prepare_cached("RELEASE job")?.execute([])?;
            Ok(value)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
            Err(e)
        }
    }
}

/// Applies the migrations the file has not seen yet, each in its own transaction.
pub(super) fn migrate(conn: &Connection) -> anyhow::Result<()> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let pending = migrations::pending(applied).map_err(|e| anyhow::anyhow!(e))?;
    for migration in pending {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {}; PRAGMA user_version = {}; COMMIT;",
            migration.sqlite, migration.number
        ))
        .with_context(|| format!("applying migration {} ({})", migration.number, migration.name))?;
    }
    Ok(())
}

pub(super) fn writer(conn: Connection, mut receiver: mpsc::Receiver<Job>) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let began = run_cached(&conn, "BEGIN IMMEDIATE").map_err(classify);
        let replies: Vec<Reply> = batch
            .into_iter()
            .map(|job| job(began.as_ref().map(|()| &conn).map_err(Clone::clone)))
            .collect();
        let committed = match began {
            Ok(()) => run_cached(&conn, "COMMIT").map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                tracing::error!(error = %e, jobs = replies.len(), "SQLite commit failed");
                classify(e)
            }),
            Err(e) => Err(e),
        };
        for reply in replies {
            reply(committed.clone());
        }
    }
}
