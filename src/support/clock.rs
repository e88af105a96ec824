//! The one clock: wall time in Unix milliseconds (what the store records) and seconds (what
//! signatures and tokens carry).

use std::time::{SystemTime, UNIX_EPOCH};

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
    fn times_are_read_as_dates_or_ages() {
        assert_eq!(parse_time("2026-11-23T03:00:00Z").unwrap(), 1_795_402_800_000);
        let two_hours_ago = parse_time("2h").unwrap();
        assert!((now_ms() - two_hours_ago - 7_200_000).abs() < 5_000);
        assert!(parse_time("yesterday-ish").is_err());
    }
}
