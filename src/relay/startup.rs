//! Start-up and shutdown of the relay: the composition root.
//!
//! [`Application::build`] opens the store, builds the clients and binds its listener itself
//! (port 0 in tests) so that a test knows the port before the server runs. On shutdown the server
//! stops accepting, the worker stops claiming and waits for in-flight deliveries for at most
//! `relay.shutdown_timeout_secs`; whatever is not delivered stays stored for the next start.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::inbound_auth::InboundAuth;
use super::router::router;
use super::server::serve;
use super::state::AppState;
use super::throttle::AuthThrottle;
use crate::delivery::{CircuitBreaker, Pacer, RetryPolicy, SignInMemory, TargetView, Worker};
use crate::digital_river::{ModeVerifiers, SignatureVerifier};
use crate::domain::Mode;
use crate::metrics::Metrics;
use crate::settings::salesforce::Concurrency;
use crate::settings::{ConnectionLimits, Settings};
use crate::store::{self, Store};
use crate::support::clock::now_ms;

/// How often a relay whose store wakes it (PostgreSQL's `NOTIFY`) still looks for work it was not
/// told of: leases of a relay that died, a wake-up lost while the listening connection was down.
const POLL_WHEN_WOKEN: Duration = Duration::from_secs(5);

/// How often delivered events past the retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub struct Application {
    listener: tokio::net::TcpListener,
    port: u16,
    state: AppState,
    /// One per Salesforce target.
    workers: Vec<Worker>,
    shutdown_timeout: Duration,
    retention: Duration,
    limits: ConnectionLimits,
}

impl Application {
    /// Opens the store, binds `relay.listen` and prepares the worker; nothing runs yet.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = store::open(&settings.storage, store::Role::Relay)
            .await
            .context("opening the store")?;
        let metrics = Arc::new(Metrics::new());
        let wake = Arc::new(Notify::new());
        let poll_interval = if store.forward_wakeups(wake.clone()) {
            settings.delivery.poll_interval.max(POLL_WHEN_WOKEN)
        } else {
            settings.delivery.poll_interval
        };
        let mut workers = Vec::new();
        let mut targets = Vec::new();
        for sf in settings.salesforce.iter() {
            let apex = sf.apex_client(&settings.delivery, metrics.for_target(sf.mode).token_grants)?;
            let sign_in = Arc::new(SignInMemory::new(
                store.clone(),
                apex.tokens().clone(),
                &metrics,
                sf.mode,
            ));
            sign_in.restore().await;
            // Longer than the longest delivery: a 401, a new grant with its retries, and a replay.
            let lease = sf.request_timeout * 3 + Duration::from_secs(10);
            let target = TargetView {
                mode: sf.mode,
                webhook_url: apex.webhook_url().to_owned(),
                breaker: Arc::new(CircuitBreaker::new(
                    settings.delivery.breaker_threshold,
                    settings.delivery.breaker_cooldown,
                )),
                pacer: Arc::new(Pacer::new(
                    sf.max_in_flight,
                    sf.concurrency == Concurrency::Adaptive,
                    sf.api_reserve_percent,
                    settings.delivery.rate_limit_min_delay,
                    &metrics,
                    sf.mode,
                )),
                tokens: apex.tokens().clone(),
                health: Arc::default(),
            };
            workers.push(Worker {
                mode: sf.mode,
                store: store.clone(),
                client: apex,
                policy: RetryPolicy {
                    schedule: settings.delivery.retry_schedule.clone(),
                    max_attempts_on_400: settings.delivery.max_attempts_on_400,
                },
                breaker: target.breaker.clone(),
                pacer: target.pacer.clone(),
                max_in_flight: sf.max_in_flight,
                lease,
                poll_interval,
                wake: wake.clone(),
                metrics: metrics.clone(),
                sign_in: Some(sign_in),
                health: target.health.clone(),
            });
            targets.push(target);
            if settings.digital_river.signing_secrets_for(sf.mode).is_empty() {
                tracing::warn!(
                    mode = sf.mode.as_str(),
                    "no signing secrets for {} events: they are accepted without a signature check",
                    sf.mode
                );
            }
        }
        let state = AppState {
            store: store.clone(),
            inbound: Arc::new(InboundAuth::new(&settings.relay.inbound)),
            signatures: Arc::new(verifiers(&settings)),
            subscription: Arc::new(settings.digital_river.event_types.iter().cloned().collect()),
            modes: settings.salesforce.modes().into(),
            body_limit: settings.relay.body_limit_bytes,
            metrics: metrics.clone(),
            wake: wake.clone(),
            admin_token: settings.relay.admin_token.clone(),
            request_timeout: settings.relay.limits.request_timeout,
            throttle: Arc::new(AuthThrottle::new(settings.relay.max_auth_failures_per_minute)),
            client_ip_header: settings.relay.client_ip_header.clone(),
            targets: targets.into(),
            secure_cookies: settings
                .relay
                .public_url
                .as_ref()
                .is_some_and(|url| url.url().scheme() == "https"),
        };
        let listener = tokio::net::TcpListener::bind(&settings.relay.listen)
            .await
            .with_context(|| format!("binding relay.listen = {}", settings.relay.listen))?;
        let port = listener.local_addr()?.port();
        Ok(Self {
            listener,
            port,
            state,
            workers,
            shutdown_timeout: settings.relay.shutdown_timeout,
            retention: Duration::from_secs(u64::from(settings.storage.retention_days) * 86_400),
            limits: settings.relay.limits,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then shuts down gracefully.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let workers: Vec<_> = self
            .workers
            .into_iter()
            .map(|worker| tokio::spawn(worker.run(stop.clone(), self.shutdown_timeout)))
            .collect();
        let pruner = tokio::spawn(prune_forever(self.state.store.clone(), self.retention, stop.clone()));
        tracing::info!(port = self.port, "relay listening");
        let server_stop = stop.clone();
        serve(self.listener, router(self.state), self.limits, async move {
            tokio::select! {
                _ = shutdown => {}
                _ = server_stop.cancelled() => {}
            }
            tracing::info!("shutting down: no new requests; finishing in-flight deliveries");
            server_stop.cancel();
        })
        .await;
        stop.cancel();
        let _ = pruner.await;
        for worker in workers {
            worker.await.context("a delivery worker panicked")?;
        }
        tracing::info!("relay stopped");
        Ok(())
    }
}

/// Each mode's signature check: its own secrets (`digital_river.<mode>.signing_secrets`), else
/// the section's.
fn verifiers(settings: &Settings) -> ModeVerifiers {
    let dr = &settings.digital_river;
    let of = |mode| SignatureVerifier::new(dr.signing_secrets_for(mode).to_vec(), dr.signature_tolerance);
    ModeVerifiers::new(of(Mode::Test), of(Mode::Live))
}

async fn prune_forever(store: Arc<dyn Store>, retention: Duration, stop: CancellationToken) {
    let mut every = tokio::time::interval(PRUNE_EVERY);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let before = now_ms() - retention.as_millis() as i64;
        match store.prune(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "pruned delivered events past the retention"),
            Err(e) => tracing::warn!(error = %e, "could not prune old events"),
        }
    }
}

/// Completes on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
