//! The open connections, so that a flood of idle sockets cannot keep DR out.
//!
//! The connection cap must stay below what the process may open at all (a container's
//! `ulimit -n` is often far below `relay.max_connections`): past the descriptor limit `accept`
//! fails and DR's POST waits at the door. So the cap is the smaller of the setting and the
//! descriptor limit less a reserve for the store, the relay's own calls out and the fast
//! refusals. At the cap, the connection that has been idle longest — no request in progress —
//! is closed to admit the new one: an idle socket holds nothing, and DR's POST gets in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use tokio::task::AbortHandle;

/// Descriptors kept for everything but inbound connections: the store's files or pool, the
/// relay's own connections to Salesforce and DR, logs.
pub const RESERVED_DESCRIPTORS: usize = 64;

/// The connection cap and the most fast refusals at once, for a process allowed `fd_limit`
/// descriptors (`None`: unknown) and `relay.max_connections = configured`.
pub fn caps(configured: usize, fd_limit: Option<usize>, max_refusing: usize) -> (usize, usize) {
    let Some(limit) = fd_limit else {
        return (configured, max_refusing);
    };
    let refusing = max_refusing.min(limit / 8).max(1);
    let room = limit.saturating_sub(RESERVED_DESCRIPTORS + refusing).max(8);
    (configured.min(room), refusing)
}

/// The soft limit on open files, from `/proc/self/limits` (Linux); `None` elsewhere.
pub fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// One connection's state, shared by its requests (which mark it busy and idle without taking the
/// registry's lock: that is the request path) and the registry (which reads it only at the cap).
#[derive(Default)]
pub struct Connection {
    /// Since when no request is in progress, in ms since the registry began; 0 while one is.
    idle_since: AtomicU64,
    task: OnceLock<AbortHandle>,
}

impl Connection {
    pub fn busy(&self) {
        self.idle_since.store(0, Ordering::Relaxed);
    }

    pub fn idle(&self, registry: &Registry) {
        self.idle_since.store(registry.elapsed_ms(), Ordering::Relaxed);
    }

    /// The task serving it, to close it when it is evicted.
    pub fn serving(&self, task: AbortHandle) {
        let _ = self.task.set(task);
    }
}

/// Every open connection, with whether it is serving a request.
#[derive(Clone)]
pub struct Registry {
    began: Instant,
    open: Arc<Mutex<HashMap<u64, Arc<Connection>>>>,
    next: Arc<AtomicU64>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            began: Instant::now(),
            open: Arc::default(),
            next: Arc::default(),
        }
    }
}

impl Registry {
    /// Idle times are counted from 1, so that 0 can mean busy.
    fn elapsed_ms(&self) -> u64 {
        self.began.elapsed().as_millis() as u64 + 1
    }

    /// A new connection, idle until its first request; answers its number and its state.
    pub fn opened(&self) -> (u64, Arc<Connection>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection::default());
        connection.idle(self);
        self.open.lock().expect("not poisoned").insert(id, connection.clone());
        (id, connection)
    }

    pub fn closed(&self, id: u64) {
        self.open.lock().expect("not poisoned").remove(&id);
    }

    /// Closes the connection idle longest, if one is idle; answers whether it did.
    pub fn evict_idlest(&self) -> bool {
        let mut open = self.open.lock().expect("not poisoned");
        let idlest = open
            .iter()
            .filter(|(_, c)| c.task.get().is_some())
            .map(|(id, c)| (*id, c.idle_since.load(Ordering::Relaxed)))
            .filter(|(_, since)| *since != 0)
            .min_by_key(|(_, since)| *since);
        let Some((id, _)) = idlest else {
            return false;
        };
        if let Some(connection) = open.remove(&id)
            && let Some(task) = connection.task.get()
        {
            task.abort();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_below_the_descriptor_limit() {
        assert_eq!(caps(1024, None, 256), (1024, 256));
        assert_eq!(caps(1024, Some(256), 256), (160, 32));
        assert_eq!(caps(100, Some(65536), 256), (100, 256));
        assert!(caps(1024, Some(16), 256).0 >= 8);
    }

    #[tokio::test]
    async fn the_connection_idle_longest_is_the_one_closed_and_a_busy_one_never() {
        let registry = Registry::default();
        let (_, older) = registry.opened();
        let (_, newer) = registry.opened();
        let older_task = tokio::spawn(std::future::pending::<()>());
        let newer_task = tokio::spawn(std::future::pending::<()>());
        older.serving(older_task.abort_handle());
        newer.serving(newer_task.abort_handle());
        older.busy();
        assert!(registry.evict_idlest());
        assert!(newer_task.await.unwrap_err().is_cancelled(), "the idle one is closed");
        assert!(!registry.evict_idlest(), "the busy one is not");
        older.idle(&registry);
        assert!(registry.evict_idlest());
        assert!(older_task.await.unwrap_err().is_cancelled());
    }
}
