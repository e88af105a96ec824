//! A client for DR's Webhooks API.
//!
//! DR's documentation and SDK disagree in places (a list answer as a bare array or as
//! `{"hasMore", "data"}`, 200 or 201 on create), so the client accepts both. It never follows a
//! redirect (the API key would go with it), retries what is worth retrying (429, 5xx, connection
//! errors; a POST only when it cannot have been applied) and turns DR's error body into a message
//! that names each parameter.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::domain::{EventType, ServiceUrl};
use crate::salesforce::GrantType;
use crate::support::http::{Backoff, Failure, client_builder, retry};
use crate::support::text::excerpt;

#[derive(Debug, thiserror::Error)]
pub enum DigitalRiverError {
    #[error(
        "Digital River refused the API key (401 unauthorized): check digital_river.api_key; \
         a test key (sk_test_...) works only with test-mode data and a live key only with live data"
    )]
    Unauthorized,
    #[error("Digital River rejected the request ({status} {kind}): {details}")]
    Rejected { status: u16, kind: String, details: String },
    #[error("Digital River failed with HTTP {status} after {attempts} attempt(s): {excerpt}")]
    Server {
        status: u16,
        attempts: u32,
        excerpt: String,
    },
    #[error("could not reach Digital River at {url} after {attempts} attempt(s)")]
    Transport {
        url: String,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "Digital River answered {status} with a redirect to {location:?}; redirects are not followed (check digital_river.api_base_url)"
    )]
    Redirect { status: u16, location: String },
    #[error("unexpected answer from Digital River: {0}")]
    Unexpected(String),
}

impl DigitalRiverError {
    /// DR understood the request and said no (as opposed to a network or server failure).
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::Unauthorized | Self::Rejected { .. })
    }
}

/// A webhook as DR returns it. Unknown fields are kept so that `show` prints everything.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub types: Vec<String>,
    pub api_version: Option<String>,
    pub enabled: Option<bool>,
    pub transport_type: Option<String>,
    pub oauth: Option<WebhookOAuth>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookOAuth {
    #[serde(rename = "tokenEndPoint")]
    pub token_end_point: Option<String>,
    #[serde(rename = "clientID")]
    pub client_id: Option<String>,
    #[serde(rename = "clientSecret")]
    pub client_secret: Option<SecretString>,
    #[serde(rename = "userName")]
    pub user_name: Option<String>,
    pub password: Option<SecretString>,
    #[serde(rename = "grantType")]
    pub grant_type: Option<String>,
}

impl Webhook {
    /// The webhook as JSON for display, with every secret replaced by `"***"`.
    pub fn to_redacted_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), json!(self.id));
        out.insert("address".into(), json!(self.address));
        out.insert("types".into(), json!(self.types));
        if let Some(v) = &self.api_version {
            out.insert("apiVersion".into(), json!(v));
        }
        if let Some(v) = self.enabled {
            out.insert("enabled".into(), json!(v));
        }
        if let Some(v) = &self.transport_type {
            out.insert("transportType".into(), json!(v));
        }
        if let Some(o) = &self.oauth {
            let mut oauth = Map::new();
            let plain = [
                ("tokenEndPoint", &o.token_end_point),
                ("clientID", &o.client_id),
                ("userName", &o.user_name),
                ("grantType", &o.grant_type),
            ];
            for (k, v) in plain {
                if let Some(v) = v {
                    oauth.insert(k.into(), json!(v));
                }
            }
            for (k, v) in [("clientSecret", &o.client_secret), ("password", &o.password)] {
                if v.is_some() {
                    oauth.insert(k.into(), json!("***"));
                }
            }
            out.insert("oauth".into(), Value::Object(oauth));
        }
        for (k, v) in &self.other {
            out.insert(k.clone(), redact_value(k, v));
        }
        Value::Object(out)
    }
}

/// Replaces values of secret-looking keys anywhere in a JSON value (DR's Basic-auth
/// `authentication.password`, signing secrets, ...).
fn redact_value(key: &str, value: &Value) -> Value {
    let lowered = key.to_ascii_lowercase();
    if ["password", "secret", "key", "token"]
        .iter()
        .any(|s| lowered.contains(s))
        && !value.is_null()
    {
        return json!("***");
    }
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), redact_value(k, v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(|v| redact_value(key, v)).collect()),
        other => other.clone(),
    }
}

/// Whether a request body shows secret values or `"***"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    Redacted,
    /// Only for the body that is sent to DR.
    Exposed,
}

/// The webhook `register` wants DR to have.
#[derive(Debug, Clone)]
pub struct WebhookSpec {
    pub address: String,
    pub types: Vec<EventType>,
    pub api_version: String,
    pub enabled: bool,
    pub oauth: WebhookSpecOAuth,
}

#[derive(Debug, Clone)]
pub struct WebhookSpecOAuth {
    pub token_end_point: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// User name and password, with the password grant only.
    pub user: Option<(String, SecretString)>,
    pub grant_type: GrantType,
}

impl WebhookSpec {
    /// The create/update body of DR's Webhooks API.
    pub fn to_json(&self, secrets: Secrets) -> Value {
        let reveal = |s: &SecretString| match secrets {
            Secrets::Redacted => "***".to_owned(),
            Secrets::Exposed => s.expose_secret().to_owned(),
        };
        let mut oauth = Map::new();
        oauth.insert("tokenEndPoint".into(), json!(self.oauth.token_end_point));
        oauth.insert("clientID".into(), json!(self.oauth.client_id));
        oauth.insert("clientSecret".into(), json!(reveal(&self.oauth.client_secret)));
        if let Some((user, password)) = &self.oauth.user {
            oauth.insert("userName".into(), json!(user));
            oauth.insert("password".into(), json!(reveal(password)));
        }
        oauth.insert("grantType".into(), json!(self.oauth.grant_type.as_str()));
        json!({
            "types": self.types,
            "apiVersion": self.api_version,
            "enabled": self.enabled,
            "address": self.address,
            "transportType": "OAUTH",
            "oauth": oauth,
        })
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WebhookList {
    Bare(Vec<Webhook>),
    Paged {
        data: Vec<Webhook>,
        #[serde(rename = "hasMore", default)]
        has_more: bool,
    },
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    code: Option<String>,
    parameter: Option<String>,
    message: Option<String>,
}

/// How the client reaches DR's API.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Base URL of DR's API (`https://api.digitalriver.com`).
    pub base_url: ServiceUrl,
    /// Timeout of one call.
    pub request_timeout: Duration,
    /// Retries after a 429, a 5xx or a connection error.
    pub retry: Backoff,
}

/// The Webhooks API client.
#[derive(Clone)]
pub struct DigitalRiverClient {
    http: reqwest::Client,
    base: ServiceUrl,
    api_key: SecretString,
    backoff: Backoff,
}

impl DigitalRiverClient {
    pub fn new(options: ApiOptions, api_key: SecretString) -> anyhow::Result<Self> {
        let http = client_builder(options.request_timeout).build()?;
        Ok(Self {
            http,
            base: options.base_url,
            api_key,
            backoff: options.retry,
        })
    }

    #[tracing::instrument(skip_all)]
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>, DigitalRiverError> {
        let mut all = Vec::new();
        let mut starting_after: Option<String> = None;
        // Paged answers are followed to the end; bounded so a misbehaving server cannot loop us.
        for _ in 0..100 {
            let path = match &starting_after {
                Some(id) => format!(
                    "/webhooks?limit=100&startingAfter={}",
                    url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
                ),
                None => "/webhooks?limit=100".to_owned(),
            };
            let value = self.send(Method::GET, &path, None).await?;
            match serde_json::from_value::<WebhookList>(value)
                .map_err(|e| DigitalRiverError::Unexpected(format!("webhook list: {e}")))?
            {
                WebhookList::Bare(items) => {
                    all.extend(items);
                    return Ok(all);
                }
                WebhookList::Paged { data, has_more } => {
                    let last = data.last().map(|w| w.id.clone());
                    all.extend(data);
                    match (has_more, last) {
                        (true, Some(last)) => starting_after = Some(last),
                        _ => return Ok(all),
                    }
                }
            }
        }
        Ok(all)
    }

    #[tracing::instrument(skip_all, fields(webhook_id = id))]
    pub async fn get_webhook(&self, id: &str) -> Result<Webhook, DigitalRiverError> {
        let value = self.send(Method::GET, &webhook_path(id), None).await?;
        decode_webhook(value)
    }

    #[tracing::instrument(skip_all)]
    pub async fn create_webhook(&self, spec: &WebhookSpec) -> Result<Webhook, DigitalRiverError> {
        let value = self
            .send(Method::POST, "/webhooks", Some(spec.to_json(Secrets::Exposed)))
            .await?;
        decode_webhook(value)
    }

    #[tracing::instrument(skip_all, fields(webhook_id = id))]
    pub async fn update_webhook(&self, id: &str, spec: &WebhookSpec) -> Result<Webhook, DigitalRiverError> {
        let value = self
            .send(Method::PATCH, &webhook_path(id), Some(spec.to_json(Secrets::Exposed)))
            .await?;
        decode_webhook(value)
    }

    /// Enables a webhook DR disabled (`PATCH {"enabled": true}`), nothing else changed.
    #[tracing::instrument(skip_all, fields(webhook_id = id))]
    pub async fn enable_webhook(&self, id: &str) -> Result<Webhook, DigitalRiverError> {
        let value = self
            .send(Method::PATCH, &webhook_path(id), Some(json!({"enabled": true})))
            .await?;
        decode_webhook(value)
    }

    #[tracing::instrument(skip_all, fields(webhook_id = id))]
    pub async fn delete_webhook(&self, id: &str) -> Result<(), DigitalRiverError> {
        self.send(Method::DELETE, &webhook_path(id), None).await.map(|_| ())
    }

    /// Sends one call with retries; answers the JSON body (`null` when empty).
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, DigitalRiverError> {
        let bytes = self.send_raw(&method, path, body).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| DigitalRiverError::Unexpected(format!("{method} {path}: body is not JSON ({e})")))
    }

    /// A GET with retries, answering the body's bytes as DR sent them.
    pub(super) async fn get_raw(&self, path: &str) -> Result<bytes::Bytes, DigitalRiverError> {
        self.send_raw(&Method::GET, path, None).await
    }

    async fn send_raw(
        &self,
        method: &Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<bytes::Bytes, DigitalRiverError> {
        let url = format!("{}{}", self.base.base(), path);
        let (url, body) = (&url, &body);
        retry(self.backoff, "a Digital River API call", |attempt| async move {
            self.send_once(method, url, body.as_ref(), attempt).await
        })
        .await
    }

    /// One call; a failure says whether it is safe and worth retrying.
    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        body: Option<&Value>,
        attempt: u32,
    ) -> Result<bytes::Bytes, Failure<DigitalRiverError>> {
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(self.api_key.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        let transport = |source| DigitalRiverError::Transport {
            url: url.to_owned(),
            attempts: attempt,
            source,
        };
        let response = match request.send().await {
            Ok(response) => response,
            // A POST that may have reached DR is not repeated: it could create a second webhook.
            Err(e) if *method != Method::POST || e.is_connect() => return Err(Failure::transient(transport(e))),
            Err(e) => return Err(Failure::Permanent(transport(e))),
        };
        let status = response.status();
        if status.is_success() {
            return response.bytes().await.map_err(|e| Failure::Permanent(transport(e)));
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            return Err(Failure::Permanent(DigitalRiverError::Redirect {
                status: status.as_u16(),
                location,
            }));
        }
        let transient = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        let safe = *method != Method::POST
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::SERVICE_UNAVAILABLE;
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(60)));
        let text = response.text().await.unwrap_or_default();
        let error = classify_failure(status, &text, attempt);
        Err(if transient && safe {
            Failure::Transient { error, retry_after }
        } else {
            Failure::Permanent(error)
        })
    }
}

fn webhook_path(id: &str) -> String {
    format!(
        "/webhooks/{}",
        url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

fn decode_webhook(value: Value) -> Result<Webhook, DigitalRiverError> {
    serde_json::from_value(value).map_err(|e| DigitalRiverError::Unexpected(format!("webhook: {e}")))
}

fn classify_failure(status: StatusCode, body: &str, attempts: u32) -> DigitalRiverError {
    if status == StatusCode::UNAUTHORIZED {
        return DigitalRiverError::Unauthorized;
    }
    let parsed = serde_json::from_str::<ErrorBody>(body).ok();
    if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
        let kind = parsed
            .as_ref()
            .and_then(|b| b.kind.clone())
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_ascii_lowercase());
        let details = match parsed {
            Some(b) if !b.errors.is_empty() => b
                .errors
                .iter()
                .map(|e| {
                    let message = e.message.as_deref().unwrap_or("(no message)");
                    let code = e.code.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default();
                    match &e.parameter {
                        Some(p) => format!("parameter `{p}`: {message}{code}"),
                        None => format!("{message}{code}"),
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => excerpt(body),
        };
        return DigitalRiverError::Rejected {
            status: status.as_u16(),
            kind,
            details,
        };
    }
    DigitalRiverError::Server {
        status: status.as_u16(),
        attempts,
        excerpt: excerpt(body),
    }
}

#[cfg(test)]
mod tests;
