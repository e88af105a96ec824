//! The one clock: wall time in Unix milliseconds (what the store records) and seconds (what
//! signatures and tokens carry), and [`Clock`], the handle every schedule of the relay reads —
//! the retry schedule, the circuit breaker's cool-down, the pacer's pauses, the sign-in
//! throttle, the token cache's ages.
//!
//! A relay reads the system's clock. A test can hand it an [`Clock::adjustable`] one instead and
//! move it forward: the system's time plus every [`Clock::advance`] so far, so a test says "a
//! minute later" without waiting a minute. Not tokio's paused time: that clock jumps to the next
//! timer whenever the runtime waits, and the relay's tests wait on real sockets (a Salesforce
//! stand-in, a database), where the jump would fire the HTTP client's own timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The time as the relay's schedules see it; cheap to clone, every clone reads the same time.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Milliseconds added to the system's time; `None` for the system's clock itself.
    shift_ms: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system's clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that tests move forward with [`Clock::advance`].
    pub fn adjustable() -> Self {
        Self {
            shift_ms: Some(Arc::default()),
        }
    }

    /// Moves an adjustable clock forward by `by` (to the millisecond).
    ///
    /// # Panics
    /// On the system's clock, which nothing moves.
    pub fn advance(&self, by: Duration) {
        let shift = self.shift_ms.as_ref().expect("only an adjustable clock is moved");
        shift.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    fn shift(&self) -> Duration {
        self.shift_ms.as_ref().map_or(Duration::ZERO, |shift| {
            Duration::from_millis(shift.load(Ordering::SeqCst))
        })
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        now_ms() + self.shift().as_millis() as i64
    }

    /// A monotonic instant, for durations and deadlines.
    pub fn now(&self) -> Instant {
        Instant::now() + self.shift()
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A stored time as RFC 3339 to the second, in UTC: `2026-11-23T03:00:00Z`.
pub fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)).to_string()
}

/// Seconds since the Unix epoch.
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A point in time as an operator types it: RFC 3339 (`2026-11-23T03:00:00Z`) or an age (`2h`,
/// `30m`, `7days`: that long ago). Milliseconds since the epoch.
pub fn parse_time(raw: &str) -> Result<i64, String> {
    let raw = raw.trim();
    if let Ok(age) = humantime::parse_duration(raw) {
        return Ok(now_ms() - age.as_millis() as i64);
    }
    humantime::parse_rfc3339_weak(raw)
        .map(|t| t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0))
        .map_err(|_| format!("`{raw}` is neither a time such as 2026-11-23T03:00:00Z nor an age such as 2h"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_every_clone_and_the_system_clock_stays() {
        let clock = Clock::adjustable();
        let clone = clock.clone();
        let (wall, mono) = (clock.now_ms(), clock.now());
        clone.advance(Duration::from_secs(60));
        assert!(clock.now_ms() - wall >= 60_000);
        assert!(clock.now() - mono >= Duration::from_secs(60));
        let system = Clock::system();
        assert!((system.now_ms() - now_ms()).abs() < 1_000);
    }

    #[test]
    fn times_are_read_as_dates_or_ages() {
        assert_eq!(parse_time("2026-11-23T03:00:00Z").unwrap(), 1_795_402_800_000);
        let two_hours_ago = parse_time("2h").unwrap();
        assert!((now_ms() - two_hours_ago - 7_200_000).abs() < 5_000);
        assert!(parse_time("yesterday-ish").is_err());
    }
}
