//! The open connections, so that a flood of idle sockets cannot keep DR out.
//!
//! The connection cap must stay below what the process may open at all (a container's
//! `ulimit -n` is often far below `relay.max_connections`): past the descriptor limit `accept`
//! fails and DR's POST waits at the door. So the cap is the smaller of the setting and the
//! descriptor limit less a reserve for the store, the relay's own calls out and the fast
//! refusals. At the cap, the connection that has been idle longest — no request in progress —
//! is closed to admit the new one: an idle socket holds nothing, and DR's POST gets in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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

struct Entry {
    /// Since when no request is in progress; `None` while one is.
    idle_since: Option<Instant>,
    task: Option<AbortHandle>,
}

/// Every open connection, with whether it is serving a request.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    open: HashMap<u64, Entry>,
}

impl Registry {
    /// A new connection, idle until its first request; answers its number.
    pub fn opened(&self) -> u64 {
        let mut inner = self.inner.lock().expect("not poisoned");
        inner.next += 1;
        let id = inner.next;
        inner.open.insert(
            id,
            Entry {
                idle_since: Some(Instant::now()),
                task: None,
            },
        );
        id
    }

    /// The task serving `id`, to close it when it is evicted.
    pub fn serving(&self, id: u64, task: AbortHandle) {
        if let Some(entry) = self.inner.lock().expect("not poisoned").open.get_mut(&id) {
            entry.task = Some(task);
        }
    }

    pub fn busy(&self, id: u64) {
        if let Some(entry) = self.inner.lock().expect("not poisoned").open.get_mut(&id) {
            entry.idle_since = None;
        }
    }

    pub fn idle(&self, id: u64) {
        if let Some(entry) = self.inner.lock().expect("not poisoned").open.get_mut(&id) {
            entry.idle_since = Some(Instant::now());
        }
    }

    pub fn closed(&self, id: u64) {
        self.inner.lock().expect("not poisoned").open.remove(&id);
    }

    /// Closes the connection idle longest, if one is idle; answers whether it did.
    pub fn evict_idlest(&self) -> bool {
        let mut inner = self.inner.lock().expect("not poisoned");
        let Some((&id, _)) = inner
            .open
            .iter()
            .filter(|(_, e)| e.task.is_some())
            .filter_map(|(id, e)| e.idle_since.map(|since| (id, since)))
            .min_by_key(|(_, since)| *since)
        else {
            return false;
        };
        if let Some(entry) = inner.open.remove(&id)
            && let Some(task) = entry.task
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
        let older = registry.opened();
        let newer = registry.opened();
        let older_task = tokio::spawn(std::future::pending::<()>());
        let newer_task = tokio::spawn(std::future::pending::<()>());
        registry.serving(older, older_task.abort_handle());
        registry.serving(newer, newer_task.abort_handle());
        registry.busy(older);
        assert!(registry.evict_idlest());
        assert!(newer_task.await.unwrap_err().is_cancelled(), "the idle one is closed");
        assert!(!registry.evict_idlest(), "the busy one is not");
        registry.idle(older);
        assert!(registry.evict_idlest());
        assert!(older_task.await.unwrap_err().is_cancelled());
    }
}
