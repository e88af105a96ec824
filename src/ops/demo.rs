//! `demo`: the connector working end to end on this machine, with nothing to configure.
//!
//! A relay on a temporary SQLite file with OAuth and signatures on, an in-process Salesforce org
//! ([`super::org_standin`]) that fails some first attempts, and Digital River's eight order events
//! sent the way DR sends them — plus a ninth the org refuses as invalid until it dies, so that the
//! status page (`--keep-running`) shows a dead event, why, and its replay (the stand-in accepts it
//! when it is sent again). Each event's way is reported as it happens — received, stored, each
//! attempt, delivered or dead — then a summary. Nothing here touches a real org or a real DR
//! account.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde::Serialize;

use super::OpsError;
use super::org_standin::OrgStandIn;
use super::samples;
use super::sender::{DrSender, SenderAuth};
use crate::app::Application;
use crate::domain::{EventId, EventType};
use crate::settings::{LoadOptions, Purpose};
use crate::store::EventStatus;

/// The longest the demo waits for every event to be delivered or dead.
const DEADLINE: Duration = Duration::from_secs(60);
/// The order of the event the stand-in org refuses as invalid (400) at each of its attempts.
const REFUSED_ORDER: &str = "demo-refused-order";
/// Attempts on a 400 before an event is dead, in the demo (and how often the org refuses it).
const ATTEMPTS_ON_400: usize = 2;

/// What the demo did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoReport {
    pub events: usize,
    pub delivered: usize,
    /// Events dead: the one the stand-in org refuses, on purpose.
    pub dead: usize,
    pub attempts: usize,
    pub retried: usize,
    pub token_grants: u64,
    pub seconds: f64,
    pub relay_url: String,
    pub salesforce_url: String,
}

/// The credentials the demo's relay accepts, shown with `--keep-running` so that `trigger` can be
/// pointed at it. Throwaway values, made for this run and valid nowhere else.
#[derive(Debug, Clone)]
pub struct DemoCredentials {
    pub client_id: String,
    pub client_secret: SecretString,
    pub signing_secret: SecretString,
    /// Signs in to the demo relay's status page.
    pub admin_token: SecretString,
}

fn throwaway(prefix: &str) -> String {
    format!("{prefix}-{}", samples::random_id())
}

/// A running demo: the relay and the org stay up until it is dropped or `stop` is called.
pub struct Demo {
    pub report: DemoReport,
    pub credentials: DemoCredentials,
    pub storage_url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    relay: tokio::task::JoinHandle<anyhow::Result<()>>,
    _org: OrgStandIn,
    _dir: tempfile::TempDir,
}

impl Demo {
    /// Stops the relay gracefully.
    pub async fn stop(self) -> Result<(), OpsError> {
        let _ = self.stop.send(());
        self.relay
            .await
            .map_err(|e| OpsError::Other(e.into()))?
            .map_err(OpsError::Other)
    }
}

/// Runs the demo; `say` receives each line of the live account.
pub async fn run(mut say: impl FnMut(String)) -> Result<Demo, OpsError> {
    let started = Instant::now();
    let org = OrgStandIn::demo().await.map_err(|e| OpsError::Other(e.into()))?;
    org.org
        .refuse_orders
        .lock()
        .expect("not poisoned")
        .insert(REFUSED_ORDER.to_owned(), ATTEMPTS_ON_400);
    let dir = tempfile::tempdir().map_err(|e| OpsError::Other(e.into()))?;
    let storage_url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let credentials = DemoCredentials {
        client_id: "digitalriver-demo".to_owned(),
        client_secret: SecretString::from(throwaway("demo-client-secret")),
        signing_secret: SecretString::from(throwaway("whsec_demo")),
        admin_token: SecretString::from(throwaway("demo-admin-token")),
    };
    let token_key = throwaway("demo-token-key-0123456789");
    use secrecy::ExposeSecret;
    let overrides: Vec<(String, String)> = [
        ("storage.url", storage_url.clone()),
        ("relay.listen", "127.0.0.1:0".to_owned()),
        ("relay.inbound_client_id", credentials.client_id.clone()),
        (
            "relay.inbound_client_secret",
            credentials.client_secret.expose_secret().to_owned(),
        ),
        ("relay.inbound_token_key", token_key),
        ("relay.admin_token", credentials.admin_token.expose_secret().to_owned()),
        (
            "digital_river.signing_secrets",
            credentials.signing_secret.expose_secret().to_owned(),
        ),
        ("salesforce.environment", "sandbox".to_owned()),
        ("salesforce.my_domain_url", org.url.clone()),
        (
            "salesforce.token_url",
            format!("{}{}", org.url, crate::salesforce::TOKEN_PATH),
        ),
        ("salesforce.client_id", "3MVG9demo".to_owned()),
        ("salesforce.client_secret", throwaway("demo-consumer-secret")),
        ("salesforce.username", "integration@demo.example".to_owned()),
        ("salesforce.password", throwaway("demo-password")),
        ("salesforce.max_in_flight", "4".to_owned()),
        ("delivery.retry_schedule", "0s,300ms,1s,2s,5s".to_owned()),
        ("delivery.poll_interval_ms", "50".to_owned()),
        ("delivery.breaker_threshold", "100".to_owned()),
        ("delivery.max_attempts_on_400", ATTEMPTS_ON_400.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let options = LoadOptions {
        config_dir: Some(dir.path().to_owned()),
        overrides,
        ignore_environment: true,
        ..LoadOptions::default()
    };
    let settings = crate::settings::load(&options, Purpose::Relay)?;
    let app = Application::build(settings).await.map_err(OpsError::Other)?;
    let relay_url = format!("http://127.0.0.1:{}", app.port());
    let store = app.state().store.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    say(format!(
        "relay       {relay_url}   (OAuth transport and signatures on; store {storage_url})"
    ));
    say(format!(
        "Salesforce  {}   (a local stand-in org that fails some first attempts and refuses order {REFUSED_ORDER})",
        org.url
    ));
    say(String::new());

    let sender = DrSender::new(
        &relay_url,
        SenderAuth::OAuth {
            client_id: credentials.client_id.clone(),
            client_secret: credentials.client_secret.clone(),
            user: None,
        },
        Some(credentials.signing_secret.clone()),
    )?;
    let mut sent: Vec<(EventId, EventType)> = Vec::new();
    let refused = EventType::parse("order.accepted").expect("a supported type");
    let all = EventType::supported()
        .into_iter()
        .map(|t| (t, None))
        .chain([(refused, Some(REFUSED_ORDER))]);
    for (event_type, order) in all {
        let body = samples::fresh(&event_type, order)?;
        let envelope = crate::digital_river::Envelope::parse(&body).expect("samples parse");
        let answer = sender.send(&body).await?;
        if answer.status != 202 {
            return Err(OpsError::Refused(format!(
                "the relay answered {} to {event_type}: {}",
                answer.status, answer.body
            )));
        }
        say(line(
            &event_type,
            &envelope.id,
            "received from DR, stored, acknowledged (202)",
        ));
        sent.push((envelope.id, event_type));
    }

    let mut seen_attempts: HashMap<String, usize> = HashMap::new();
    let (mut delivered, mut dead) = (0, 0);
    let (mut attempts, mut retried) = (0, 0);
    let deadline = Instant::now() + DEADLINE;
    while delivered + dead < sent.len() {
        if Instant::now() > deadline {
            return Err(OpsError::Other(anyhow::anyhow!(
                "{delivered} of {} events delivered within {} s",
                sent.len(),
                DEADLINE.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        (delivered, dead) = (0, 0);
        for (id, event_type) in &sent {
            let Some((summary, recorded)) = store.get(id).await? else {
                continue;
            };
            let shown = seen_attempts.entry(id.to_string()).or_default();
            for (n, attempt) in recorded.iter().enumerate().skip(*shown) {
                let what = match (attempt.outcome.as_str(), attempt.status_code) {
                    ("delivered", status) => format!("attempt {}: delivered ({})", n + 1, status.unwrap_or(200)),
                    ("dead", status) => format!(
                        "attempt {}: refused ({}) → dead. See why on the status page or with `events show {id}`; \
                         `events replay {id}` sends it again (the stand-in accepts it then)",
                        n + 1,
                        status.unwrap_or(400)
                    ),
                    (_, status) => {
                        retried += 1;
                        let said = attempt.error.as_deref().unwrap_or("failed");
                        format!(
                            "attempt {}: {} → will retry",
                            n + 1,
                            status
                                .map(|s| format!("{s}, {said}"))
                                .unwrap_or_else(|| said.to_owned())
                        )
                    }
                };
                attempts += 1;
                say(line(event_type, id, &what));
            }
            *shown = recorded.len();
            match summary.status {
                EventStatus::Delivered => delivered += 1,
                EventStatus::Dead => dead += 1,
                _ => {}
            }
        }
    }
    let report = DemoReport {
        events: sent.len(),
        delivered,
        dead,
        attempts,
        retried,
        token_grants: org.grants() as u64,
        seconds: started.elapsed().as_secs_f64(),
        relay_url,
        salesforce_url: org.url.clone(),
    };
    say(String::new());
    say(format!(
        "{} of {} events delivered in {:.1} s: {} attempts ({} retried), {} Salesforce token grants; \
         {} dead, as planned: the stand-in org refused it as invalid data (400), as a real org would.",
        report.delivered,
        report.events,
        report.seconds,
        report.attempts,
        report.retried,
        report.token_grants,
        report.dead
    ));
    Ok(Demo {
        report,
        credentials,
        storage_url,
        stop,
        relay,
        _org: org,
        _dir: dir,
    })
}

/// One line of the live account, with the event's full id (what `events show` takes).
fn line(event_type: &EventType, id: &EventId, what: &str) -> String {
    format!("{:<26} {}  {what}", event_type.as_str(), id.as_str())
}
