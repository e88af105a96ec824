//! `[confirm]`: the relay's sweep of the DR package's own failure records in each org, which
//! tells a delivered event from one the package answered 2xx for and kept as a failure.

use std::time::Duration;

use super::problems::Reader;

#[derive(Debug, Clone)]
pub struct ConfirmSettings {
    /// Whether the relay reads each org's `DR_Failed_Event__c` records.
    pub enabled: bool,
    /// Time between sweeps (seconds in the configuration).
    pub interval: Duration,
    /// How far before its cursor each sweep starts again, so that a record committed late is not
    /// missed (seconds in the configuration).
    pub overlap: Duration,
    /// How far back the first sweep of a store looks (seconds in the configuration).
    pub first_lookback: Duration,
    /// API requests (query pages) one sweep makes at most; the rest waits for the next sweep.
    pub max_requests_per_sweep: u32,
}

impl ConfirmSettings {
    pub(super) fn read(r: &mut Reader) -> Self {
        let enabled: bool = r.get("confirm.enabled");
        let interval_secs: u64 = r.get("confirm.interval_secs");
        let overlap_secs: u64 = r.get("confirm.overlap_secs");
        let first_lookback_secs: u64 = r.get("confirm.first_lookback_secs");
        let max_requests: u64 = r.get("confirm.max_requests_per_sweep");
        r.problems.positive("confirm.interval_secs", interval_secs);
        r.problems.positive("confirm.max_requests_per_sweep", max_requests);
        ConfirmSettings {
            enabled,
            interval: Duration::from_secs(interval_secs.max(1)),
            overlap: Duration::from_secs(overlap_secs),
            first_lookback: Duration::from_secs(first_lookback_secs),
            max_requests_per_sweep: max_requests.clamp(1, u64::from(u32::MAX)) as u32,
        }
    }
}
