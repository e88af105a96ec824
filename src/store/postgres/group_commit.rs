//! Group commit: the relay's hot writes — a stored event, a delivery's outcome — share
//! transactions instead of taking one commit each.
//!
//! Why: a statement in a transaction of its own costs PostgreSQL a commit per event — a wait for
//! the WAL flush, the transaction's bookkeeping, a round trip — and under a burst the server spent
//! more of the two cores on commits than on the rows. So the writes go to one task that takes
//! every write waiting, runs them pipelined on one connection inside one transaction, commits
//! once, and only then answers each caller: acknowledged still means durably stored
//! (`synchronous_commit` as the server sets it). The SQLite engine's writer thread does the same
//! by hand.
//!
//! Alone, a write waits for nothing: it is a batch of one. Under load at most
//! [`BATCHES_IN_FLIGHT`] commits run at once, and the writes that arrive meanwhile wait for the
//! next batch, which is how batches grow with the load.
//!
//! One failing write must not fail the others: a batch in which any statement fails is rolled
//! back and its writes run again one by one, each in a transaction of its own, so each gets the
//! answer it would have got alone. Only a batch that cannot get a connection answers every write
//! with that error (trying each in turn would hold the last one for the pool's timeout times the
//! batch's size).
//!
//! Inserts run in event-id order within a batch: two batches inserting the same ids (DR retrying
//! while the first try still commits) take the ids' locks in the same order, so they wait for
//! each other instead of deadlocking.

use bytes::Bytes;
use deadpool_postgres::Pool;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::connect::{classify, pool_error};
use crate::store::{Admission, StoreError};

/// Writes waiting for a batch at most; past that, new events are refused at once (DR gets 503
/// and retries) rather than queued in memory without bound.
const QUEUE_CAPACITY: usize = 4096;
/// The most writes one transaction takes.
const MAX_BATCH: usize = 256;
/// Commits running at once, each on a connection of the pool.
const BATCHES_IN_FLIGHT: usize = 4;

/// One value of a write's statement, owned so the write can wait in the queue.
pub(super) type Param = Box<dyn ToSql + Send + Sync>;

/// A statement and its values, to run in the next batch.
pub(super) struct Write {
    pub(super) sql: &'static str,
    pub(super) params: Vec<Param>,
    /// Within a batch, writes with a key run in the keys' order, after those without one.
    pub(super) lock_order: Option<String>,
}

struct Queued {
    write: Write,
    reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// The handle to the group-commit task; the task ends once every handle is dropped and the
/// writes queued before are answered.
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Queued>,
}

impl GroupCommit {
    pub(super) fn start(pool: Pool) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(run(pool, waiting));
        Self { queue }
    }

    /// Runs `write` in the next batch and answers how many rows it changed, once its batch is
    /// committed.
    pub(super) async fn execute(&self, admission: Admission, write: Write) -> Result<u64, StoreError> {
        let (reply, answer) = oneshot::channel();
        let queued = Queued { write, reply };
        admission.submit(&self.queue, queued).await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

async fn run(pool: Pool, mut waiting: mpsc::Receiver<Queued>) {
    let slots = std::sync::Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    while let Some(first) = waiting.recv().await {
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(queued) => batch.push(queued),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            commit(&pool, batch).await;
            drop(slot);
        });
    }
}

async fn commit(pool: &Pool, mut batch: Vec<Queued>) {
    // Stable: writes with equal keys (the same event id twice) keep their order of arrival.
    batch.sort_by(|a, b| a.write.lock_order.cmp(&b.write.lock_order));
    let mut client = match pool.get().await {
        Ok(client) => client,
        Err(e) => {
            let error = pool_error(e);
            for queued in batch {
                let _ = queued.reply.send(Err(error.clone()));
            }
            return;
        }
    };
    if batch.len() > 1 {
        match together(&mut client, &batch).await {
            Ok(counts) => {
                for (queued, count) in batch.into_iter().zip(counts) {
                    let _ = queued.reply.send(Ok(count));
                }
                return;
            }
            Err(e) => tracing::debug!(
                error = %e,
                writes = batch.len(),
                "a shared commit failed; its writes run again one by one"
            ),
        }
    }
    for queued in batch {
        let answer = alone(&client, &queued.write).await;
        let _ = queued.reply.send(answer);
    }
}

/// The batch's statements pipelined in one transaction, and its commit.
async fn together(client: &mut deadpool_postgres::Object, batch: &[Queued]) -> Result<Vec<u64>, StoreError> {
    let transaction = client.transaction().await.map_err(classify)?;
    let mut statements = Vec::with_capacity(batch.len());
    for queued in batch {
        statements.push(transaction.prepare_cached(queued.write.sql).await.map_err(classify)?);
    }
    let values: Vec<Vec<&(dyn ToSql + Sync)>> = batch.iter().map(|queued| queued.write.values()).collect();
    let counts = futures_util::future::try_join_all(
        statements
            .iter()
            .zip(&values)
            .map(|(statement, values)| transaction.execute(statement, values)),
    )
    .await
    .map_err(classify)?;
    transaction.commit().await.map_err(classify)?;
    Ok(counts)
}

/// One write in a transaction of its own (the statement's own).
async fn alone(client: &deadpool_postgres::Object, write: &Write) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(write.sql).await.map_err(classify)?;
    client.execute(&statement, &write.values()).await.map_err(classify)
}

impl Write {
    fn values(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
    }
}

/// A `bytea` value that shares the event's bytes instead of copying them into the queue.
#[derive(Debug)]
pub(super) struct Blob(pub(super) Bytes);

impl ToSql for Blob {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        <&[u8] as ToSql>::to_sql(&&self.0[..], ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <&[u8] as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}
