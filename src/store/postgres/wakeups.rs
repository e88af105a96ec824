//! Wake-ups between relays: an event stored by one relay wakes the idle workers of the others,
//! so that no relay has to poll the database often to notice new work.
//!
//! Each relay keeps one connection that `LISTEN`s on [`CHANNEL`]. After it stores pending events
//! a relay sends one `NOTIFY` — from a task of its own, at most every [`NOTIFY_EVERY`], after the
//! events' commits: a `NOTIFY` inside the insert's transaction would take PostgreSQL's global
//! notification lock until the commit is flushed, and serialise every intake. The payload is the
//! schema, so relays of different stores in one database do not wake each other. A lost
//! connection is opened again; the worker's slow poll covers the gap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, NoTls, Socket};

use super::connect::Target;

pub(super) const CHANNEL: &str = "dr_sf_bridge_events";
/// The least time between two `NOTIFY`s from one relay.
const NOTIFY_EVERY: Duration = Duration::from_millis(10);
/// How long to wait before opening a lost listening connection again.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// Sends the relay's `NOTIFY`s; [`Announcer::stored`] is cheap enough to call on every insert.
pub(super) struct Announcer {
    due: Arc<AtomicBool>,
    signal: Arc<Notify>,
    task: AbortHandle,
}

impl Announcer {
    pub(super) fn start(pool: Pool) -> Self {
        let due = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(Notify::new());
        let task = tokio::spawn(announce(pool, due.clone(), signal.clone())).abort_handle();
        Self { due, signal, task }
    }

    /// Notes that pending events were committed: the other relays hear of it shortly.
    pub(super) fn stored(&self) {
        if !self.due.swap(true, Ordering::AcqRel) {
            self.signal.notify_one();
        }
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn announce(pool: Pool, due: Arc<AtomicBool>, signal: Arc<Notify>) {
    loop {
        signal.notified().await;
        tokio::time::sleep(NOTIFY_EVERY).await;
        if !due.swap(false, Ordering::AcqRel) {
            continue;
        }
        let sent = match pool.get().await {
            Ok(client) => client
                .execute("SELECT pg_notify($1, coalesce(current_schema(), ''))", &[&CHANNEL])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = sent {
            // The other relays find the events on their next poll.
            tracing::debug!(error = %e, "could not notify the other relays");
        }
    }
}

/// Keeps a `LISTEN`ing connection open and wakes `wake` when another relay stored events.
pub(super) struct Listener {
    task: AbortHandle,
}

impl Listener {
    pub(super) fn start(target: Target, wake: Arc<Notify>) -> Self {
        let task = tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let listened = match &target.tls {
                    Some(tls) => listen(&target.config, tls.clone(), &wake, &mut failures).await,
                    None => listen(&target.config, NoTls, &wake, &mut failures).await,
                };
                if let Err(e) = listened {
                    failures += 1;
                    // Once when it happens, then about once a minute while it lasts.
                    if failures == 1 || failures.is_multiple_of(30) {
                        tracing::warn!(error = %e, "lost the database's wake-up connection; polling until it is back");
                    }
                }
                tokio::time::sleep(RECONNECT_AFTER).await;
            }
        })
        .abort_handle();
        Self { task }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen<T>(
    config: &tokio_postgres::Config,
    tls: T,
    wake: &Notify,
    failures: &mut u32,
) -> Result<(), tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    let (tx, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    let schema: Option<String> = client.query_one("SELECT current_schema()", &[]).await?.get(0);
    let schema = schema.unwrap_or_default();
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    *failures = 0;
    // Anything stored while this connection was down is found now.
    wake.notify_one();
    while let Some(payload) = notifications.recv().await {
        if payload == schema {
            wake.notify_one();
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
