//! `webhooks list | show | delete`: the admin's view of the account's webhooks on DR.

use super::OpsError;
use crate::digital_river::{DigitalRiverClient, Webhook};
use crate::domain::Mode;
use crate::settings::Settings;

/// The DR API client of the first Salesforce target's mode (the one org's, or the sandbox's);
/// every command that calls DR starts here or at [`client_for`].
pub fn client(settings: &Settings) -> Result<DigitalRiverClient, OpsError> {
    client_for(settings, settings.salesforce.primary().mode)
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
