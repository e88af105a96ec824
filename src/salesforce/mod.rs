//! Everything that speaks Salesforce: sign-in ([`auth`]: grants and the shared token cache) and
//! delivery to the DR package's Apex REST resource ([`client`]).

pub mod auth;
pub mod client;

pub use auth::{AuthError, SalesforceAuth, TokenCache};
pub use client::{ApexClient, ApiUsage, DeliveryAttempt, DeliveryOutcome};

use std::sync::Arc;

use crate::settings::{ConfigProblems, Settings};

/// The token cache and Apex client the settings describe.
pub fn apex_client(settings: &Settings) -> Result<ApexClient, ConfigProblems> {
    let sf = &settings.salesforce;
    let credentials = sf.credentials()?;
    let auth = SalesforceAuth::new(credentials, sf.request_timeout)
        .map_err(|e| {
            ConfigProblems(vec![crate::settings::Problem {
                key: "salesforce.token_url".into(),
                message: e.to_string(),
            }])
        })?
        .with_retries(sf.token_retries, sf.token_retry_base_delay);
    let tokens = Arc::new(TokenCache::new(auth, sf.token_max_age, sf.token_failure_cooldown));
    ApexClient::new(
        sf.webhook_url()?,
        tokens,
        sf.request_timeout,
        settings.delivery.rate_limit_min_delay,
    )
    .map_err(|e| {
        ConfigProblems(vec![crate::settings::Problem {
            key: "salesforce".into(),
            message: e.to_string(),
        }])
    })
}
