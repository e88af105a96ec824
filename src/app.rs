//! The composition root: the one room that builds the relay's parts and starts its tasks.
//!
//! [`Application::build`] opens the store, builds one [`Target`] per Salesforce org and its
//! worker, the HTTP door and the status page, and binds its listener itself
//! (port 0 in tests) so that a test knows the port before the server runs. On shutdown the server
//! stops accepting, the worker stops claiming and waits for in-flight deliveries for at most
//! `relay.shutdown_timeout_secs`; whatever is not delivered stays stored for the next start.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::delivery::{Target, TargetView, Worker};
use crate::digital_river::{DigitalRiverClient, ModeVerifiers, SignatureVerifier};
use crate::domain::Mode;
use crate::http::inbound_auth::InboundAuth;
use crate::http::server::serve;
use crate::http::state::AppState;
use crate::http::throttle::AuthThrottle;
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::reconcile::Reconciler;
use crate::reconcile::confirm::Confirmer;
use crate::reconcile::silence::LastReceived;
use crate::reconcile::watchdog::{Expected, Watchdog, WebhookState};
use crate::settings::{ConnectionLimits, RegisterTarget, Settings};
use crate::store::{self, Store};
use crate::support::clock::{Clock, now_ms};

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
    /// One per mode whose DR API key the relay has, with `reconcile.enabled`.
    reconcilers: Vec<Reconciler>,
    /// One per reconciled mode, when the relay knows its own address (`relay.public_url`).
    watchdogs: Vec<Arc<Watchdog>>,
    /// One per Salesforce target, with `confirm.enabled`.
    confirmers: Vec<Confirmer>,
    /// With at least one `[notify.channels.<name>]`.
    notifier: Option<Notifier>,
    /// Whether the workers' loops run; off, deliveries happen when [`Application::workers`]'
    /// `deliver_due` is called.
    background_delivery: bool,
    shutdown_timeout: Duration,
    retention: Duration,
    limits: ConnectionLimits,
    /// What the start-up line says: the store, each org, what runs beside the deliveries.
    summary: Summary,
}

/// The relay's start-up line, in fields: what an engineer checks first when it misbehaves.
struct Summary {
    store: String,
    orgs: String,
    status_page: bool,
    reconciles: String,
    confirms: bool,
    notify_channels: usize,
}

impl Application {
    /// Opens the store, binds `relay.listen` and prepares the workers; nothing runs yet.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// [`Application::build`] with the schedules on `clock` (a test's adjustable one).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
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
        let mut confirmers = Vec::new();
        for sf in settings.salesforce.iter() {
            let target = Target::build(sf, &settings.delivery, store.clone(), &metrics, clock.clone()).await?;
            if settings.confirm.enabled {
                confirmers.push(Confirmer::new(
                    target.clone(),
                    store.clone(),
                    settings.confirm.clone(),
                    metrics.for_confirm(sf.mode),
                ));
            }
            workers.push(Worker::new(target, store.clone(), wake.clone(), poll_interval));
            if sf.grant_type == crate::salesforce::GrantType::Password {
                tracing::warn!(
                    mode = sf.mode.as_str(),
                    "the {} target signs in with the password grant. {}; {}",
                    sf.mode,
                    crate::salesforce::PASSWORD_FLOW_ENDS,
                    crate::salesforce::PASSWORD_FLOW_WAYS_OUT
                );
            }
            if settings.digital_river.signing_secrets_for(sf.mode).is_empty() {
                tracing::warn!(
                    mode = sf.mode.as_str(),
                    "no signing secrets for {} events: they are accepted without a signature check",
                    sf.mode
                );
            }
        }
        let targets: Vec<TargetView> = workers.iter().map(|w| TargetView::of(w.target())).collect();
        let reconcilers = reconcilers(&settings, &store, &clock, &wake, &metrics)?;
        let last_received = Arc::new(LastReceived::new(clock.clone()));
        let watchdogs = watchdogs(
            &settings,
            &store,
            &clock,
            &metrics,
            &targets,
            &reconcilers,
            &last_received,
        )?;
        let notifier = if settings.notify.channels.is_empty() {
            None
        } else {
            Some(Notifier::new(
                store.clone(),
                targets.clone().into(),
                settings.notify.clone(),
                settings
                    .relay
                    .public_url
                    .as_ref()
                    .map(|url| url.join_path(crate::http::paths::UI_HOME)),
                clock.clone(),
                metrics.clone(),
            )?)
        };
        let state = AppState::new(crate::http::state::Shared {
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
            throttle: Arc::new(
                AuthThrottle::new(settings.relay.max_auth_failures_per_minute).with_clock(clock.clone()),
            ),
            client_ip_header: settings.relay.client_ip_header.clone(),
            targets: targets.into(),
            last_received,
            secure_cookies: settings
                .relay
                .public_url
                .as_ref()
                .is_some_and(|url| url.url().scheme() == "https"),
        });
        let listener = tokio::net::TcpListener::bind(&settings.relay.listen)
            .await
            .with_context(|| format!("binding relay.listen = {}", settings.relay.listen))?;
        let port = listener.local_addr()?.port();
        let summary = Summary {
            store: crate::support::text::redact_url(&settings.storage.url),
            orgs: settings
                .salesforce
                .iter()
                .map(|sf| {
                    format!(
                        "{} events → {} ({} grant)",
                        sf.mode,
                        sf.my_domain_url.as_ref().map_or("?", |url| url.host()),
                        sf.grant_type.as_str()
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            status_page: settings.relay.admin_token.is_some(),
            reconciles: if reconcilers.is_empty() {
                "off".to_owned()
            } else {
                reconcilers
                    .iter()
                    .map(|r| r.mode().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            confirms: !confirmers.is_empty(),
            notify_channels: settings.notify.channels.len(),
        };
        Ok(Self {
            listener,
            port,
            state,
            workers,
            reconcilers,
            watchdogs,
            confirmers,
            notifier,
            background_delivery: true,
            shutdown_timeout: settings.relay.shutdown_timeout,
            retention: Duration::from_secs(u64::from(settings.storage.retention_days) * 86_400),
            limits: settings.relay.limits,
            summary,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The delivery workers, one per Salesforce target; clones share everything with the ones
    /// the relay runs.
    pub fn workers(&self) -> Vec<Worker> {
        self.workers.clone()
    }

    /// The reconciliation sweeps, one per mode; clones share the relay's store and lease.
    pub fn reconcilers(&self) -> Vec<Reconciler> {
        self.reconcilers.clone()
    }

    /// The webhook watchdogs, one per reconciled mode.
    pub fn watchdogs(&self) -> Vec<Arc<Watchdog>> {
        self.watchdogs.clone()
    }

    /// The sweeps of the DR package's failure records, one per Salesforce target.
    pub fn confirmers(&self) -> Vec<Confirmer> {
        self.confirmers.clone()
    }

    /// The notifier, when a channel is configured.
    pub fn notifier(&self) -> Option<Notifier> {
        self.notifier.clone()
    }

    /// Runs no delivery loop: events are stored, and delivered only when a caller of
    /// [`Application::workers`] asks (`Worker::deliver_due`). For tests that step deliveries.
    pub fn without_background_delivery(mut self) -> Self {
        self.background_delivery = false;
        self
    }

    /// Serves until `shutdown` completes, then shuts down gracefully.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let (workers, sweeps): (Vec<_>, Vec<_>) = if self.background_delivery {
            let workers = self
                .workers
                .into_iter()
                .map(|worker| tokio::spawn(worker.run(stop.clone(), self.shutdown_timeout)))
                .collect();
            let sweeps = self
                .reconcilers
                .into_iter()
                .map(|reconciler| tokio::spawn(reconciler.run(stop.clone())))
                .chain(
                    self.watchdogs
                        .into_iter()
                        .map(|watchdog| tokio::spawn(watchdog.run(stop.clone()))),
                )
                .chain(
                    self.confirmers
                        .into_iter()
                        .map(|confirmer| tokio::spawn(confirmer.run(stop.clone()))),
                )
                .chain(self.notifier.map(|notifier| tokio::spawn(notifier.run(stop.clone()))))
                .collect();
            (workers, sweeps)
        } else {
            (Vec::new(), Vec::new())
        };
        let pruner = tokio::spawn(prune_forever(self.state.store.clone(), self.retention, stop.clone()));
        let summary = &self.summary;
        tracing::info!(
            listen = %self.listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            store = %summary.store,
            orgs = %summary.orgs,
            status_page = %if summary.status_page { "on" } else { "off" },
            reconcile = %summary.reconciles,
            confirm_in_salesforce = summary.confirms,
            notify_channels = summary.notify_channels,
            "relay listening"
        );
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
        for sweep in sweeps {
            let _ = sweep.await;
        }
        for worker in workers {
            worker.await.context("a delivery worker panicked")?;
        }
        tracing::info!("relay stopped");
        Ok(())
    }
}

/// A reconciliation sweep for each Salesforce target's mode whose DR API key the relay has.
fn reconcilers(
    settings: &Settings,
    store: &Arc<dyn Store>,
    clock: &Clock,
    wake: &Arc<Notify>,
    metrics: &Metrics,
) -> anyhow::Result<Vec<Reconciler>> {
    if !settings.reconcile.enabled {
        return Ok(Vec::new());
    }
    if settings.register.target != RegisterTarget::Relay {
        // DR's webhook posts straight to Salesforce: what the relay's store lacks is not missing
        // in Salesforce, and sweeping would deliver it a second time.
        tracing::info!(
            "register.target is salesforce (DR posts straight to the org): the relay does not reconcile with DR's Events API"
        );
        return Ok(Vec::new());
    }
    let mut reconcilers = Vec::new();
    for mode in settings.salesforce.modes() {
        let Ok(key) = settings.dr_key(mode) else {
            tracing::info!(
                mode = mode.as_str(),
                "no DR API key for {mode} events: no reconciliation with DR's Events API (run `events backfill` after an outage)"
            );
            continue;
        };
        let client = DigitalRiverClient::new(settings.digital_river.api_options(), key.clone())
            .context("building the DR client for reconciliation")?;
        reconcilers.push(Reconciler::new(
            mode,
            client,
            store.clone(),
            settings.digital_river.event_types.clone(),
            settings.reconcile.clone(),
            clock.clone(),
            wake.clone(),
            metrics.for_reconcile(mode),
        ));
    }
    Ok(reconcilers)
}

/// A watchdog of DR's webhook for each reconciled mode, when the relay knows the address DR posts
/// to (`relay.public_url`).
fn watchdogs(
    settings: &Settings,
    store: &Arc<dyn Store>,
    clock: &Clock,
    metrics: &Metrics,
    targets: &[TargetView],
    reconcilers: &[Reconciler],
    last_received: &Arc<LastReceived>,
) -> anyhow::Result<Vec<Arc<Watchdog>>> {
    let Ok(inbound) = settings.relay.inbound_oauth() else {
        if !reconcilers.is_empty() {
            tracing::info!("no relay.public_url (or inbound OAuth client): DR's webhook is not watched");
        }
        return Ok(Vec::new());
    };
    let expected = Expected {
        address: inbound.public_url.join_path(crate::http::paths::WEBHOOK),
        client_id: inbound.client_id.clone(),
        types: settings.digital_river.event_types.clone(),
    };
    let mut watchdogs = Vec::new();
    for reconciler in reconcilers {
        let mode = reconciler.mode();
        let client = DigitalRiverClient::new(settings.digital_river.api_options(), settings.dr_key(mode)?.clone())
            .context("building the DR client for the webhook watchdog")?;
        let gauges = WebhookState::ALL
            .iter()
            .map(|state| (*state, metrics.webhook_state(mode, state.as_str())))
            .collect();
        let mut watchdog = Watchdog::new(
            mode,
            client,
            store.clone(),
            expected.clone(),
            settings.reconcile.webhook_check_interval,
            settings.reconcile.reenable_webhook,
            targets.iter().find(|t| t.mode() == mode).cloned(),
            Some(reconciler.clone()),
            clock.clone(),
            gauges,
        );
        watchdog.heard = Some((last_received.clone(), settings.reconcile.quiet_alert));
        watchdogs.push(Arc::new(watchdog));
    }
    Ok(watchdogs)
}

/// Every route the relay answers: the HTTP door's areas and the status page, under the door's
/// shared layers.
pub fn router(state: AppState) -> axum::Router {
    let routes = crate::http::areas(&state).merge(crate::status_page::router(&state));
    crate::http::with_layers(routes, state)
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
