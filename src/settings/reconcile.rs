//! `[reconcile]`: the relay's own sweep of DR's Events API, which stores what the webhook never
//! brought (an outage longer than DR's retries, a disabled webhook).

use std::time::Duration;

use super::problems::Reader;

#[derive(Debug, Clone)]
pub struct ReconcileSettings {
    /// Whether the relay sweeps (for each mode whose DR API key it has).
    pub enabled: bool,
    /// Time between sweeps (seconds in the configuration).
    pub interval: Duration,
    /// How far before its cursor each sweep starts again, so that an event DR's clock placed
    /// slightly earlier is not missed (seconds in the configuration).
    pub overlap: Duration,
    /// Events younger than this are left to DR's own delivery and retries (seconds in the
    /// configuration).
    pub settle: Duration,
    /// Time between looks at DR's webhook for this relay (seconds in the configuration).
    pub webhook_check_interval: Duration,
    /// Whether a webhook DR disabled is enabled again (one PATCH, at most hourly).
    pub reenable_webhook: bool,
    /// No event from the webhook for this long while DR created some is the `silent` state
    /// (seconds in the configuration).
    pub quiet_alert: Duration,
}

impl ReconcileSettings {
    pub(super) fn read(r: &mut Reader) -> Self {
        let enabled: bool = r.get("reconcile.enabled");
        let interval_secs: u64 = r.get("reconcile.interval_secs");
        let overlap_secs: u64 = r.get("reconcile.overlap_secs");
        let settle_secs: u64 = r.get("reconcile.settle_secs");
        let webhook_check_secs: u64 = r.get("reconcile.webhook_check_interval_secs");
        let reenable_webhook: bool = r.get("reconcile.reenable_webhook");
        let quiet_alert_secs: u64 = r.get("reconcile.quiet_alert_secs");
        r.problems.positive("reconcile.quiet_alert_secs", quiet_alert_secs);
        r.problems
            .positive("reconcile.webhook_check_interval_secs", webhook_check_secs);
        r.problems.positive("reconcile.interval_secs", interval_secs);
        ReconcileSettings {
            enabled,
            interval: Duration::from_secs(interval_secs.max(1)),
            overlap: Duration::from_secs(overlap_secs),
            settle: Duration::from_secs(settle_secs),
            webhook_check_interval: Duration::from_secs(webhook_check_secs.max(1)),
            reenable_webhook,
            quiet_alert: Duration::from_secs(quiet_alert_secs.max(1)),
        }
    }
}
