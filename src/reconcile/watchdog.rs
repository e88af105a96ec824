//! The webhook watchdog: DR disables a webhook that keeps failing, without notice, and from then
//! on sends nothing — the relay is healthy and no order arrives. So the relay looks at DR's
//! webhooks itself every `reconcile.webhook_check_interval_secs`: the one for its own address
//! exists, is enabled and holds every subscribed type.
//!
//! Each finding is a [`WebhookState`], kept in the store (the status page's first line when it is
//! not `ok`), a metric and a log line when it changes. A disabled webhook is enabled again with
//! one PATCH (`reconcile.reenable_webhook`), at most once an hour and never while the relay's own
//! deliveries fail, and the gap is swept at once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio_util::sync::CancellationToken;

use super::Reconciler;
use super::silence::LastReceived;
use crate::delivery::TargetView;
use crate::digital_river::{DigitalRiverClient, Webhook};
use crate::domain::{EventType, Mode};
use crate::store::Store;
use crate::store::facts::WebhookSeen;
use crate::support::clock::Clock;

/// At most one re-enable per webhook in this long.
const REENABLE_EVERY_MS: i64 = 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookState {
    Ok,
    Disabled,
    Missing,
    TypesMissing,
    /// A webhook with the relay's OAuth client points elsewhere.
    AddressChanged,
    /// DR's API did not answer (or refused the key).
    Unreachable,
    /// The webhook looks right, but no event arrived for `reconcile.quiet_alert_secs` while DR
    /// created some: DR's posts do not reach the relay.
    Silent,
}

impl WebhookState {
    pub const ALL: [WebhookState; 7] = [
        Self::Ok,
        Self::Disabled,
        Self::Missing,
        Self::TypesMissing,
        Self::AddressChanged,
        Self::Unreachable,
        Self::Silent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Disabled => "disabled",
            Self::Missing => "missing",
            Self::TypesMissing => "types_missing",
            Self::AddressChanged => "address_changed",
            Self::Unreachable => "unreachable",
            Self::Silent => "silent",
        }
    }
}

/// What the watchdog judges a webhook by.
#[derive(Clone)]
pub struct Expected {
    /// Where DR should post: the relay's `{public_url}/webhooks/digitalriver`.
    pub address: String,
    /// The relay's inbound OAuth client id, which DR's webhook uses to get its token.
    pub client_id: String,
    pub types: Vec<EventType>,
}

/// The state of DR's webhooks for `expected`, with a sentence, and the webhook found.
pub fn judge<'a>(webhooks: &'a [Webhook], expected: &Expected) -> (WebhookState, String, Option<&'a Webhook>) {
    let Some(webhook) = webhooks.iter().find(|w| w.address == expected.address) else {
        let elsewhere = webhooks
            .iter()
            .find(|w| w.oauth.as_ref().and_then(|o| o.client_id.as_deref()) == Some(expected.client_id.as_str()));
        return match elsewhere {
            Some(w) => (
                WebhookState::AddressChanged,
                format!(
                    "webhook {} with the relay's client posts to {}, not {}",
                    w.id, w.address, expected.address
                ),
                None,
            ),
            None => (
                WebhookState::Missing,
                format!("no webhook for {}", expected.address),
                None,
            ),
        };
    };
    if webhook.enabled == Some(false) {
        return (
            WebhookState::Disabled,
            format!(
                "{} is disabled: DR disables a webhook that keeps failing, and sends nothing since",
                webhook.id
            ),
            Some(webhook),
        );
    }
    let missing: Vec<&str> = expected
        .types
        .iter()
        .map(EventType::as_str)
        .filter(|t| !webhook.types.iter().any(|have| have == t))
        .collect();
    if !missing.is_empty() {
        return (
            WebhookState::TypesMissing,
            format!("{} lacks event types: {}", webhook.id, missing.join(", ")),
            Some(webhook),
        );
    }
    (
        WebhookState::Ok,
        format!("{} for {}, enabled, every type", webhook.id, expected.address),
        Some(webhook),
    )
}

/// One mode's watchdog.
pub struct Watchdog {
    pub mode: Mode,
    pub client: DigitalRiverClient,
    pub store: Arc<dyn Store>,
    pub expected: Expected,
    pub interval: Duration,
    pub reenable: bool,
    /// The target of this mode: its deliveries must not be failing for a re-enable.
    pub target: Option<TargetView>,
    /// Sweeps the gap after a re-enable.
    pub reconciler: Option<Reconciler>,
    pub clock: Clock,
    /// `drsf_dr_webhook_state{target, state}`: 1 for the state now.
    pub gauges: Vec<(WebhookState, Gauge)>,
    /// When the webhook last brought an event, and how long a silence is alarming.
    pub heard: Option<(Arc<LastReceived>, Duration)>,
    last: Mutex<Option<WebhookState>>,
    last_reenable_ms: Mutex<Option<i64>>,
}

impl Watchdog {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mode: Mode,
        client: DigitalRiverClient,
        store: Arc<dyn Store>,
        expected: Expected,
        interval: Duration,
        reenable: bool,
        target: Option<TargetView>,
        reconciler: Option<Reconciler>,
        clock: Clock,
        gauges: Vec<(WebhookState, Gauge)>,
    ) -> Self {
        Self {
            mode,
            client,
            store,
            expected,
            interval,
            reenable,
            target,
            reconciler,
            clock,
            gauges,
            heard: None,
            last: Mutex::new(None),
            last_reenable_ms: Mutex::new(None),
        }
    }

    /// One look at DR's webhooks; answers the state found (after a re-enable: the state before).
    #[tracing::instrument(skip_all, fields(mode = self.mode.as_str()))]
    pub async fn check(&self) -> WebhookState {
        let now = self.clock.now_ms();
        let (mut state, mut detail, disabled_id) = match self.client.list_webhooks().await {
            Ok(webhooks) => {
                let (state, detail, webhook) = judge(&webhooks, &self.expected);
                (state, detail, webhook.map(|w| w.id.clone()))
            }
            Err(e) => (WebhookState::Unreachable, format!("DR's Webhooks API: {e}"), None),
        };
        if state == WebhookState::Ok
            && let Some(silence) = self.silence(now).await
        {
            (state, detail) = (WebhookState::Silent, silence);
        }
        for (s, gauge) in &self.gauges {
            gauge.set(i64::from(*s == state));
        }
        let changed = self.last.lock().expect("not poisoned").replace(state) != Some(state);
        if changed {
            match state {
                WebhookState::Ok => tracing::info!(state = state.as_str(), %detail, "DR's webhook is as it should be"),
                _ => tracing::error!(
                    state = state.as_str(),
                    %detail,
                    "DR's webhook is not as it should be: events may not arrive"
                ),
            }
        }
        let seen = WebhookSeen {
            ok: state == WebhookState::Ok,
            detail: detail.clone(),
            checked_at_ms: now,
            state: Some(state.as_str().to_owned()),
        };
        if let Err(e) = seen.remember(&*self.store, self.mode).await {
            tracing::warn!(error = %e, "could not note the webhook's state in the store");
        }
        if state == WebhookState::Disabled
            && let Some(id) = disabled_id
        {
            self.reenable_if_allowed(&id, now).await;
        }
        state
    }

    /// A sentence when no event arrived for the quiet-alert time although DR created some.
    async fn silence(&self, now: i64) -> Option<String> {
        let (heard, quiet) = self.heard.as_ref()?;
        let last = heard.of(self.mode);
        let quiet_ms = quiet.as_millis() as i64;
        if now - last < quiet_ms {
            return None;
        }
        let from = last.max(now - quiet_ms);
        match self.client.any_event(&self.expected.types, from, now).await {
            Ok(true) => Some(format!(
                "no event arrived from DR's webhook for {} h, yet DR created some: its posts do not reach the relay \
                 (DNS, TLS, a load balancer); reconciliation fetches them meanwhile",
                (now - last) / 3_600_000
            )),
            _ => None,
        }
    }

    async fn reenable_if_allowed(&self, id: &str, now: i64) {
        if !self.reenable {
            return;
        }
        if self
            .last_reenable_ms
            .lock()
            .expect("not poisoned")
            .is_some_and(|at| now - at < REENABLE_EVERY_MS)
        {
            return;
        }
        if let Some(target) = &self.target
            && target.snapshot().await.observed.failing_since_ms.is_some()
        {
            tracing::warn!("DR's webhook is disabled, but deliveries to Salesforce fail: not enabling it again yet");
            return;
        }
        *self.last_reenable_ms.lock().expect("not poisoned") = Some(now);
        match self.client.enable_webhook(id).await {
            Ok(_) => {
                tracing::warn!(
                    webhook_id = id,
                    "enabled DR's disabled webhook again; sweeping what DR created meanwhile"
                );
                if let Some(reconciler) = &self.reconciler
                    && let Err(e) = reconciler.sweep().await
                {
                    tracing::error!(error = %e, "the sweep after re-enabling the webhook failed; the next sweep tries again");
                }
            }
            Err(e) => {
                tracing::error!(webhook_id = id, error = %e, "could not enable DR's webhook again: enable it in the Dashboard")
            }
        }
    }

    /// Looks every interval until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            self.check().await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }
}
