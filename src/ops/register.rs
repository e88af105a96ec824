//! `register` and `unregister`: setup step 11 as plan → diff → apply.
//!
//! Register must be safe to run from a bootstrap script again and again, so it never creates a
//! second webhook for an address: it lists the account's webhooks, matches on `address`, and
//! writes only when something differs, reporting each differing field (secret values never
//! shown). DR's answers may omit secret values; a secret that cannot be compared is not treated as
//! a difference — `--force` re-sends everything.
//!
//! DR keeps each mode's webhooks apart, each managed with that mode's key. `--mode` picks which
//! modes' webhooks to manage (default: every mode a Salesforce target takes), and a mode no target
//! takes is refused: its events would be kept as `rejected_mode`, never delivered.

use std::collections::BTreeSet;

use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;

use super::{OpsError, webhooks};
use crate::digital_river::{Secrets, Webhook, WebhookSpec, WebhookSpecOAuth};
use crate::domain::Mode;
use crate::http::paths;
use crate::salesforce::SalesforceGrant;
use crate::settings::{ConfigProblems, RegisterTarget, SalesforceSettings, Settings};

/// Which DR modes' webhooks `register` manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeChoice {
    Test,
    Live,
    Both,
}

impl ModeChoice {
    /// The modes chosen; without a choice, every mode a Salesforce target takes.
    pub fn modes(choice: Option<Self>, settings: &Settings) -> Vec<Mode> {
        match choice {
            Some(Self::Test) => vec![Mode::Test],
            Some(Self::Live) => vec![Mode::Live],
            Some(Self::Both) => Mode::ALL.to_vec(),
            None => settings.salesforce.modes(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RegisterOptions {
    pub target: RegisterTarget,
    /// The DR mode whose webhook this is: its key manages it, its Salesforce target receives it.
    pub mode: Mode,
    pub dry_run: bool,
    /// PATCH even when nothing comparable differs (re-sends secrets DR does not show).
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    WouldCreate,
    WouldUpdate,
    Deleted,
    WouldDelete,
    NotFound,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::WouldCreate => "would create",
            Self::WouldUpdate => "would update",
            Self::Deleted => "deleted",
            Self::WouldDelete => "would delete",
            Self::NotFound => "not found",
        }
    }
}

/// One field that differs between DR's webhook and the wanted one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub field: String,
    /// `None` for secrets and absent values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl Change {
    pub fn describe(&self) -> String {
        match (&self.from, &self.to) {
            (None, None) => format!("{}: changed", self.field),
            (from, to) => format!(
                "{}: {} -> {}",
                self.field,
                from.as_deref().unwrap_or("(none)"),
                to.as_deref().unwrap_or("(none)")
            ),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RegisterReport {
    pub action: Action,
    pub target: &'static str,
    pub mode: Mode,
    pub address: String,
    #[serde(rename = "webhookId")]
    pub webhook_id: Option<String>,
    pub changes: Vec<Change>,
    pub notes: Vec<String>,
    /// The request body, secrets redacted: only in a dry run that would write.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// The Salesforce target that takes `mode`'s events, or why there is none.
fn salesforce_for(settings: &Settings, mode: Mode) -> Result<&SalesforceSettings, OpsError> {
    settings.salesforce.for_mode(mode).ok_or_else(|| {
        let configured: Vec<&str> = settings.salesforce.iter().map(|t| t.mode.as_str()).collect();
        OpsError::Config(ConfigProblems::single(
            &format!("salesforce.{mode}"),
            format!(
                "no Salesforce target takes {mode} events (configured: {}); add a [salesforce.{mode}] section, or leave the {mode} mode's webhook out",
                configured.join(", ")
            ),
        ))
    })
}

/// The webhook `register` manages for a target and mode, built from validated settings.
pub fn desired_webhook(settings: &Settings, target: RegisterTarget, mode: Mode) -> Result<WebhookSpec, OpsError> {
    let sf = salesforce_for(settings, mode)?;
    let oauth = match target {
        RegisterTarget::Salesforce => {
            let credentials = sf.credentials()?;
            let (SalesforceGrant::Password { .. } | SalesforceGrant::ClientCredentials, Some(client_secret)) =
                (&credentials.grant, credentials.client_secret.clone())
            else {
                return Err(OpsError::Config(ConfigProblems::single(
                    &sf.key("grant_type"),
                    "jwt_bearer cannot be set on DR's webhook: DR signs in to Salesforce only with password or \
                     client_credentials. Run the relay and `register --target relay` (the relay signs in with the JWT \
                     bearer flow), or use grant_type = \"client_credentials\" straight from DR",
                )));
            };
            WebhookSpecOAuth {
                token_end_point: credentials.token_url.base().to_owned(),
                client_id: credentials.client_id,
                client_secret,
                grant_type: credentials.grant.grant_type(),
                user: match credentials.grant {
                    SalesforceGrant::Password { username, password } => Some((username, password)),
                    SalesforceGrant::ClientCredentials | SalesforceGrant::JwtBearer { .. } => None,
                },
            }
        }
        RegisterTarget::Relay => {
            let inbound = settings.relay.inbound_oauth()?;
            WebhookSpecOAuth {
                token_end_point: inbound.public_url.join_path(paths::TOKEN),
                client_id: inbound.client_id,
                client_secret: inbound.client_secret,
                grant_type: inbound.grant_type,
                user: inbound.user,
            }
        }
    };
    Ok(WebhookSpec {
        address: managed_address(settings, target, mode)?,
        types: settings.digital_river.event_types.clone(),
        api_version: settings.digital_river.api_version.clone(),
        enabled: true,
        oauth,
    })
}

/// The address of the webhook `register` manages for a target and mode.
pub fn managed_address(settings: &Settings, target: RegisterTarget, mode: Mode) -> Result<String, OpsError> {
    Ok(match target {
        RegisterTarget::Salesforce => salesforce_for(settings, mode)?.webhook_url()?,
        RegisterTarget::Relay => settings.relay.inbound_oauth()?.public_url.join_path(paths::WEBHOOK),
    })
}

/// The fields of `existing` that differ from `wanted`, and notes on what could not be compared.
pub fn diff(existing: &Webhook, wanted: &WebhookSpec) -> (Vec<Change>, Vec<String>) {
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    let mut plain = |field: &str, from: Option<&str>, to: Option<&str>| {
        if from != to {
            changes.push(Change {
                field: field.to_owned(),
                from: from.map(String::from),
                to: to.map(String::from),
            });
        }
    };

    let have: BTreeSet<&str> = existing.types.iter().map(String::as_str).collect();
    let want: BTreeSet<&str> = wanted.types.iter().map(|t| t.as_str()).collect();
    if have != want {
        let added: Vec<&str> = want.difference(&have).copied().collect();
        let removed: Vec<&str> = have.difference(&want).copied().collect();
        let mut to = Vec::new();
        if !added.is_empty() {
            to.push(format!("add {}", added.join(", ")));
        }
        if !removed.is_empty() {
            to.push(format!("remove {}", removed.join(", ")));
        }
        let from = format!("{} types", have.len());
        plain(
            "types",
            Some(&from),
            Some(&format!("{} types ({})", want.len(), to.join("; "))),
        );
    }
    plain("apiVersion", existing.api_version.as_deref(), Some(&wanted.api_version));
    let enabled = existing.enabled.map(|e| e.to_string());
    plain("enabled", enabled.as_deref(), Some(&wanted.enabled.to_string()));
    plain("transportType", existing.transport_type.as_deref(), Some("OAUTH"));

    let oauth = existing.oauth.as_ref();
    let field = |f: fn(&crate::digital_river::api::WebhookOAuth) -> Option<&str>| oauth.and_then(f);
    plain(
        "oauth.tokenEndPoint",
        field(|o| o.token_end_point.as_deref()),
        Some(&wanted.oauth.token_end_point),
    );
    plain(
        "oauth.clientID",
        field(|o| o.client_id.as_deref()),
        Some(&wanted.oauth.client_id),
    );
    plain(
        "oauth.userName",
        field(|o| o.user_name.as_deref()),
        wanted.oauth.user.as_ref().map(|(u, _)| u.as_str()),
    );
    plain(
        "oauth.grantType",
        field(|o| o.grant_type.as_deref()),
        Some(wanted.oauth.grant_type.as_str()),
    );

    let secrets = [
        (
            "oauth.clientSecret",
            oauth.and_then(|o| o.client_secret.as_ref()),
            Some(&wanted.oauth.client_secret),
        ),
        (
            "oauth.password",
            oauth.and_then(|o| o.password.as_ref()),
            wanted.oauth.user.as_ref().map(|(_, p)| p),
        ),
    ];
    for (name, have, want) in secrets {
        match (have, want) {
            (Some(have), Some(want)) if have.expose_secret() != want.expose_secret() => {
                changes.push(Change {
                    field: name.to_owned(),
                    from: None,
                    to: None,
                });
            }
            (None, Some(_)) => notes.push(format!(
                "{name} is not shown by Digital River and was not compared (use --force to re-send it)"
            )),
            _ => {}
        }
    }
    (changes, notes)
}

/// Runs `register`: creates or updates the webhook for the target, or says it is unchanged.
#[tracing::instrument(skip_all, fields(target = options.target.as_str(), mode = options.mode.as_str(), dry_run = options.dry_run))]
pub async fn register(settings: &Settings, options: RegisterOptions) -> Result<RegisterReport, OpsError> {
    let wanted = desired_webhook(settings, options.target, options.mode)?;
    let client = webhooks::client_for(settings, options.mode)?;
    let webhooks = client.list_webhooks().await?;
    let mut matching = webhooks.iter().filter(|w| w.address == wanted.address);
    let existing = matching.next();
    let mut notes = Vec::new();
    if matching.next().is_some() {
        notes.push(format!(
            "more than one webhook has this address; managing the first ({})",
            existing.map(|w| w.id.as_str()).unwrap_or_default()
        ));
    }
    let mut report = RegisterReport {
        action: Action::Unchanged,
        target: options.target.as_str(),
        mode: options.mode,
        address: wanted.address.clone(),
        webhook_id: existing.map(|w| w.id.clone()),
        changes: Vec::new(),
        notes,
        body: None,
    };

    let Some(existing) = existing else {
        if options.dry_run {
            report.action = Action::WouldCreate;
            report.body = Some(wanted.to_json(Secrets::Redacted));
        } else {
            let created = client.create_webhook(&wanted).await?;
            tracing::info!(webhook_id = %created.id, "webhook created");
            report.action = Action::Created;
            report.webhook_id = Some(created.id);
        }
        return Ok(report);
    };

    let (changes, diff_notes) = diff(existing, &wanted);
    report.changes = changes;
    if options.force && report.changes.is_empty() {
        report.changes.push(Change {
            field: "(all, --force)".to_owned(),
            from: None,
            to: None,
        });
    } else {
        report.notes.extend(diff_notes);
    }
    if report.changes.is_empty() {
        return Ok(report);
    }
    if options.dry_run {
        report.action = Action::WouldUpdate;
        report.body = Some(wanted.to_json(Secrets::Redacted));
    } else {
        client.update_webhook(&existing.id, &wanted).await?;
        tracing::info!(webhook_id = %existing.id, changes = report.changes.len(), "webhook updated");
        report.action = Action::Updated;
    }
    Ok(report)
}

/// Runs `unregister`: deletes the webhook `register` manages for the target, if there is one.
#[tracing::instrument(skip_all, fields(target = options.target.as_str(), mode = options.mode.as_str(), dry_run = options.dry_run))]
pub async fn unregister(settings: &Settings, options: RegisterOptions) -> Result<RegisterReport, OpsError> {
    let address = managed_address(settings, options.target, options.mode)?;
    let client = webhooks::client_for(settings, options.mode)?;
    let webhooks = client.list_webhooks().await?;
    let existing = webhooks.iter().find(|w| w.address == address);
    let mut report = RegisterReport {
        action: Action::NotFound,
        target: options.target.as_str(),
        mode: options.mode,
        address,
        webhook_id: existing.map(|w| w.id.clone()),
        changes: Vec::new(),
        notes: Vec::new(),
        body: None,
    };
    if let Some(existing) = existing {
        if options.dry_run {
            report.action = Action::WouldDelete;
        } else {
            client.delete_webhook(&existing.id).await?;
            report.action = Action::Deleted;
        }
    }
    Ok(report)
}

/// `register` (or, with `remove`, `unregister`) for each mode `choice` names, in order.
pub async fn for_each_mode(
    settings: &Settings,
    choice: Option<ModeChoice>,
    options: RegisterOptions,
    remove: bool,
) -> Result<Vec<RegisterReport>, OpsError> {
    let mut reports = Vec::new();
    for mode in ModeChoice::modes(choice, settings) {
        let options = RegisterOptions { mode, ..options };
        reports.push(if remove {
            unregister(settings, options).await?
        } else {
            register(settings, options).await?
        });
    }
    Ok(reports)
}
