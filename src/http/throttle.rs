//! Slowing down guessing: a client address whose authentications keep failing gets 429 for a
//! while, at the token endpoint, the webhook's Basic auth and the admin API alike.
//!
//! Counted per address (the connection's, or the forwarding header's behind a proxy) so that a
//! guesser elsewhere never locks Digital River out. The table is bounded: past
//! [`MAX_TRACKED`] addresses, stale entries are dropped and new addresses are not tracked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::support::clock::Clock;

/// The window failures are counted in, and how long an address is refused after too many.
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    blocked_until: Option<Instant>,
}

pub struct AuthThrottle {
    limit: u32,
    clients: Mutex<HashMap<IpAddr, Entry>>,
    /// Entries in `clients`, read without the lock on the path of every good request.
    tracked: AtomicUsize,
    clock: Clock,
}

impl AuthThrottle {
    /// Refuses an address after `limit` failures within a minute, for a minute.
    pub fn new(limit: u32) -> Self {
        Self {
            limit: limit.max(1),
            clients: Mutex::new(HashMap::new()),
            tracked: AtomicUsize::new(0),
            clock: Clock::system(),
        }
    }

    /// The throttle with its windows read from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// `Err(retry_after)` while `ip` is refused.
    pub fn check(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        let Some(ip) = ip else { return Ok(()) };
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let clients = self.clients.lock().expect("not poisoned");
        match clients.get(&ip).and_then(|e| e.blocked_until) {
            Some(until) if until > self.clock.now() => Err(until - self.clock.now()),
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication from `ip`; answers `true` when this one blocked it.
    pub fn failed(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else { return false };
        let now = self.clock.now();
        let mut clients = self.clients.lock().expect("not poisoned");
        if clients.len() >= MAX_TRACKED && !clients.contains_key(&ip) {
            clients.retain(|_, e| e.window_start + WINDOW > now || e.blocked_until.is_some_and(|u| u > now));
            if clients.len() >= MAX_TRACKED {
                return false;
            }
        }
        let entry = clients.entry(ip).or_insert(Entry {
            window_start: now,
            failures: 0,
            blocked_until: None,
        });
        if entry.window_start + WINDOW <= now {
            *entry = Entry {
                window_start: now,
                failures: 0,
                blocked_until: entry.blocked_until.filter(|u| *u > now),
            };
        }
        entry.failures += 1;
        let blocked = entry.failures >= self.limit && entry.blocked_until.is_none_or(|u| u <= now);
        if blocked {
            entry.blocked_until = Some(now + WINDOW);
        }
        self.tracked.store(clients.len(), Ordering::Relaxed);
        blocked
    }

    /// A successful authentication clears the address's count.
    pub fn succeeded(&self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut clients = self.clients.lock().expect("not poisoned");
        if clients.get(&ip).is_some_and(|e| e.blocked_until.is_none()) {
            clients.remove(&ip);
        }
        self.tracked.store(clients.len(), Ordering::Relaxed);
    }
}

/// A `Retry-After` value for a wait, in whole seconds (at least 1).
pub fn retry_after(wait: Duration) -> axum::http::HeaderValue {
    axum::http::HeaderValue::from(wait.as_secs().max(1))
}

/// The header that names the client address behind a proxy (`relay.client_ip_header`), as a
/// request extension set by the router.
#[derive(Debug, Clone)]
pub struct ClientIpHeader(pub Option<String>);

/// The client address of a request (see [`super::server::client_ip`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let header = parts.extensions.get::<ClientIpHeader>().and_then(|h| h.0.clone());
        Ok(Self(super::server::client_ip(parts, header.as_deref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_the_limit_and_others_are_not() {
        let throttle = AuthThrottle::new(3);
        let guesser: IpAddr = "203.0.113.9".parse().unwrap();
        let dr: IpAddr = "198.51.100.7".parse().unwrap();
        assert!(!throttle.failed(Some(guesser)));
        assert!(!throttle.failed(Some(guesser)));
        assert!(throttle.check(Some(guesser)).is_ok());
        assert!(throttle.failed(Some(guesser)), "the third failure blocks");
        let wait = throttle.check(Some(guesser)).unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= WINDOW, "{wait:?}");
        assert!(throttle.check(Some(dr)).is_ok(), "another address is untouched");
        throttle.succeeded(Some(guesser));
        assert!(
            throttle.check(Some(guesser)).is_err(),
            "a block is not lifted by a success"
        );
    }

    #[test]
    fn a_success_clears_the_count() {
        let throttle = AuthThrottle::new(2);
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        throttle.failed(Some(ip));
        throttle.succeeded(Some(ip));
        assert!(!throttle.failed(Some(ip)), "counting starts again");
    }
}
