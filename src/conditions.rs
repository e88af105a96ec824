//! The states an admin must act on, each with a start: computed in one place from what the relay
//! knows (its store, each target's state, what the watchdog saw of DR's webhook), so that the
//! status page's health line and the notifications never disagree.
//!
//! [`current`] lists every condition that holds now, worst first: the status page shows the first
//! as its one line; the notifier (`crate::notify`) tells a person when one starts, lasts or ends.

use crate::delivery::TargetSnapshot;
use crate::delivery::pacing::PauseCause;
use crate::domain::Mode;
use crate::store::StoreStats;
use crate::store::disk::DiskSpace;
use crate::store::facts::WebhookSeen;
use crate::support::text::{age, time};

/// Pending events older than this are a warning.
pub const SLOW_PENDING_MS: i64 = 15 * 60_000;

/// The day Salesforce's Winter '27 release update stops the password flow (one published date).
pub const PASSWORD_FLOW_ENDS_MS: i64 = 1_803_081_600_000; // 2027-02-20T00:00:00Z
/// From this long before that day, the password grant is a condition of its own.
pub const PASSWORD_FLOW_WARNING_MS: i64 = 60 * 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Good,
    Warn,
    Bad,
}

impl Level {
    pub fn class(self) -> &'static str {
        match self {
            Self::Good => "good",
            Self::Warn => "warn",
            Self::Bad => "bad",
        }
    }
}

/// One state that holds now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Condition {
    /// Stable while the state lasts: `sign_in_refused.test`, `webhook.disabled.live`, ...
    pub key: String,
    pub level: Level,
    /// What is wrong, in one line.
    pub headline: String,
    /// What it means for orders and what to do.
    pub detail: String,
    /// When it began, when the relay knows.
    pub since_ms: Option<i64>,
    /// Told at once, without waiting for `notify.min_duration` (it cannot be a flap).
    pub immediate: bool,
    /// Whether a notification is sent for it (dead events are told in batches instead).
    pub notify: bool,
    pub target: Option<Mode>,
}

/// What the conditions are computed from.
pub struct Inputs<'a> {
    pub store: Result<&'a StoreStats, String>,
    pub targets: &'a [TargetSnapshot],
    pub webhooks: &'a [Option<WebhookSeen>],
    /// Room on the store's disk, when the relay can see it.
    pub disk: Option<DiskSpace>,
    pub now_ms: i64,
}

fn condition(key: String, level: Level, headline: String, detail: String) -> Condition {
    Condition {
        key,
        level,
        headline,
        detail,
        since_ms: None,
        immediate: false,
        notify: true,
        target: None,
    }
}

impl Condition {
    /// Of one target's org.
    fn of(mut self, mode: Mode) -> Self {
        self.target = Some(mode);
        self
    }

    /// Told at once (it cannot be a flap).
    fn at_once(mut self) -> Self {
        self.immediate = true;
        self
    }

    /// Shown on the page, never notified.
    fn shown_only(mut self) -> Self {
        self.notify = false;
        self
    }

    fn since(mut self, since_ms: i64) -> Self {
        self.since_ms = Some(since_ms);
        self
    }
}

/// Which org an admin recognises: the sandbox or production, by the target's mode.
fn org_name(target: &TargetSnapshot, several: bool) -> String {
    let org = if target.mode.is_live() {
        "production org"
    } else {
        "sandbox"
    };
    if several {
        format!("the {org}")
    } else {
        "Salesforce".to_owned()
    }
}

/// Every condition that holds, worst first (in the order an admin must act on them).
pub fn current(inputs: &Inputs) -> Vec<Condition> {
    let mut all = webhook_conditions(inputs.targets, inputs.webhooks);
    let now_ms = inputs.now_ms;
    let stats = match &inputs.store {
        Ok(stats) => stats,
        Err(e) => {
            all.push(
                condition(
                    "store_unavailable".into(),
                    Level::Bad,
                    "Store unavailable: new orders from Digital River are refused until it is back".into(),
                    format!("Digital River keeps retrying them. The store said: {e}"),
                )
                .at_once(),
            );
            return all;
        }
    };
    if let Some(disk) = inputs.disk.filter(DiskSpace::nearly_full) {
        all.push(condition(
            "disk_nearly_full".into(),
            Level::Bad,
            format!(
                "The store's disk is {}% full ({} free): when it is full, new orders from Digital River are refused",
                disk.used_percent(),
                mebibytes(disk.free_bytes)
            ),
            "Digital River retries refused events and nothing acknowledged is lost, but orders wait. Free space on \
             the volume or grow it; `dr-sf-bridge events purge --delivered-before 7d` removes delivered events now, \
             and a shorter storage.retention_days keeps fewer."
                .into(),
        ));
    }
    let targets = inputs.targets;
    let several = targets.len() > 1;
    for target in targets {
        if let Some(refusal) = &target.sign_in_refused {
            all.push(
                condition(
                    format!("sign_in_refused.{}", target.mode),
                    Level::Bad,
                    format!(
                        "Sign-in refused by {}: fix the password or the connected app",
                        org_name(target, several)
                    ),
                    format!("Events wait and are delivered once the sign-in works; nothing is lost. {refusal}"),
                )
                .at_once()
                .of(target.mode),
            );
        }
    }
    for target in targets {
        if let Some(since) = target.observed.failing_since_ms {
            let mut name = org_name(target, several);
            name[..1].make_ascii_uppercase();
            all.push(
                condition(
                    format!("failing.{}", target.mode),
                    Level::Bad,
                    format!("{name} failing since {} ({} ago)", time(since), age(now_ms - since)),
                    format!(
                        "Events wait and are retried; nothing is lost. Last answer: {}",
                        target.observed.last_failure.as_deref().unwrap_or("none")
                    ),
                )
                .since(since)
                .of(target.mode),
            );
        }
    }
    for target in targets {
        if let Some(cause) = target.paused {
            let why = match cause {
                PauseCause::DailyLimit => "the org's daily API allocation is spent",
                PauseCause::ApiReserve => "the org's API usage reached the reserve kept for its other integrations",
            };
            all.push(
                condition(
                    format!("paused.{}.{}", cause.as_str(), target.mode),
                    Level::Warn,
                    format!("Deliveries to {} paused: {why}", org_name(target, several)),
                    "They resume by themselves when the org's usage falls; nothing is lost.".into(),
                )
                .of(target.mode),
            );
        }
    }
    if stats.failed_in_salesforce > 0 {
        let n = stats.failed_in_salesforce;
        all.push(condition(
            "failed_in_salesforce".into(),
            Level::Bad,
            format!(
                "Salesforce stored {n} event{} as failures: {} order{} not updated",
                if n == 1 { "" } else { "s" },
                if n == 1 { "its" } else { "their" },
                if n == 1 { " was" } else { "s were" },
            ),
            "The DR package answered 2xx but kept them as DR Failed Event records. Open them to see the \
             package's reason, fix the cause in the org, then send them again."
                .into(),
        ));
    }
    if stats.dead > 0 {
        all.push(
            condition(
                "dead".into(),
                Level::Warn,
                format!(
                    "Delivering, but {} event{} could not be delivered",
                    stats.dead,
                    if stats.dead == 1 { "" } else { "s" }
                ),
                "Open the dead events to see why, fix the cause in Salesforce, then send them again.".into(),
            )
            .shown_only(),
        );
    }
    if let Some(oldest) = stats
        .oldest_pending_received_at_ms
        .filter(|t| now_ms - t > SLOW_PENDING_MS)
    {
        all.push(
            condition(
                "slow_pending".into(),
                Level::Warn,
                format!("Delivering, but an event has waited {}", age(now_ms - oldest)),
                "Salesforce is slow or an order's earlier event is being retried.".into(),
            )
            .shown_only(),
        );
    }
    for target in targets.iter().filter(|t| t.grant == "password") {
        if now_ms >= PASSWORD_FLOW_ENDS_MS - PASSWORD_FLOW_WARNING_MS {
            all.push(
                condition(
                    format!("password_flow.{}", target.mode),
                    Level::Warn,
                    format!(
                        "{} signs in with the password flow, which Salesforce stops in Winter '27",
                        org_name(target, several)
                    ),
                    format!(
                        "{}; {}.",
                        crate::salesforce::PASSWORD_FLOW_ENDS,
                        crate::salesforce::PASSWORD_FLOW_WAYS_OUT
                    ),
                )
                .of(target.mode),
            );
        }
    }
    all
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The watchdog found DR's webhook not as it should be: before anything else, since no order
/// arrives meanwhile and nothing else would say so.
fn webhook_conditions(targets: &[TargetSnapshot], webhooks: &[Option<WebhookSeen>]) -> Vec<Condition> {
    let several = targets.len() > 1;
    targets
        .iter()
        .zip(webhooks)
        .filter_map(|(target, seen)| {
            let seen = seen.as_ref()?;
            let state = seen.state.as_deref()?;
            let account = if several {
                format!(" ({} events)", target.mode)
            } else {
                String::new()
            };
            let (level, headline, fix) = match state {
                "ok" => return None,
                "disabled" => (
                    Level::Bad,
                    format!("DR disabled the webhook{account} (seen {}): no events arrive", time(seen.checked_at_ms)),
                    "The relay enables it again and fetches what DR created meanwhile (reconcile.reenable_webhook); otherwise enable it in DR's Dashboard.",
                ),
                "missing" | "address_changed" => (
                    Level::Bad,
                    format!("DR has no webhook for this relay{account}: no events arrive"),
                    "Run `dr-sf-bridge register --target relay`, then `events backfill` for the gap.",
                ),
                "types_missing" => (
                    Level::Bad,
                    format!("DR's webhook{account} lacks event types: those orders never arrive"),
                    "Run `dr-sf-bridge register --target relay` to add them, then `events backfill` for the gap.",
                ),
                "silent" => (
                    Level::Bad,
                    format!("DR's events do not reach the relay{account}: none arrived for hours while DR created some"),
                    "Check what stands between DR and the relay (DNS, TLS certificate, load balancer); the relay fetches the missed events meanwhile.",
                ),
                _ => (
                    Level::Warn,
                    format!("DR's Webhooks API could not be checked{account}"),
                    "Check the DR API key; events that arrive are delivered as usual.",
                ),
            };
            let found = condition(
                format!("webhook.{state}.{}", target.mode),
                level,
                headline,
                format!("{} {fix}", seen.detail),
            ).of(target.mode);
            Some(if state == "disabled" { found.at_once() } else { found })
        })
        .collect()
}
