//! The facts kept in the store's `relay_state` table that more than one part reads: what `check`
//! or the relay's watchdog last saw of the DR webhook, shown on the status page.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::domain::Mode;

/// The key of the webhook check of `mode`'s DR account.
pub fn webhook_seen_key(mode: Mode) -> String {
    format!("check.webhook.{mode}")
}

/// The webhook as `check` last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSeen {
    /// The webhook exists with every event type, enabled, on the OAuth transport.
    pub ok: bool,
    /// `check`'s line, as it printed it.
    pub detail: String,
    pub checked_at_ms: i64,
    /// The relay's watchdog's finding (`ok`, `disabled`, `missing`, ...); `None` from `check`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl WebhookSeen {
    pub async fn remember(&self, store: &dyn Store, mode: Mode) -> Result<(), StoreError> {
        let value = serde_json::to_string(self).expect("plain fields serialize");
        store
            .set_state(&webhook_seen_key(mode), Some(value), self.checked_at_ms)
            .await
    }

    /// What `check` last saw for `mode`, if it ran against this store (unreadable: never ran).
    pub async fn recall(store: &dyn Store, mode: Mode) -> Result<Option<Self>, StoreError> {
        Ok(store
            .state(&webhook_seen_key(mode))
            .await?
            .and_then(|raw| serde_json::from_str(&raw).ok()))
    }
}
