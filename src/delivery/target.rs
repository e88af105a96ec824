//! One Salesforce org as the relay delivers to it: its client and token, its retry rules, its
//! circuit breaker and pacer, the memory of a refused sign-in, and what the status page shows of
//! it.
//!
//! Built once per target ([`Target::build`], from the settings) and shared: the worker delivers
//! through it, the HTTP door and the status page read it through [`TargetView`], the metrics
//! are its own series. Nothing else builds these parts, so a test's relay has the same ones as
//! production's.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::breaker::CircuitBreaker;
use super::health::{TargetHealth, TargetSnapshot};
use super::pacing::Pacer;
use super::policy::RetryPolicy;
use super::sign_in::SignInMemory;
use crate::domain::Mode;
use crate::metrics::{Metrics, TargetMetrics};
use crate::salesforce::{ApexClient, AuthError};
use crate::settings::DeliverySettings;
use crate::settings::salesforce::{Concurrency, SalesforceSettings};
use crate::store::Store;
use crate::support::clock::Clock;

pub struct Target {
    /// The DR mode of the events this org takes.
    pub mode: Mode,
    pub client: ApexClient,
    pub policy: RetryPolicy,
    pub breaker: CircuitBreaker,
    /// How many deliveries at once the org takes now, and the pauses for its API limits.
    pub pacer: Pacer,
    /// Remembers a refused sign-in across restarts.
    pub sign_in: SignInMemory,
    /// What the status page shows of this target.
    pub health: TargetHealth,
    /// This target's series of the relay's metrics.
    pub metrics: TargetMetrics,
    /// Deliveries in flight at most (`salesforce.max_in_flight`).
    pub max_in_flight: usize,
    /// How long a claim holds an event: longer than the longest delivery.
    pub lease: Duration,
    pub clock: Clock,
}

impl Target {
    /// The org of `sf`, with a refused sign-in read back from the store.
    pub async fn build(
        sf: &SalesforceSettings,
        delivery: &DeliverySettings,
        store: Arc<dyn Store>,
        metrics: &Metrics,
        clock: Clock,
    ) -> anyhow::Result<Arc<Self>> {
        let series = metrics.for_target(sf.mode);
        let client = sf
            .apex_client(
                delivery,
                series.token_grants.clone(),
                metrics.sign_in_key_gauges(sf.mode, &sf.signing_key_names()),
                &clock,
            )
            .with_context(|| format!("building the Salesforce client of [{}]", sf.section))?;
        let sign_in = SignInMemory::new(store, client.tokens().clone(), metrics, sf.mode, clock.clone());
        sign_in.restore().await;
        Ok(Arc::new(Self {
            mode: sf.mode,
            policy: RetryPolicy {
                schedule: delivery.retry_schedule.clone(),
                max_attempts_on_400: delivery.max_attempts_on_400,
            },
            breaker: CircuitBreaker::new(delivery.breaker_threshold, delivery.breaker_cooldown)
                .with_clock(clock.clone()),
            pacer: Pacer::new(
                sf.max_in_flight,
                sf.concurrency == Concurrency::Adaptive,
                sf.api_reserve_percent,
                delivery.rate_limit_min_delay,
                metrics,
                sf.mode,
            )
            .with_clock(clock.clone()),
            sign_in,
            health: TargetHealth::default(),
            metrics: series,
            max_in_flight: sf.max_in_flight,
            // A 401, a new grant with its retries, and a replay, with room to spare.
            lease: sf.request_timeout * 3 + Duration::from_secs(10),
            client,
            clock,
        }))
    }
}

/// A target as the HTTP door and the status page see it: read-only.
#[derive(Clone)]
pub struct TargetView(Arc<Target>);

impl TargetView {
    pub fn of(target: &Arc<Target>) -> Self {
        Self(target.clone())
    }

    pub fn mode(&self) -> Mode {
        self.0.mode
    }

    /// Where its events are posted (the org's Apex REST resource).
    pub fn webhook_url(&self) -> String {
        self.0.client.webhook_url().to_owned()
    }

    /// The target's state at this moment.
    pub async fn snapshot(&self) -> TargetSnapshot {
        let target = &self.0;
        let tokens = target.client.tokens();
        let refused = match tokens.current_rejection().await {
            Some((error @ AuthError::Rejected { .. }, _)) => Some(error.to_string()),
            _ => None,
        };
        TargetSnapshot {
            mode: target.mode,
            webhook_url: target.client.webhook_url().to_owned(),
            grant: tokens.auth().grant_type().as_str(),
            grants: tokens.grants(),
            sign_in_refused: refused,
            breaker_open: target.breaker.is_open(),
            paused: target.pacer.paused(),
            concurrency: target.pacer.limit(),
            max_in_flight: target.max_in_flight,
            observed: target.health.observed(),
        }
    }
}
