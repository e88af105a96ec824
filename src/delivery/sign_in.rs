//! A refused Salesforce sign-in, remembered across restarts.
//!
//! Salesforce locks an integration user out after repeated failed sign-ins. The token cache
//! already waits `salesforce.token_failure_cooldown_secs` before trying refused credentials again,
//! but a relay that crash-loops (or is restarted by an impatient operator) would forget and try at
//! every start. So the refusal is written to the store with a fingerprint of the credentials, and
//! read back at start: the same credentials within the cool-down are not tried; changed
//! credentials (the admin fixed the password) are tried at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};

use crate::domain::Mode;
use crate::metrics::Metrics;
use crate::salesforce::{AuthError, DeliveryOutcome, TokenCache};
use crate::store::Store;
use crate::support::clock::Clock;

/// The store key of a refusal remembered before targets had modes; still honoured at start (the
/// fingerprint says whether it concerns these credentials).
const LEGACY_STATE_KEY: &str = "salesforce.sign_in_refused";

/// The store key of the remembered refusal of one target.
pub fn state_key(mode: Mode) -> String {
    format!("{LEGACY_STATE_KEY}.{mode}")
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Refusal {
    fingerprint: String,
    refused_at_ms: i64,
    grant: String,
    token_url: String,
    error: String,
    description: String,
    hint: String,
}

pub struct SignInMemory {
    store: Arc<dyn Store>,
    tokens: Arc<TokenCache>,
    /// 1 while this target's sign-in is refused.
    refused: Gauge,
    /// The target's DR mode: names the refusal's record, and a sign-in fixed here makes only this
    /// org's waiting events due.
    mode: Mode,
    fingerprint: String,
    /// Whether the store holds a refusal (so a success clears it once, not on every delivery).
    recorded: AtomicBool,
    /// Set at start when the store holds a refusal that no longer stands (the credentials changed
    /// or the cool-down passed): the worker signs in before its first claim and, if Salesforce
    /// accepts, makes the events the refusal held back due at once ([`Self::sign_in_again`]).
    recheck: AtomicBool,
    clock: Clock,
}

impl SignInMemory {
    pub fn new(store: Arc<dyn Store>, tokens: Arc<TokenCache>, metrics: &Metrics, mode: Mode, clock: Clock) -> Self {
        let fingerprint = tokens.auth().fingerprint();
        Self {
            store,
            tokens,
            refused: metrics.for_target(mode).sign_in_refused,
            mode,
            fingerprint,
            recorded: AtomicBool::new(false),
            recheck: AtomicBool::new(false),
            clock,
        }
    }

    /// At start: a refusal of these same credentials within the cool-down is honoured.
    pub async fn restore(&self) {
        let raw = match self.store.state(&state_key(self.mode)).await {
            Ok(Some(raw)) => raw,
            _ => match self.store.state(LEGACY_STATE_KEY).await {
                Ok(Some(raw)) => raw,
                _ => return,
            },
        };
        self.recorded.store(true, Ordering::Relaxed);
        let Ok(refusal) = serde_json::from_str::<Refusal>(&raw) else {
            return;
        };
        if refusal.fingerprint != self.fingerprint {
            tracing::info!("the Salesforce credentials changed since the last refused sign-in: signing in again");
            self.recheck.store(true, Ordering::Relaxed);
            return;
        }
        let age = Duration::from_millis((self.clock.now_ms() - refusal.refused_at_ms).max(0) as u64);
        let cooldown = self.tokens.rejection_cooldown();
        if age >= cooldown {
            self.recheck.store(true, Ordering::Relaxed);
            return;
        }
        let grant = if refusal.grant == "client_credentials" {
            "client_credentials"
        } else {
            "password"
        };
        let error = AuthError::Rejected {
            grant,
            token_url: refusal.token_url,
            error: refusal.error,
            description: refusal.description,
            hint: refusal.hint,
        };
        tracing::error!(
            error = %error,
            retry_in_secs = (cooldown - age).as_secs(),
            "Salesforce refused these credentials before the restart: not signing in again before the cool-down; fix the credentials"
        );
        self.refused.set(1);
        self.tokens.remember_rejection(error, age).await;
    }

    /// Whether the worker must [`Self::sign_in_again`] before it claims (once after a start).
    pub fn take_recheck(&self) -> bool {
        self.recheck.swap(false, Ordering::Relaxed)
    }

    /// Signs in with the credentials a remembered refusal no longer holds back; if Salesforce
    /// accepts, forgets the refusal and makes this org's waiting events due now: they were
    /// scheduled for the end of the cool-down, which the fix made pointless. The other org's
    /// events (a sandbox and production in one store) keep their own schedule. A refusal again is
    /// remembered as any other.
    pub async fn sign_in_again(&self) {
        if let Err(error) = self.tokens.get().await {
            tracing::warn!(%error, "Salesforce still refuses the sign-in after the restart");
            self.remember_refusal().await;
            return;
        }
        self.forget_refusal().await;
        // Every event of this mode that failed, whenever: the ones the refusal held back, and any
        // older failure of this org, due now that it lets the relay in.
        match self
            .store
            .retry_failed_since(self.mode, i64::MIN, self.clock.now_ms())
            .await
        {
            Ok(due) => tracing::info!(
                due,
                "Salesforce accepted the sign-in it refused before the restart: the waiting events are due now"
            ),
            Err(e) => tracing::warn!(error = %e, "signed in again, but could not make the waiting events due now"),
        }
    }

    /// After each attempt: remember a refusal, forget it after a success.
    pub async fn after_attempt(&self, outcome: &DeliveryOutcome) {
        match outcome {
            DeliveryOutcome::AuthRejected { .. } => self.remember_refusal().await,
            DeliveryOutcome::Delivered
            | DeliveryOutcome::RetryLimited
            | DeliveryOutcome::Dead
            | DeliveryOutcome::Congested
            | DeliveryOutcome::DailyLimitReached { .. } => self.forget_refusal().await,
            DeliveryOutcome::Retry { .. } => {}
        }
    }

    /// Writes the token cache's current refusal to the store, with these credentials' fingerprint.
    async fn remember_refusal(&self) {
        let Some((
            AuthError::Rejected {
                grant,
                token_url,
                error,
                description,
                hint,
            },
            age,
        )) = self.tokens.current_rejection().await
        else {
            return;
        };
        self.refused.set(1);
        let refusal = Refusal {
            fingerprint: self.fingerprint.clone(),
            refused_at_ms: self.clock.now_ms() - age.as_millis() as i64,
            grant: grant.to_owned(),
            token_url,
            error,
            description,
            hint,
        };
        let value = serde_json::to_string(&refusal).expect("plain fields serialize");
        match self
            .store
            .set_state(&state_key(self.mode), Some(value), self.clock.now_ms())
            .await
        {
            Ok(()) => self.recorded.store(true, Ordering::Relaxed),
            Err(e) => tracing::warn!(error = %e, "could not remember the refused sign-in"),
        }
    }

    /// Salesforce accepted the sign-in: clears the remembered refusal (once, not per delivery).
    async fn forget_refusal(&self) {
        self.refused.set(0);
        if self.recorded.swap(false, Ordering::Relaxed)
            && let Err(e) = self
                .store
                .set_state(&state_key(self.mode), None, self.clock.now_ms())
                .await
        {
            tracing::warn!(error = %e, "could not forget the refused sign-in");
            self.recorded.store(true, Ordering::Relaxed);
        }
    }
}
