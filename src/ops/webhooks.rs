//! `webhooks list | show | delete`: the admin's view of the account's webhooks on DR.

use super::OpsError;
use crate::digital_river::{DigitalRiverClient, Webhook};
use crate::domain::Mode;
use crate::settings::Settings;

/// The DR API client the settings describe; every command that calls DR starts here.
pub fn client(settings: &Settings) -> Result<DigitalRiverClient, OpsError> {
    let key = match settings.digital_river.api_key() {
        Ok(key) => key,
        // Only per-mode keys: the first target's mode's.
        Err(missing) => settings
            .dr_key(settings.salesforce.primary().mode)
            .map_err(|_| missing)?,
    };
    Ok(DigitalRiverClient::new(
        settings.digital_river.api_options(),
        key.clone(),
    )?)
}

/// The DR API client of `mode`'s webhooks, with that mode's key.
pub fn client_for(settings: &Settings, mode: Mode) -> Result<DigitalRiverClient, OpsError> {
    Ok(DigitalRiverClient::new(
        settings.digital_river.api_options(),
        settings.dr_key(mode)?.clone(),
    )?)
}

pub async fn list(settings: &Settings) -> Result<Vec<Webhook>, OpsError> {
    Ok(client(settings)?.list_webhooks().await?)
}

pub async fn show(settings: &Settings, id: &str) -> Result<Webhook, OpsError> {
    Ok(client(settings)?.get_webhook(id).await?)
}

pub async fn delete(settings: &Settings, id: &str) -> Result<(), OpsError> {
    Ok(client(settings)?.delete_webhook(id).await?)
}
