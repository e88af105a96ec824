//! `check`: the admin's doctor, run before going live and when something seems wrong.
//!
//! Each line is one fact with ✓ or ✗ and, when ✗, the one thing to do about it. It asks the real
//! services (DR's API, Salesforce's token endpoint, the Apex resource) the same way the relay will,
//! so a green run means the relay's calls will be accepted.

use serde::Serialize;

mod salesforce;

use super::register::managed_address;
use super::webhooks;
use crate::domain::Mode;
use crate::settings::{self, LoadOptions, Purpose, RegisterTarget, Settings};
use crate::store::facts::WebhookSeen;
use crate::store::{self, Store};
use salesforce::check_salesforce;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    Warn,
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckLine {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    /// The configuration itself was invalid (exit code 2).
    #[serde(rename = "configInvalid")]
    pub config_invalid: bool,
    pub checks: Vec<CheckLine>,
}

fn line(name: &'static str, status: Status, detail: impl Into<String>, fix: Option<String>) -> CheckLine {
    CheckLine {
        name,
        status,
        detail: detail.into(),
        fix,
    }
}

/// Runs every check; the report says what passed.
pub async fn check(options: &LoadOptions) -> CheckReport {
    let mut checks = Vec::new();
    let settings = match settings::load(options, Purpose::Check) {
        Ok(settings) => settings,
        Err(problems) => {
            let detail = problems
                .0
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect::<Vec<_>>()
                .join("; ");
            checks.push(line(
                "configuration",
                Status::Fail,
                detail,
                Some("fix the keys named above (README: 'What the validation errors mean')".into()),
            ));
            for name in [
                "Digital River API key",
                "webhook",
                "Salesforce token",
                "Apex REST resource",
                "signing secret",
            ] {
                checks.push(line(
                    name,
                    Status::Skip,
                    "not checked: the configuration is invalid",
                    None,
                ));
            }
            return CheckReport {
                ok: false,
                config_invalid: true,
                checks,
            };
        }
    };
    checks.push(line("configuration", Status::Pass, "valid", None));
    checks.extend(mode_mismatch(&settings));
    let store = existing_store(&settings).await;
    for target in settings.salesforce.iter() {
        let mode = target.mode;
        let first = checks.len();
        check_digital_river(&settings, mode, &mut checks).await;
        if let (Some(store), Some(webhook)) = (&store, checks[first..].iter().find(|c| c.name == "webhook")) {
            remember_webhook(&**store, mode, webhook).await;
        }
        check_salesforce(target, &settings, &which(&settings, mode), &mut checks).await;
        let secrets = settings.digital_river.signing_secrets_for(mode).len();
        checks.push(if secrets == 0 {
            line(
                "signing secret",
                Status::Warn,
                format!(
                    "{}none configured: the relay cannot verify that events come from Digital River",
                    which(&settings, mode)
                ),
                Some(
                    "copy the webhook's signing secret from the DR Dashboard into DRSF__DIGITAL_RIVER__SIGNING_SECRETS (DRSF__DIGITAL_RIVER__LIVE__SIGNING_SECRETS for one mode's)"
                        .into(),
                ),
            )
        } else {
            line(
                "signing secret",
                Status::Pass,
                format!("{}{secrets} configured", which(&settings, mode)),
                None,
            )
        });
    }
    if let Some(store) = &store {
        for target in settings.salesforce.iter() {
            checks.extend(reconciliation(&settings, &**store, target.mode).await);
        }
    }
    for channel in &settings.notify.channels {
        checks.push(notify_channel(channel).await);
    }
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    CheckReport {
        ok,
        config_invalid: false,
        checks,
    }
}

/// The relay's store, when it exists, so that the status page can show what `check` saw of the
/// webhook; `check` works the same without one.
async fn existing_store(settings: &Settings) -> Option<std::sync::Arc<dyn Store>> {
    let open = store::open(&settings.storage, store::Role::Operations);
    match tokio::time::timeout(std::time::Duration::from_secs(5), open).await {
        Ok(Ok(store)) => Some(store),
        _ => None,
    }
}

/// How far the relay's sweeps of DR's Events API have come for `mode`, and what its watchdog last
/// saw of the webhook; nothing when DR posts straight to Salesforce (the relay does not reconcile).
async fn reconciliation(settings: &Settings, store: &dyn Store, mode: Mode) -> Option<CheckLine> {
    if settings.register.target != crate::settings::RegisterTarget::Relay || !settings.reconcile.enabled {
        return None;
    }
    let tag = which(settings, mode);
    let now = crate::support::clock::now_ms();
    let watched = match WebhookSeen::recall(store, mode).await.ok().flatten() {
        Some(WebhookSeen {
            state: Some(state),
            checked_at_ms,
            ..
        }) => format!(
            "; the relay saw DR's webhook {state} at {}",
            crate::support::clock::rfc3339(checked_at_ms)
        ),
        _ => String::new(),
    };
    let cursor = store
        .state(&crate::reconcile::cursor_key(mode))
        .await
        .ok()
        .flatten()
        .and_then(|c| c.parse::<i64>().ok());
    let r = &settings.reconcile;
    Some(match cursor {
        None => line(
            "reconciliation",
            Status::Warn,
            format!("{tag}the relay has not swept DR's Events API yet{watched}"),
            Some(
                "run the relay with this mode's DR API key; `events backfill --since 2d` fetches what came before"
                    .into(),
            ),
        ),
        Some(cursor) => {
            let behind = now - cursor;
            let expected = (r.settle + r.interval * 3).as_millis() as i64 + 300_000;
            let minutes = behind / 60_000;
            if behind <= expected {
                line(
                    "reconciliation",
                    Status::Pass,
                    format!("{tag}DR's events are reconciled up to {minutes} min ago{watched}"),
                    None,
                )
            } else {
                line(
                    "reconciliation",
                    Status::Fail,
                    format!(
                        "{tag}the last sweep reached {minutes} min ago: the relay is down or cannot list DR's Events API{watched}"
                    ),
                    Some(format!(
                        "see the relay's log; `dr-sf-bridge events backfill --since {}m` closes the gap",
                        minutes + 1
                    )),
                )
            }
        }
    })
}

async fn remember_webhook(store: &dyn Store, mode: Mode, line: &CheckLine) {
    if line.status == Status::Skip {
        return;
    }
    let seen = WebhookSeen {
        ok: line.status == Status::Pass,
        detail: line.detail.clone(),
        checked_at_ms: crate::support::clock::now_ms(),
        state: None,
    };
    if let Err(e) = seen.remember(store, mode).await {
        tracing::debug!(error = %e, "could not note the webhook check in the store");
    }
}

/// A DR key of one mode with no Salesforce org of that mode, or an org whose environment is not
/// its mode's: test orders would reach production, or live orders a sandbox.
fn mode_mismatch(settings: &Settings) -> Vec<CheckLine> {
    use secrecy::ExposeSecret;
    let mut lines = Vec::new();
    if let Some(key) = settings.digital_river.api_key.as_ref() {
        let key_mode = Mode::of_api_key(key.expose_secret());
        let first = settings.salesforce.primary();
        if settings.salesforce.for_mode(key_mode).is_none() {
            lines.push(line(
                "mode",
                Status::Warn,
                format!(
                    "the DR key is a {key_mode} key but the Salesforce {} takes {} events: the relay would keep every event as rejected_mode",
                    first.environment.as_str(),
                    first.mode
                ),
                Some(format!(
                    "use the {} key of this DR account with this org, or point this configuration at the {} org",
                    first.mode,
                    if key_mode == Mode::Test { "sandbox" } else { "production" }
                )),
            ));
        }
    }
    for target in settings.salesforce.iter() {
        if target.environment.mode() != target.mode {
            lines.push(line(
                "mode",
                Status::Warn,
                format!(
                    "{}: a Salesforce {} takes DR's {} events",
                    target.section,
                    target.environment.as_str(),
                    target.mode
                ),
                Some("pair the sandbox with test mode and production with live mode, unless this is deliberate".into()),
            ));
        }
    }
    lines
}

/// `[live] ` before a line's detail when there are two targets, so the admin knows which org.
fn which(settings: &Settings, mode: Mode) -> String {
    if settings.salesforce.by_mode_sections() {
        format!("[{mode}] ")
    } else {
        String::new()
    }
}

async fn check_digital_river(settings: &Settings, mode: Mode, checks: &mut Vec<CheckLine>) {
    let tag = which(settings, mode);
    let listed = match webhooks::client_for(settings, mode) {
        Ok(client) => client.list_webhooks().await.map_err(|e| {
            use crate::digital_river::DigitalRiverError as E;
            let fix = match &e {
                E::Unauthorized => {
                    "set DRSF__DIGITAL_RIVER__API_KEY to the secret key of this DR account and mode".to_owned()
                }
                E::Transport { url, .. } => format!(
                    "check the network path to {url} (DNS, proxy, firewall) and digital_river.api_base_url; \
                     the API key could not be tried"
                ),
                E::Server { .. } => "Digital River is failing: try again later (status.digitalriver.com)".to_owned(),
                E::Redirect { .. } => "check digital_river.api_base_url (https://api.digitalriver.com)".to_owned(),
                E::Rejected { .. } | E::Unexpected(_) => {
                    "check digital_river.api_key and digital_river.api_base_url".to_owned()
                }
            };
            (e.to_string(), fix)
        }),
        Err(e) => Err((
            e.to_string(),
            "set DRSF__DIGITAL_RIVER__API_KEY to the secret key of this DR account and mode".to_owned(),
        )),
    };
    let webhooks = match listed {
        Ok(webhooks) => {
            checks.push(line(
                "Digital River API key",
                Status::Pass,
                format!("{tag}accepted ({} webhooks listed)", webhooks.len()),
                None,
            ));
            webhooks
        }
        Err((e, fix)) => {
            checks.push(line(
                "Digital River API key",
                Status::Fail,
                format!("{tag}{e}"),
                Some(fix),
            ));
            checks.push(line(
                "webhook",
                Status::Skip,
                "not checked: the DR API is not usable",
                None,
            ));
            return;
        }
    };
    let target = settings.register.target;
    let address = match managed_address(settings, target, mode) {
        Ok(address) => address,
        Err(e) => {
            checks.push(line("webhook", Status::Fail, format!("{tag}{e}"), None));
            return;
        }
    };
    let register_fix = Some(format!(
        "run `dr-sf-bridge register --target {} --mode {mode}`",
        target.as_str()
    ));
    let Some(webhook) = webhooks.iter().find(|w| w.address == address) else {
        // The webhook `register` made for the other target: advising `register` here would make
        // a second one, and DR would post every event twice.
        let other = match target {
            RegisterTarget::Salesforce => RegisterTarget::Relay,
            RegisterTarget::Relay => RegisterTarget::Salesforce,
        };
        let other_address = managed_address(settings, other, mode).ok();
        if let Some(found) = webhooks.iter().find(|w| Some(&w.address) == other_address.as_ref()) {
            checks.push(line(
                "webhook",
                Status::Fail,
                format!(
                    "{tag}DR posts to {} (the webhook `register --target {}` manages, {}), but register.target = \"{}\"",
                    found.address,
                    other.as_str(),
                    found.id,
                    target.as_str()
                ),
                Some(format!(
                    "set register.target = \"{0}\" (DRSF__REGISTER__TARGET={0}) so that check and the relay know where \
                     DR posts; to move the webhook instead, `unregister --target {0}` first (README, \"Leaving the \
                     password flow\"), never a second `register`",
                    other.as_str()
                )),
            ));
            return;
        }
        checks.push(line(
            "webhook",
            Status::Fail,
            format!("{tag}no webhook for {address}"),
            register_fix,
        ));
        return;
    };
    let missing: Vec<&str> = settings
        .digital_river
        .event_types
        .iter()
        .map(|t| t.as_str())
        .filter(|t| !webhook.types.iter().any(|have| have == t))
        .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!("missing event types: {}", missing.join(", ")));
    }
    if webhook.enabled == Some(false) {
        problems.push("disabled (DR disables a webhook that keeps failing)".to_owned());
    }
    if webhook.transport_type.as_deref().is_some_and(|t| t != "OAUTH") {
        problems.push(format!(
            "transportType is {}, not OAUTH",
            webhook.transport_type.as_deref().unwrap_or_default()
        ));
    }
    checks.push(if problems.is_empty() {
        line(
            "webhook",
            Status::Pass,
            format!(
                "{tag}{} for {address} with all {} types",
                webhook.id,
                settings.digital_river.event_types.len()
            ),
            None,
        )
    } else {
        line(
            "webhook",
            Status::Fail,
            format!("{tag}{}: {}", webhook.id, problems.join("; ")),
            register_fix,
        )
    });
}

/// A notification channel: a webhook's address as configured (nothing is sent: `notify test`
/// does that), an SMTP server answering.
async fn notify_channel(channel: &crate::settings::notify::ChannelSettings) -> CheckLine {
    use crate::settings::notify::ChannelKind;
    match &channel.kind {
        ChannelKind::Webhook { url, format } => {
            let origin = crate::notify::channels::origin(url);
            line(
                "notify channel",
                Status::Pass,
                format!(
                    "{}: {} webhook to {origin} (`dr-sf-bridge notify test` sends a sample)",
                    channel.name,
                    format!("{format:?}").to_lowercase()
                ),
                None,
            )
        }
        ChannelKind::Email(email) => match crate::notify::channels::email_reachable(email).await {
            Ok(answer) => line(
                "notify channel",
                Status::Pass,
                format!("{}: {answer}", channel.name),
                None,
            ),
            Err(error) => line(
                "notify channel",
                Status::Fail,
                format!("{}: {error}", channel.name),
                Some(format!(
                    "check notify.channels.{0}.host, .port and .tls (starttls on 587, tls on 465), and \
                     notify.channels.{0}.username / DRSF__NOTIFY__CHANNELS__{1}__PASSWORD",
                    channel.name,
                    channel.name.to_ascii_uppercase().replace('-', "_")
                )),
            ),
        },
    }
}
