//! Sends events to a relay the way Digital River does: a token from the relay's `/oauth2/token`
//! (or Basic credentials), a `DigitalRiver-Signature` over the exact body, JSON.

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::OpsError;
use crate::digital_river::signature::{HEADER as SIGNATURE_HEADER, sign};
use crate::http::paths;
use crate::support::clock::unix_secs;
use crate::support::http::client_builder;
use crate::support::text::{error_chain, excerpt};

/// How the sender proves it is DR.
#[derive(Clone)]
pub enum SenderAuth {
    /// DR's OAuth transport: client credentials (and a user with the password grant).
    OAuth {
        client_id: String,
        client_secret: SecretString,
        user: Option<(String, SecretString)>,
    },
    /// Basic credentials.
    Basic {
        user: String,
        password: SecretString,
    },
    None,
}

/// The relay's answer to one event.
#[derive(Debug, Clone)]
pub struct Sent {
    pub status: u16,
    pub body: String,
}

pub struct DrSender {
    http: reqwest::Client,
    base_url: String,
    auth: SenderAuth,
    signing_secret: Option<SecretString>,
    token: Mutex<Option<SecretString>>,
}

impl DrSender {
    pub fn new(base_url: &str, auth: SenderAuth, signing_secret: Option<SecretString>) -> Result<Self, OpsError> {
        let http = client_builder(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| OpsError::Other(e.into()))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            auth,
            signing_secret,
            token: Mutex::new(None),
        })
    }

    /// A token from the relay's token endpoint, fetched once.
    async fn token(
        &self,
        client_id: &str,
        secret: &SecretString,
        user: &Option<(String, SecretString)>,
    ) -> Result<SecretString, OpsError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            return Ok(token.clone());
        }
        let mut form = vec![
            ("client_id", client_id.to_owned()),
            ("client_secret", secret.expose_secret().to_owned()),
        ];
        match user {
            Some((name, password)) => {
                form.push(("grant_type", "password".to_owned()));
                form.push(("username", name.clone()));
                form.push(("password", password.expose_secret().to_owned()));
            }
            None => form.push(("grant_type", "client_credentials".to_owned())),
        }
        let url = format!("{}{}", self.base_url, paths::TOKEN);
        let response = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|e| OpsError::Unreachable(format!("{url}: {}", error_chain(&e))))?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if status != 200 {
            return Err(OpsError::Refused(format!(
                "the relay's token endpoint answered {status} {}: {} (check relay.inbound_client_id and DRSF__RELAY__INBOUND_CLIENT_SECRET)",
                body["error"].as_str().unwrap_or("error"),
                body["error_description"].as_str().unwrap_or_default()
            )));
        }
        let token = SecretString::from(body["access_token"].as_str().unwrap_or_default().to_owned());
        *cached = Some(token.clone());
        Ok(token)
    }

    /// Posts one event body; any answer is returned, a connection failure is an error.
    pub async fn send(&self, body: &[u8]) -> Result<Sent, OpsError> {
        let url = format!("{}{}", self.base_url, paths::WEBHOOK);
        let mut request = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if let Some(secret) = &self.signing_secret {
            request = request.header(SIGNATURE_HEADER, sign(secret.expose_secret(), unix_secs() as i64, body));
        }
        request = match &self.auth {
            SenderAuth::OAuth {
                client_id,
                client_secret,
                user,
            } => request.bearer_auth(self.token(client_id, client_secret, user).await?.expose_secret()),
            SenderAuth::Basic { user, password } => request.basic_auth(user, Some(password.expose_secret())),
            SenderAuth::None => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| OpsError::Unreachable(format!("{url}: {}", error_chain(&e))))?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Ok(Sent {
            status,
            body: excerpt(&body),
        })
    }
}
