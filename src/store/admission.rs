//! How a write enters an engine's writer — SQLite's writer thread, PostgreSQL's group commit —
//! when the writer's queue is full: a new event is refused at once (DR retries it) rather than
//! held in memory, while the relay's own work waits for room.

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::StoreError;

/// What a write does when its writer's queue is full.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Admission {
    /// Refuse at once with [`StoreError::Busy`]: new events, whose sender retries.
    RefuseWhenFull,
    /// Wait for room: the worker's and the operators' own work.
    WaitForRoom,
}

impl Admission {
    /// Hands `item` to a writer's queue: refused at once when the queue is full, or waiting for
    /// room. A writer that is gone answers [`StoreError::Closed`].
    pub(crate) async fn submit<T>(self, queue: &mpsc::Sender<T>, item: T) -> Result<(), StoreError> {
        match self {
            Admission::RefuseWhenFull => queue.try_send(item).map_err(|e| match e {
                TrySendError::Full(_) => StoreError::Busy("the store's write queue is full".into()),
                TrySendError::Closed(_) => StoreError::Closed,
            }),
            Admission::WaitForRoom => queue.send(item).await.map_err(|_| StoreError::Closed),
        }
    }
}
