//! `spawn_app()`: the real relay on port 0 with its own SQLite file and a Salesforce stand-in.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use dr_sf_bridge::app::Application;
use dr_sf_bridge::delivery::{Round, Worker};
use dr_sf_bridge::notify::{Notifier, Step as NotifyStep};
use dr_sf_bridge::reconcile::confirm::{ConfirmError, ConfirmSweep, Confirmer};
use dr_sf_bridge::reconcile::watchdog::{Watchdog, WebhookState};
use dr_sf_bridge::reconcile::{Reconciler, Sweep};
use dr_sf_bridge::settings::{self, LoadOptions, Purpose};
use dr_sf_bridge::store::{AttemptSummary, EventStatus, EventSummary, Store};
use dr_sf_bridge::support::clock::Clock;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::helpers::*;
use crate::salesforce_standin::*;

pub const SIGNING_SECRET: &str = "whsec_CURRENT_signing_secret";
pub const PREVIOUS_SIGNING_SECRET: &str = "whsec_PREVIOUS_signing_secret";
pub const TOKEN_KEY: &str = "relay-token-key-0123456789-abcdefghijklmnop";
pub const INBOUND_CLIENT_ID: &str = "digitalriver";
pub const BASIC_USER: &str = "dr-basic";

pub struct TestRelay {
    pub address: String,
    pub sf: SalesforceStandIn,
    pub http: reqwest::Client,
    pub store: Arc<dyn Store>,
    pub dir: tempfile::TempDir,
    /// Dropping it stops the relay.
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// This test's log lines.
    pub logs: LogCapture,
    /// One per Salesforce target: the relay's own workers, stepped by [`TestRelay::deliver_due`].
    workers: Vec<Worker>,
    /// One per mode the relay reconciles, stepped by [`TestRelay::sweep`].
    reconcilers: Vec<Reconciler>,
    /// One per reconciled mode, stepped by [`TestRelay::watch`].
    watchdogs: Vec<Arc<Watchdog>>,
    /// One per Salesforce target, stepped by [`TestRelay::confirm`].
    confirmers: Vec<Confirmer>,
    /// With a notification channel, stepped by [`TestRelay::notify`].
    notifier: Option<Notifier>,
    /// The relay's clock: adjustable in a stepped relay ([`TestRelay::advance`]).
    pub clock: Clock,
}

/// Whether a test relay delivers by itself or when the test steps it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The workers' loops run, as in production.
    Background,
    /// No loop: the test calls [`TestRelay::deliver_due`], on a clock it moves itself.
    Stepped,
}

/// The settings every relay test starts from; `overrides` win.
pub fn relay_overrides(
    sf: &SalesforceStandIn,
    db: &std::path::Path,
    overrides: &[(&str, &str)],
) -> Vec<(String, String)> {
    overrides_for_org(&sf.uri(), db, overrides)
}

/// [`relay_overrides`] for an org at `sf_uri` (a relay that will not call it may name any).
pub fn overrides_for_org(sf_uri: &str, db: &std::path::Path, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = [
        ("relay.listen", "127.0.0.1:0".to_owned()),
        ("storage.url", format!("sqlite://{}", db.display())),
        ("salesforce.my_domain_url", sf_uri.to_owned()),
        ("salesforce.token_url", format!("{sf_uri}{TOKEN_PATH}")),
        ("salesforce.client_id", "3MVG9consumerKey".to_owned()),
        ("salesforce.client_secret", SF_CLIENT_SECRET.to_owned()),
        ("salesforce.username", "integration@acme.com.uat".to_owned()),
        ("salesforce.password", SF_PASSWORD.to_owned()),
        ("salesforce.token_retry_base_delay_ms", "10".to_owned()),
        ("salesforce.request_timeout_secs", "5".to_owned()),
        ("relay.inbound_client_id", INBOUND_CLIENT_ID.to_owned()),
        ("relay.inbound_client_secret", RELAY_SECRET.to_owned()),
        ("relay.inbound_token_key", TOKEN_KEY.to_owned()),
        ("relay.basic_username", BASIC_USER.to_owned()),
        ("relay.basic_password", RELAY_PASSWORD.to_owned()),
        ("relay.shutdown_timeout_secs", "10".to_owned()),
        (
            "digital_river.signing_secrets",
            format!("{SIGNING_SECRET},{PREVIOUS_SIGNING_SECRET}"),
        ),
        ("delivery.retry_schedule", "0s,50ms,100ms".to_owned()),
        ("delivery.poll_interval_ms", "20".to_owned()),
        ("delivery.breaker_threshold", "1000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in overrides {
        all.retain(|(key, _)| key != k);
        all.push(((*k).to_owned(), (*v).to_owned()));
    }
    all
}

/// A relay in front of an org that accepts every event.
pub async fn spawn_app() -> TestRelay {
    let sf = SalesforceStandIn::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path(APEX_PATH))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&sf.server)
        .await;
    spawn_app_with(sf, &[]).await
}

pub async fn spawn_app_with(sf: SalesforceStandIn, overrides: &[(&str, &str)]) -> TestRelay {
    let dir = tempfile::tempdir().unwrap();
    spawn_app_in(sf, dir, overrides).await
}

/// A relay whose store is the file in `dir` (reused across restarts).
pub async fn spawn_app_in(sf: SalesforceStandIn, dir: tempfile::TempDir, overrides: &[(&str, &str)]) -> TestRelay {
    let all = relay_overrides(&sf, &dir.path().join("relay.db"), overrides);
    spawn_configured(sf, dir, all).await
}

/// A relay that delivers only when the test says so ([`TestRelay::deliver_due`]), on a clock the
/// test moves ([`TestRelay::advance`]): schedules read as "a minute later", without waiting.
pub async fn spawn_stepped_app_with(sf: SalesforceStandIn, overrides: &[(&str, &str)]) -> TestRelay {
    spawn_stepped_app_in(sf, tempfile::tempdir().unwrap(), overrides).await
}

/// [`spawn_stepped_app_with`] on the store in `dir` (reused across restarts).
pub async fn spawn_stepped_app_in(
    sf: SalesforceStandIn,
    dir: tempfile::TempDir,
    overrides: &[(&str, &str)],
) -> TestRelay {
    let all = relay_overrides(&sf, &dir.path().join("relay.db"), overrides);
    spawn(sf, dir, all, Delivery::Stepped).await
}

/// A relay with exactly these settings (over the files in `config/`).
pub async fn spawn_configured(
    sf: SalesforceStandIn,
    dir: tempfile::TempDir,
    overrides: Vec<(String, String)>,
) -> TestRelay {
    spawn(sf, dir, overrides, Delivery::Background).await
}

/// The relay's settings: the files in `config/` under `overrides`.
pub fn relay_settings(overrides: Vec<(String, String)>) -> settings::Settings {
    let options = LoadOptions {
        config_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/config").into()),
        overrides,
        ..LoadOptions::default()
    };
    settings::load(&options, Purpose::Relay).expect("valid test settings")
}

/// Builds the relay through the same [`Application::build_with_clock`] as `relay` does.
pub async fn spawn(
    sf: SalesforceStandIn,
    dir: tempfile::TempDir,
    overrides: Vec<(String, String)>,
    delivery: Delivery,
) -> TestRelay {
    let logs = capture_logs();
    let settings = relay_settings(overrides);
    let clock = match delivery {
        Delivery::Background => Clock::system(),
        Delivery::Stepped => Clock::adjustable(),
    };
    let mut app = Application::build_with_clock(settings, clock.clone())
        .await
        .expect("the relay starts");
    if delivery == Delivery::Stepped {
        app = app.without_background_delivery();
    }
    let workers = app.workers();
    let reconcilers = app.reconcilers();
    let watchdogs = app.watchdogs();
    let confirmers = app.confirmers();
    let notifier = app.notifier();
    let address = format!("http://127.0.0.1:{}", app.port());
    let store = app.state().store.clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestRelay {
        address,
        sf,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        store,
        dir,
        stop,
        handle,
        logs,
        workers,
        reconcilers,
        watchdogs,
        confirmers,
        notifier,
        clock,
    }
}

pub fn basic_header() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{BASIC_USER}:{RELAY_PASSWORD}"))
    )
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn signed(body: &[u8]) -> String {
    dr_sf_bridge::digital_river::signature::sign(SIGNING_SECRET, unix_now(), body)
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../shared/fixtures/events/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A fixture of `event_type` with its event id and order id replaced.
pub fn event(event_type: &str, id: &str, order: &str) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(&fixture_bytes(event_type)).unwrap();
    value["id"] = Value::String(id.to_owned());
    let object = &mut value["data"]["object"];
    if object.get("orderId").is_some() {
        object["orderId"] = Value::String(order.to_owned());
    } else {
        object["id"] = Value::String(order.to_owned());
    }
    serde_json::to_vec(&value).unwrap()
}

impl TestRelay {
    /// Posts a body as DR does: Basic auth and a fresh signature.
    pub async fn post_event(&self, body: &[u8]) -> reqwest::Response {
        self.post_raw(body, Some(&signed(body)), Some(&basic_header())).await
    }

    pub async fn post_raw(
        &self,
        body: &[u8],
        signature: Option<&str>,
        authorization: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/webhooks/digitalriver", self.address))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(signature) = signature {
            request = request.header("DigitalRiver-Signature", signature);
        }
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        request.send().await.expect("the relay answers")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the relay answers")
    }

    /// Posts like DR and asserts the relay accepted the event (202).
    pub async fn accept(&self, body: &[u8]) {
        let response = self.post_event(body).await;
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap_or_default());
    }

    /// The stored event and its attempts; fails the test when it is unknown.
    pub async fn stored(&self, id: &str) -> (EventSummary, Vec<AttemptSummary>) {
        let event_id = dr_sf_bridge::domain::EventId::parse(id).unwrap();
        self.store
            .get(&event_id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} is not stored"))
    }

    /// Posts `count` `order.accepted` events `{prefix}-{n}`, each of its own order (the id with
    /// `o-` for `evt-`: `evt-bulk-2` is of order `o-bulk-2`), and waits until every one is `status`.
    pub async fn accept_until(&self, prefix: &str, count: usize, status: EventStatus) {
        for n in 0..count {
            let id = format!("{prefix}-{n}");
            let order = format!("o-{}", id.trim_start_matches("evt-"));
            self.accept(&event("order.accepted", &id, &order)).await;
        }
        for n in 0..count {
            self.wait_for_status(&format!("{prefix}-{n}"), status).await;
        }
    }

    pub async fn status_of(&self, id: &str) -> Option<EventStatus> {
        let id = dr_sf_bridge::domain::EventId::parse(id).unwrap();
        self.store.get(&id).await.unwrap().map(|(summary, _)| summary.status)
    }

    pub async fn wait_for_status(&self, id: &str, status: EventStatus) {
        wait_until(&format!("{id} to be {status:?}"), || async {
            self.status_of(id).await == Some(status)
        })
        .await;
    }

    /// Delivers everything due now on every target, and waits for the outcomes: how many
    /// attempts were made. For a stepped relay ([`spawn_stepped_app_with`]).
    pub async fn deliver_due(&self) -> usize {
        let mut attempted = 0;
        for worker in &self.workers {
            attempted += worker.deliver_due().await;
        }
        attempted
    }

    /// Whether the first target's loop has a wake-up waiting (taking it): see [`Worker::take_wake`].
    pub fn take_wake(&self) -> bool {
        self.workers[0].take_wake()
    }

    /// One claim round of the first target (after the usage probe the pacer may ask for first),
    /// awaited: how many deliveries it started.
    pub async fn claim_round(&self) -> usize {
        loop {
            let mut tasks = tokio::task::JoinSet::new();
            let round = self.workers[0].claim_round(&mut tasks).await;
            while tasks.join_next().await.is_some() {}
            match round {
                Round::Probed => continue,
                Round::Started { started, .. } => return started,
                Round::Wait(_) => return 0,
            }
        }
    }

    /// One reconciliation sweep of the first mode the relay reconciles, now.
    pub async fn sweep(&self) -> Sweep {
        self.reconcilers
            .first()
            .expect("the relay reconciles (it has a DR API key)")
            .sweep()
            .await
            .expect("the sweep succeeds")
    }

    /// One look of the first webhook watchdog at DR's webhooks, now.
    pub async fn watch(&self) -> WebhookState {
        self.watchdogs
            .first()
            .expect("the relay watches DR's webhook (a DR API key and relay.public_url)")
            .check()
            .await
    }

    /// One sweep of the first target's DR failure records in Salesforce, now.
    pub async fn confirm(&self) -> Result<ConfirmSweep, ConfirmError> {
        self.confirmers
            .first()
            .expect("the relay confirms in Salesforce (confirm.enabled)")
            .sweep()
            .await
    }

    /// One look of the notifier at the relay's conditions, now: what it queued and sent.
    pub async fn notify(&self) -> NotifyStep {
        self.notifier
            .as_ref()
            .expect("the relay notifies (a [notify.channels.<name>])")
            .step()
            .await
            .expect("the notifier's state is kept")
    }

    /// Moves a stepped relay's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.text().await.unwrap()
    }

    /// Stops the relay gracefully, waits for it, and hands back its Salesforce and its folder.
    pub async fn stop(self) -> (SalesforceStandIn, tempfile::TempDir) {
        let Self {
            sf, dir, stop, handle, ..
        } = self;
        drop(stop);
        tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .expect("stopped in time")
            .unwrap()
            .unwrap();
        (sf, dir)
    }
}

/// Polls `condition` every 10 ms until it holds; fails the test after 30 s. The conditions waited
/// for take well under a second on an idle machine and a few with both cores kept busy (`.ci/run`'s
/// load step): 30 s is room, not a measure.
pub async fn wait_until<F, Fut>(what: &str, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_until_within(what, Duration::from_secs(30), condition).await
}

/// [`wait_until`] with its own deadline, for work that is slow by design (trace logging, ...).
pub async fn wait_until_within<F, Fut>(what: &str, within: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll_until(what, within, Duration::from_millis(10), condition).await
}

/// [`wait_until_within`], looking every `every`: for conditions that cost something to check.
pub async fn poll_until<F, Fut>(what: &str, within: Duration, every: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(every).await;
    }
}
