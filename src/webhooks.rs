//! `webhooks list | show | delete`: the admin's view of the account's webhooks on DR.

use serde_json::Value;

use crate::command::CommandError;
use crate::digital_river::{DigitalRiverClient, Webhook};
use crate::settings::Settings;

/// The DR API client the settings describe; every command that calls DR starts here.
pub fn client(settings: &Settings) -> Result<DigitalRiverClient, CommandError> {
    Ok(DigitalRiverClient::new(
        &settings.digital_river,
        settings.digital_river.api_key()?.clone(),
    )?)
}

pub async fn list(settings: &Settings) -> Result<Vec<Webhook>, CommandError> {
    Ok(client(settings)?.list_webhooks().await?)
}

pub async fn show(settings: &Settings, id: &str) -> Result<Webhook, CommandError> {
    Ok(client(settings)?.get_webhook(id).await?)
}

pub async fn delete(settings: &Settings, id: &str) -> Result<(), CommandError> {
    Ok(client(settings)?.delete_webhook(id).await?)
}

/// A table: ID, ENABLED, TRANSPORT, TYPES, ADDRESS.
pub fn render_table(webhooks: &[Webhook]) -> String {
    if webhooks.is_empty() {
        return "No webhooks.\n".to_owned();
    }
    let rows: Vec<[String; 5]> = webhooks
        .iter()
        .map(|w| {
            [
                w.id.clone(),
                w.enabled
                    .map(|e| if e { "yes" } else { "no" })
                    .unwrap_or("?")
                    .to_owned(),
                w.transport_type.clone().unwrap_or_else(|| "?".to_owned()),
                w.types.len().to_string(),
                w.address.clone(),
            ]
        })
        .collect();
    crate::table::render(&["ID", "ENABLED", "TRANSPORT", "TYPES", "ADDRESS"], &rows)
}

/// Key/value lines for one webhook, secrets redacted.
pub fn render_details(webhook: &Webhook) -> String {
    let json = webhook.to_redacted_json();
    let mut out = String::new();
    if let Value::Object(map) = json {
        for (key, value) in map {
            match value {
                Value::Array(items) if key == "types" => {
                    out.push_str(&format!("{key}:\n"));
                    for item in items {
                        out.push_str(&format!("  - {}\n", item.as_str().unwrap_or_default()));
                    }
                }
                Value::Object(inner) => {
                    out.push_str(&format!("{key}:\n"));
                    for (k, v) in inner {
                        out.push_str(&format!("  {k}: {}\n", plain(&v)));
                    }
                }
                other => out.push_str(&format!("{key}: {}\n", plain(&other))),
            }
        }
    }
    out
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
