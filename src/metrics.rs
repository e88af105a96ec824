//! Prometheus metrics of the relay, rendered in the text format at `GET /metrics`.
//!
//! Counters and the latency histogram are updated where things happen; the gauges that describe
//! the store (events by status, age of the oldest pending event) are read from it at scrape time,
//! so they are right even after a restart and across several relay processes.
//!
//! Everything about delivery carries a `target` label (`test` or `live`: the DR mode whose
//! Salesforce org it is), so a failing sandbox shows as the sandbox's and never hides in
//! production's figures.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::Mode;
use crate::store::StoreStats;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceivedLabels {
    pub event_type: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub target: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PauseLabels {
    pub target: &'static str,
    pub cause: &'static str,
}

/// The Salesforce target a delivery figure belongs to: its DR mode.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    pub target: &'static str,
}

impl TargetLabels {
    pub fn of(mode: Mode) -> Self {
        Self { target: mode.as_str() }
    }
}

type TargetGauge = Family<TargetLabels, Gauge>;

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: &'static str,
}

/// The metrics of one Salesforce target (label `target`), each a handle on its series: the
/// delivery path updates them without looking labels up.
#[derive(Clone)]
pub struct TargetMetrics {
    target: &'static str,
    deliveries: Family<OutcomeLabels, Counter>,
    pub delivery_duration: Histogram,
    /// Shared with the target's token cache, which counts each grant it requests.
    pub token_grants: Counter,
    pub api_usage_used: Gauge,
    pub api_usage_max: Gauge,
    pub breaker_open: Gauge,
    /// 1 while Salesforce refuses the sign-in (deliveries wait for the credentials to be fixed).
    pub sign_in_refused: Gauge,
    /// Deliveries the pacer allows at once now.
    pub concurrency_limit: Gauge,
    pub in_flight: Gauge,
    /// 1 while deliveries are paused for the org's API limits.
    pub paused: Gauge,
    pub long_running: Counter,
    pauses: Family<PauseLabels, Counter>,
}

impl TargetMetrics {
    /// Counts a delivery attempt by its outcome.
    pub fn delivery(&self, outcome: &'static str) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                target: self.target,
                outcome,
            })
            .inc();
    }

    /// Counts a pause of every delivery, by its cause.
    pub fn pause(&self, cause: &'static str) {
        self.pauses
            .get_or_create(&PauseLabels {
                target: self.target,
                cause,
            })
            .inc();
    }
}

pub struct Metrics {
    registry: Registry,
    pub events_received: Family<ReceivedLabels, Counter>,
    pub inbound_rejections: Family<ReasonLabels, Counter>,
    deliveries: Family<OutcomeLabels, Counter>,
    delivery_duration: Family<TargetLabels, Histogram>,
    events_by_status: Family<StatusLabels, Gauge>,
    oldest_pending_age: Gauge,
    // Per target: each target's handles come from `for_target`.
    token_grants: Family<TargetLabels, Counter>,
    api_usage_used: TargetGauge,
    api_usage_max: TargetGauge,
    breaker_open: TargetGauge,
    sign_in_refused: TargetGauge,
    concurrency_limit: TargetGauge,
    in_flight: TargetGauge,
    paused: TargetGauge,
    long_running: Family<TargetLabels, Counter>,
    pauses: Family<PauseLabels, Counter>,
    sign_in_key: Family<SignInKeyLabels, Gauge>,
    notifications: Family<NotificationLabels, Counter>,
    reconcile: ReconcileFamilies,
}

/// A notification's fate on one channel: `sent`, `failed` (tried again), `rate_limited`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    pub channel: String,
    pub outcome: &'static str,
}

/// Which private key the JWT bearer flow signed in with (label `key`: its settings key).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignInKeyLabels {
    pub target: &'static str,
    pub key: String,
}

/// Reconciliation's series, per mode (label `target`, like delivery's).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookStateLabels {
    pub target: &'static str,
    pub state: &'static str,
}

#[derive(Default)]
struct ReconcileFamilies {
    webhook_state: Family<WebhookStateLabels, Gauge>,
    recovered: Family<TargetLabels, Counter>,
    last_success: TargetGauge,
    last_duration_ms: TargetGauge,
    cursor_lag: TargetGauge,
    failed_in_salesforce: TargetGauge,
    unknown_failures: TargetGauge,
    confirm_last_success: TargetGauge,
    confirm_requests: Family<TargetLabels, Counter>,
}

/// One org's Salesforce-side confirmation metrics.
#[derive(Clone)]
pub struct ConfirmMetrics {
    /// Events of this target now `failed_in_salesforce`.
    pub failed_in_salesforce: Gauge,
    /// Failure records in the org of events the relay does not hold.
    pub unknown_failures: Gauge,
    /// When the last sweep succeeded (Unix seconds).
    pub last_success: Gauge,
    /// Query requests made (each one API request).
    pub requests: Counter,
}

/// One mode's reconciliation metrics.
#[derive(Clone)]
pub struct ReconcileMetrics {
    /// Events a sweep stored that the webhook never brought.
    pub recovered: Counter,
    /// When the last sweep succeeded (Unix seconds).
    pub last_success: Gauge,
    pub last_duration_ms: Gauge,
    /// How far the cursor is behind now (seconds).
    pub cursor_lag: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("drsf");
        let events_received = Family::<ReceivedLabels, Counter>::default();
        let inbound_rejections = Family::<ReasonLabels, Counter>::default();
        let deliveries = Family::<OutcomeLabels, Counter>::default();
        let delivery_duration =
            Family::<TargetLabels, Histogram>::new_with_constructor(duration_histogram as fn() -> _);
        let events_by_status = Family::<StatusLabels, Gauge>::default();
        let oldest_pending_age = Gauge::default();
        let token_grants = Family::<TargetLabels, Counter>::default();
        let [
            api_usage_used,
            api_usage_max,
            breaker_open,
            sign_in_refused,
            concurrency_limit,
            in_flight,
            paused,
        ] = std::array::from_fn(|_| TargetGauge::default());
        let long_running = Family::<TargetLabels, Counter>::default();
        let pauses = Family::<PauseLabels, Counter>::default();
        registry.register(
            "delivery_concurrency_limit",
            "Deliveries to Salesforce allowed at once now (adaptive), by target",
            concurrency_limit.clone(),
        );
        registry.register(
            "deliveries_in_flight",
            "Deliveries to Salesforce running now, by target",
            in_flight.clone(),
        );
        registry.register(
            "delivery_paused",
            "1 while deliveries are paused for the org's API limits (daily allocation or reserve), by target",
            paused.clone(),
        );
        registry.register(
            "salesforce_long_running_requests",
            "Deliveries that ran longer than 5 s (they count against the org's long-running limit), by target",
            long_running.clone(),
        );
        registry.register(
            "delivery_pauses",
            "Pauses of all deliveries to an org, by target and cause (daily_limit, api_reserve)",
            pauses.clone(),
        );
        registry.register(
            "events_received",
            "Events received from Digital River, by type and outcome",
            events_received.clone(),
        );
        registry.register(
            "inbound_rejections",
            "Requests refused at the relay's door (authentication, signature, size, content), by reason",
            inbound_rejections.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery attempts to Salesforce, by target and outcome",
            deliveries.clone(),
        );
        registry.register(
            "delivery_duration_seconds",
            "Duration of delivery attempts to Salesforce, by target",
            delivery_duration.clone(),
        );
        registry.register("events", "Stored events, by status", events_by_status.clone());
        registry.register(
            "oldest_pending_event_age_seconds",
            "Age of the oldest event not yet delivered (0 when none)",
            oldest_pending_age.clone(),
        );
        registry.register(
            "salesforce_token_grants",
            "Grants requested from Salesforce's token endpoint, by target",
            token_grants.clone(),
        );
        registry.register(
            "salesforce_api_usage_used",
            "Daily API requests used by the org, from Sforce-Limit-Info",
            api_usage_used.clone(),
        );
        registry.register(
            "salesforce_api_usage_max",
            "Daily API request allocation of the org, from Sforce-Limit-Info",
            api_usage_max.clone(),
        );
        registry.register(
            "delivery_breaker_open",
            "Whether deliveries are paused (circuit breaker open) because Salesforce fails for every event",
            breaker_open.clone(),
        );
        registry.register(
            "salesforce_sign_in_refused",
            "1 while Salesforce refuses the sign-in: fix the password (and security token) or the connected app",
            sign_in_refused.clone(),
        );
        let sign_in_key = Family::<SignInKeyLabels, Gauge>::default();
        registry.register(
            "salesforce_sign_in_key",
            "1 for the private key the JWT bearer flow last signed in with (salesforce.private_key or next_private_key), by target",
            sign_in_key.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notifications by channel and outcome (sent, failed and tried again, rate_limited)",
            notifications.clone(),
        );
        let reconcile = ReconcileFamilies::default();
        registry.register(
            "reconcile_recovered_events",
            "Events reconciliation stored from DR's Events API that the webhook never brought, by target",
            reconcile.recovered.clone(),
        );
        registry.register(
            "reconcile_last_success_timestamp_seconds",
            "When the last reconciliation sweep succeeded (Unix seconds), by target",
            reconcile.last_success.clone(),
        );
        registry.register(
            "reconcile_last_sweep_duration_milliseconds",
            "How long the last reconciliation sweep took, by target",
            reconcile.last_duration_ms.clone(),
        );
        registry.register(
            "dr_webhook_state",
            "1 for the state DR's webhook for this relay is in (ok, disabled, missing, types_missing, address_changed, unreachable), by target",
            reconcile.webhook_state.clone(),
        );
        registry.register(
            "reconcile_cursor_lag_seconds",
            "How far behind now reconciliation has looked at DR's events, by target",
            reconcile.cursor_lag.clone(),
        );
        registry.register(
            "salesforce_failed_events",
            "Events Salesforce answered 2xx for but the DR package kept as failure records (failed_in_salesforce), by target",
            reconcile.failed_in_salesforce.clone(),
        );
        registry.register(
            "salesforce_unknown_failed_events",
            "DR failure records in the org of events this relay does not hold (DR posted straight to the org), by target",
            reconcile.unknown_failures.clone(),
        );
        registry.register(
            "confirm_last_success_timestamp_seconds",
            "When the last sweep of the DR package's failure records succeeded (Unix seconds), by target",
            reconcile.confirm_last_success.clone(),
        );
        registry.register(
            "confirm_requests",
            "Query requests the sweep of failure records made (each one API request), by target",
            reconcile.confirm_requests.clone(),
        );
        registry.register(
            "trace_export_failures",
            "Batches of spans the OpenTelemetry collector did not take (telemetry.otlp_endpoint unreachable, refusing or slow); the spans are dropped",
            crate::telemetry::export_failures(),
        );
        Self {
            registry,
            sign_in_key,
            notifications,
            reconcile,
            events_received,
            inbound_rejections,
            deliveries,
            delivery_duration,
            events_by_status,
            oldest_pending_age,
            token_grants,
            api_usage_used,
            api_usage_max,
            breaker_open,
            sign_in_refused,
            concurrency_limit,
            in_flight,
            paused,
            long_running,
            pauses,
        }
    }

    /// One target's metrics, each resolved once for its label.
    pub fn for_target(&self, mode: Mode) -> TargetMetrics {
        let target = TargetLabels::of(mode);
        let gauge = |family: &TargetGauge| family.get_or_create(&target).clone();
        TargetMetrics {
            target: mode.as_str(),
            deliveries: self.deliveries.clone(),
            delivery_duration: self.delivery_duration.get_or_create(&target).clone(),
            token_grants: self.token_grants.get_or_create(&target).clone(),
            api_usage_used: gauge(&self.api_usage_used),
            api_usage_max: gauge(&self.api_usage_max),
            breaker_open: gauge(&self.breaker_open),
            sign_in_refused: gauge(&self.sign_in_refused),
            concurrency_limit: gauge(&self.concurrency_limit),
            in_flight: gauge(&self.in_flight),
            paused: gauge(&self.paused),
            long_running: self.long_running.get_or_create(&target).clone(),
            pauses: self.pauses.clone(),
        }
    }

    /// One mode's reconciliation metrics.
    pub fn for_reconcile(&self, mode: Mode) -> ReconcileMetrics {
        let target = TargetLabels::of(mode);
        ReconcileMetrics {
            recovered: self.reconcile.recovered.get_or_create(&target).clone(),
            last_success: self.reconcile.last_success.get_or_create(&target).clone(),
            last_duration_ms: self.reconcile.last_duration_ms.get_or_create(&target).clone(),
            cursor_lag: self.reconcile.cursor_lag.get_or_create(&target).clone(),
        }
    }

    /// One gauge per key name of `mode`'s JWT bearer sign-in.
    pub fn sign_in_key_gauges(&self, mode: Mode, keys: &[String]) -> Vec<(String, Gauge)> {
        keys.iter()
            .map(|key| {
                let labels = SignInKeyLabels {
                    target: mode.as_str(),
                    key: key.clone(),
                };
                (key.clone(), self.sign_in_key.get_or_create(&labels).clone())
            })
            .collect()
    }

    pub fn notification(&self, channel: &str, outcome: &'static str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                channel: channel.to_owned(),
                outcome,
            })
            .inc();
    }

    pub fn for_confirm(&self, mode: Mode) -> ConfirmMetrics {
        let target = TargetLabels::of(mode);
        ConfirmMetrics {
            failed_in_salesforce: self.reconcile.failed_in_salesforce.get_or_create(&target).clone(),
            unknown_failures: self.reconcile.unknown_failures.get_or_create(&target).clone(),
            last_success: self.reconcile.confirm_last_success.get_or_create(&target).clone(),
            requests: self.reconcile.confirm_requests.get_or_create(&target).clone(),
        }
    }

    /// The series of `drsf_dr_webhook_state` for one mode and state.
    pub fn webhook_state(&self, mode: Mode, state: &'static str) -> Gauge {
        self.reconcile
            .webhook_state
            .get_or_create(&WebhookStateLabels {
                target: mode.as_str(),
                state,
            })
            .clone()
    }

    pub fn received(&self, event_type: &str, outcome: &'static str) {
        self.events_received
            .get_or_create(&ReceivedLabels {
                event_type: event_type.to_owned(),
                outcome,
            })
            .inc();
    }

    pub fn rejected(&self, reason: &'static str) {
        self.inbound_rejections.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Renders the text format, first refreshing the gauges read from the store.
    pub fn render(&self, stats: Option<&StoreStats>, now_ms: i64) -> String {
        if let Some(stats) = stats {
            for (status, count) in stats.by_status() {
                let status = status.as_str();
                self.events_by_status
                    .get_or_create(&StatusLabels { status })
                    .set(count as i64);
            }
            let age = stats
                .oldest_pending_received_at_ms
                .map(|at| (now_ms - at).max(0) / 1000)
                .unwrap_or(0);
            self.oldest_pending_age.set(age);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
