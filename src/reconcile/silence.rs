//! When the webhook last brought an event of each mode, as this relay saw it: the door notes each
//! event DR posts, the watchdog reads it. A relay that hears nothing for `reconcile.quiet_alert_secs`
//! while DR's Events API shows events in that time is not reached by DR's webhook (DNS, TLS, a load
//! balancer), however healthy it looks.
//!
//! Per process, counted from its start: behind a load balancer each relay sees its own share, so
//! the alert suits hours of silence, not minutes.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::domain::Mode;
use crate::support::clock::Clock;

#[derive(Debug)]
pub struct LastReceived {
    test: AtomicI64,
    live: AtomicI64,
    clock: Clock,
}

impl LastReceived {
    /// Counted from now on `clock` (the relay's start) until the first event arrives.
    pub fn new(clock: Clock) -> Self {
        let now = clock.now_ms();
        Self {
            test: AtomicI64::new(now),
            live: AtomicI64::new(now),
            clock,
        }
    }

    fn slot(&self, mode: Mode) -> &AtomicI64 {
        if mode.is_live() { &self.live } else { &self.test }
    }

    /// DR's webhook brought an event of `mode` now.
    pub fn note(&self, mode: Mode) {
        self.slot(mode).fetch_max(self.clock.now_ms(), Ordering::Relaxed);
    }

    pub fn of(&self, mode: Mode) -> i64 {
        self.slot(mode).load(Ordering::Relaxed)
    }
}
