//! The facts kept in the store's `relay_state` table that more than one part reads: what `check`
//! or the relay's watchdog last saw of the DR webhook, and what the sweep of the DR package's
//! failure records last found, shown on the status page.

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

/// The key of the last Salesforce-side sweep of `mode`'s org.
pub fn salesforce_sweep_key(mode: Mode) -> String {
    format!("confirm.last.{mode}")
}

/// The most failure records of unknown events kept for the status page.
pub const UNKNOWN_KEPT: usize = 50;

/// What the last sweep of an org's DR failure records found (shown on the status page).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SalesforceSweep {
    pub swept_at_ms: i64,
    /// Why the last sweep could not read the records (with the fix); `None` when it could.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Records of events this relay does not hold, newest last ([`UNKNOWN_KEPT`] at most).
    #[serde(default)]
    pub unknown: Vec<UnknownFailure>,
}

/// A failure record in the org whose event the store does not hold: DR posted it straight to the
/// org, or before the relay existed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnknownFailure {
    pub record_id: String,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub reason: String,
    pub created_ms: i64,
    pub processed: bool,
}

impl SalesforceSweep {
    pub async fn remember(&self, store: &dyn Store, mode: Mode) -> Result<(), StoreError> {
        let value = serde_json::to_string(self).expect("plain fields serialize");
        store
            .set_state(&salesforce_sweep_key(mode), Some(value), self.swept_at_ms)
            .await
    }

    pub async fn recall(store: &dyn Store, mode: Mode) -> Result<Option<Self>, StoreError> {
        Ok(store
            .state(&salesforce_sweep_key(mode))
            .await?
            .and_then(|raw| serde_json::from_str(&raw).ok()))
    }

    /// Adds (or updates) a record of an unknown event, keeping the newest.
    pub fn note_unknown(&mut self, failure: UnknownFailure) {
        self.unknown.retain(|known| known.record_id != failure.record_id);
        self.unknown.push(failure);
        if self.unknown.len() > UNKNOWN_KEPT {
            let extra = self.unknown.len() - UNKNOWN_KEPT;
            self.unknown.drain(..extra);
        }
    }
}
