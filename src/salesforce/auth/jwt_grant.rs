//! The JWT bearer grant: an assertion signed with each configured key in turn (the one that
//! worked last first), posted as `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`.
//! Salesforce's answers are the other grants' (token JSON, or an OAuth error), and are
//! classified the same way.

use oauth2::RequestTokenError;
use oauth2::basic::BasicErrorResponse;

use super::AccessToken;
use super::{AuthError, GrantFailure, SalesforceAuth, SalesforceTokenResponse, token_from};
use crate::salesforce::jwt::{JWT_BEARER_GRANT, KeyRing, assertion};
use crate::support::clock::unix_secs;
use crate::support::text::{error_chain, excerpt};

impl SalesforceAuth {
    pub(super) async fn jwt_grant(
        &self,
        username: &str,
        audience: &str,
        keys: &KeyRing,
        generation: u64,
    ) -> Result<AccessToken, GrantFailure> {
        let order = keys.order();
        let mut refused: Option<String> = None;
        for (position, index) in order.iter().copied().enumerate() {
            let key = &keys.keys[index];
            let signed = assertion(key, &self.credentials.client_id, username, audience, unix_secs()).map_err(|e| {
                GrantFailure::Rejected(self.rejected(
                    "unusable key".into(),
                    format!("{} {e}", key.name),
                    format!("Fix {} (make a key with `dr-sf-bridge salesforce keygen`).", key.name),
                ))
            })?;
            match self.post_assertion(&signed, generation).await {
                Ok(token) => {
                    keys.signed_in_with(index);
                    self.note_key(&key.name);
                    match &refused {
                        Some(first) => tracing::warn!(
                            key = %key.name,
                            refused_key = %first,
                            "signed in to Salesforce with {}: {first} was refused. Once every relay uses the new key, remove the old certificate from the connected app and make {} the private_key",
                            key.name,
                            key.name
                        ),
                        None => tracing::info!(key = %key.name, "signed in to Salesforce with the JWT bearer flow"),
                    }
                    return Ok(token);
                }
                Err(GrantFailure::Rejected(error)) if position + 1 < order.len() => {
                    tracing::info!(key = %key.name, error = %error, "Salesforce refused the assertion signed with {}; trying the other key", key.name);
                    refused = Some(key.name.clone());
                }
                Err(failure) => return Err(failure),
            }
        }
        Err(GrantFailure::Rejected(self.rejected(
            "no key".into(),
            "no private key is configured".into(),
            "Set salesforce.private_key_file.".into(),
        )))
    }

    async fn post_assertion(&self, signed: &str, generation: u64) -> Result<AccessToken, GrantFailure> {
        let response = self
            .http
            .post(self.token_url().base())
            .form(&[("grant_type", JWT_BEARER_GRANT), ("assertion", signed)])
            .send()
            .await
            .map_err(|e| GrantFailure::Transient(error_chain(&e)))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| GrantFailure::Transient(error_chain(&e)))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice::<SalesforceTokenResponse>(&body)
                .map(|parsed| token_from(&parsed, generation))
                .map_err(|_| {
                    GrantFailure::Transient(format!(
                        "HTTP {status}, unreadable answer: {}",
                        excerpt(&String::from_utf8_lossy(&body))
                    ))
                });
        }
        let error = match serde_json::from_slice::<BasicErrorResponse>(&body) {
            Ok(parsed) => RequestTokenError::ServerResponse(parsed),
            Err(_) => RequestTokenError::Other(format!(
                "unreadable answer: {}",
                excerpt(&String::from_utf8_lossy(&body))
            )),
        };
        Err(self.classify(error, Some(status)))
    }

    fn rejected(&self, error: String, description: String, hint: String) -> AuthError {
        AuthError::Rejected {
            grant: self.grant_type().as_str(),
            token_url: self.token_url().base().to_owned(),
            error,
            description,
            hint,
        }
    }

    fn note_key(&self, name: &str) {
        *self.signed_in_key.lock().expect("not poisoned") = Some(name.to_owned());
        for (gauge_key, gauge) in &self.key_gauges {
            gauge.set(i64::from(gauge_key == name));
        }
    }
}
