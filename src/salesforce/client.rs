//! Delivery to the DR package's Apex REST resource, and the classification of what Salesforce
//! answers (DESIGN.md's table).
//!
//! The client posts the event's exact original bytes (DR's body, never re-serialized), follows no
//! redirect (the bearer token would go with it), and turns each answer into a
//! [`DeliveryOutcome`] the worker can act on without knowing HTTP. Salesforce's error bodies are
//! JSON arrays, but a maintenance page or a wrong host answers HTML, so nothing here assumes JSON.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::Value;

use super::auth::{AccessToken, AuthError, TokenCache};
use crate::support::http::client_builder;
use crate::support::text::{error_chain, excerpt, truncate};

const BODY_READ_LIMIT: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// 2xx: done.
    Delivered,
    /// Transient: try again by the schedule, and not before `min_delay`.
    Retry { min_delay: Duration },
    /// 400 from the DR package (often: the order is not in Salesforce yet): limited attempts.
    RetryLimited,
    /// `REQUEST_LIMIT_EXCEEDED` for concurrency (`ConcurrentPerOrgLongTxn`,
    /// `ConcurrentRequests`): too many at once right now; clears in seconds.
    Congested,
    /// `REQUEST_LIMIT_EXCEEDED` for the day (`TotalRequests`): the org's allocation is spent;
    /// every delivery to it waits, this one not before `min_delay`.
    DailyLimitReached { min_delay: Duration },
    /// Cannot succeed as configured (404 "Could not find a match for URL").
    Dead,
    /// Salesforce refused the sign-in: a configuration problem; try again after `min_delay`
    /// without counting it against the event.
    AuthRejected { min_delay: Duration },
}

/// Daily API usage from `Sforce-Limit-Info: api-usage=used/max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    pub used: u64,
    pub max: u64,
}

impl ApiUsage {
    pub fn parse(header: &str) -> Option<Self> {
        header.split(',').find_map(|part| {
            let (key, value) = part.trim().split_once('=')?;
            if key.trim() != "api-usage" {
                return None;
            }
            let (used, max) = value.trim().split_once('/')?;
            Some(Self {
                used: used.trim().parse().ok()?,
                max: max.trim().parse().ok()?,
            })
        })
    }
}

/// The record of one delivery attempt, for the audit trail and the worker.
#[derive(Debug, Clone)]
pub struct DeliveryAttempt {
    pub outcome: DeliveryOutcome,
    pub status: Option<u16>,
    pub duration: Duration,
    /// What went wrong, in a sentence; `None` when delivered.
    pub error: Option<String>,
    /// The start of Salesforce's answer body.
    pub excerpt: Option<String>,
    pub api_usage: Option<ApiUsage>,
    /// A 401 was answered with a new grant and one replay.
    pub reauthenticated: bool,
}

/// Posts events to `{my_domain_url}{webhook_path}`.
#[derive(Clone)]
pub struct ApexClient {
    pub(super) http: reqwest::Client,
    webhook_url: String,
    /// `webhook_url` parsed once: every delivery posts to it.
    webhook: reqwest::Url,
    pub(super) tokens: Arc<TokenCache>,
    rate_limit_min_delay: Duration,
}

pub(super) struct Answer {
    pub(super) status: StatusCode,
    location: Option<String>,
    pub(super) api_usage: Option<ApiUsage>,
    pub(super) body: String,
}

impl ApexClient {
    pub fn new(
        webhook_url: String,
        tokens: Arc<TokenCache>,
        request_timeout: Duration,
        rate_limit_min_delay: Duration,
    ) -> anyhow::Result<Self> {
        let http = client_builder(request_timeout).build()?;
        let webhook = reqwest::Url::parse(&webhook_url)
            .map_err(|e| anyhow::anyhow!("the Apex REST resource's URL `{webhook_url}`: {e}"))?;
        Ok(Self {
            http,
            webhook,
            webhook_url,
            tokens,
            rate_limit_min_delay,
        })
    }

    pub fn webhook_url(&self) -> &str {
        &self.webhook_url
    }

    pub fn tokens(&self) -> &Arc<TokenCache> {
        &self.tokens
    }

    /// Delivers one event body; never fails, every problem is an outcome.
    pub async fn deliver(&self, body: Bytes) -> DeliveryAttempt {
        let started = Instant::now();
        let token = match self.tokens.get().await {
            Ok(token) => token,
            Err(e) => return self.auth_failure(e, started),
        };
        let mut reauthenticated = false;
        let mut answer = self.post(&token, body.clone()).await;
        if matches!(&answer, Ok(a) if a.status == StatusCode::UNAUTHORIZED) {
            // The session expired (idle timeout, revoked): one new grant, one replay.
            tracing::info!("Salesforce answered 401; signing in again and replaying once");
            self.tokens.invalidate(token.generation).await;
            let fresh = match self.tokens.get().await {
                Ok(token) => token,
                Err(e) => return self.auth_failure(e, started),
            };
            reauthenticated = true;
            answer = self.post(&fresh, body).await;
        }
        let mut attempt = match answer {
            Ok(answer) => self.classify(answer, reauthenticated),
            Err(e) => DeliveryAttempt {
                outcome: DeliveryOutcome::Retry {
                    min_delay: Duration::ZERO,
                },
                status: None,
                duration: Duration::ZERO,
                error: Some(if e.is_timeout() {
                    format!(
                        "no answer from Salesforce within the request timeout ({})",
                        self.webhook_url
                    )
                } else {
                    format!("cannot reach Salesforce: {}", error_chain(&e))
                }),
                excerpt: None,
                api_usage: None,
                reauthenticated,
            },
        };
        attempt.duration = started.elapsed();
        attempt
    }

    async fn post(&self, token: &AccessToken, body: Bytes) -> Result<Answer, reqwest::Error> {
        let response = self
            .http
            .post(self.webhook.clone())
            .bearer_auth(token.secret.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        read_answer(response).await
    }

    fn classify(&self, answer: Answer, reauthenticated: bool) -> DeliveryAttempt {
        let status = answer.status;
        // A success's body is not read: nothing in it changes the outcome.
        let (error_code, message) = if status.is_success() {
            (None, None)
        } else {
            error_fields(&answer.body)
        };
        let excerpt = (!answer.body.trim().is_empty()).then(|| excerpt(&answer.body));
        let said = || {
            let mut text = format!("Salesforce answered {}", status.as_u16());
            if let Some(code) = &error_code {
                text.push_str(&format!(" {code}"));
            }
            if let Some(message) = &message {
                text.push_str(&format!(": {message}"));
            }
            text
        };
        let (outcome, error) = match status.as_u16() {
            200..=299 => (DeliveryOutcome::Delivered, None),
            300..=399 => (
                DeliveryOutcome::Retry {
                    min_delay: Duration::ZERO,
                },
                Some(format!(
                    "Salesforce answered {} with a redirect to {}; not followed (the token would leak): check salesforce.my_domain_url",
                    status.as_u16(),
                    answer.location.as_deref().unwrap_or("(no location)")
                )),
            ),
            // A fresh token refused too: signing in again would not help, and a new password
            // grant per attempt is what locks integration users out. Pause like a refused sign-in.
            401 if reauthenticated => (
                DeliveryOutcome::AuthRejected {
                    min_delay: self.tokens.rejection_cooldown(),
                },
                Some(format!(
                    "{} even with a freshly granted token; check the integration user's access to the Apex class \
                     (no new sign-in for {} s)",
                    said(),
                    self.tokens.rejection_cooldown().as_secs()
                )),
            ),
            401 => (
                DeliveryOutcome::Retry {
                    min_delay: Duration::ZERO,
                },
                Some(said()),
            ),
            403 if error_code.as_deref() == Some("REQUEST_LIMIT_EXCEEDED") => {
                let concurrency = message
                    .as_deref()
                    .is_some_and(|m| m.contains("ConcurrentPerOrgLongTxn") || m.contains("ConcurrentRequests"));
                let outcome = if concurrency {
                    DeliveryOutcome::Congested
                } else {
                    DeliveryOutcome::DailyLimitReached {
                        min_delay: self.rate_limit_min_delay,
                    }
                };
                (outcome, Some(said()))
            }
            400 => (DeliveryOutcome::RetryLimited, Some(said())),
            404 if error_code.as_deref() == Some("NOT_FOUND")
                || answer.body.contains("Could not find a match for URL") =>
            {
                (
                    DeliveryOutcome::Dead,
                    Some(format!(
                        "Salesforce has no Apex REST resource at {} (404 NOT_FOUND): the DR package (namespace digitalriverv3) \
                     is not installed in this org, or salesforce.webhook_path / salesforce.my_domain_url is wrong",
                        self.webhook_url
                    )),
                )
            }
            _ => (
                DeliveryOutcome::Retry {
                    min_delay: Duration::ZERO,
                },
                Some(said()),
            ),
        };
        DeliveryAttempt {
            outcome,
            status: Some(status.as_u16()),
            duration: Duration::ZERO,
            error,
            excerpt,
            api_usage: answer.api_usage,
            reauthenticated,
        }
    }

    /// A sign-in that failed: refused (wait the configured cool-down, uncounted) or unavailable.
    fn auth_failure(&self, e: AuthError, started: Instant) -> DeliveryAttempt {
        let outcome = if e.is_rejection() {
            DeliveryOutcome::AuthRejected {
                min_delay: self.tokens.rejection_cooldown(),
            }
        } else {
            DeliveryOutcome::Retry {
                min_delay: Duration::ZERO,
            }
        };
        DeliveryAttempt {
            outcome,
            status: None,
            duration: started.elapsed(),
            error: Some(e.to_string()),
            excerpt: None,
            api_usage: None,
            reauthenticated: false,
        }
    }

    /// `GET` on the webhook URL, for `check`: 405 means the DR package's resource exists (it takes
    /// only POST), 404 that it does not.
    pub async fn probe(&self) -> Result<(u16, Option<String>), String> {
        let token = self.tokens.get().await.map_err(|e| e.to_string())?;
        let response = self
            .http
            .get(&self.webhook_url)
            .bearer_auth(token.secret.expose_secret())
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        let answer = read_answer(response).await.map_err(|e| error_chain(&e))?;
        let (code, message) = error_fields(&answer.body);
        Ok((answer.status.as_u16(), code.or(message)))
    }

    /// The org's daily API usage, asked of the REST `limits` resource (one API request): from its
    /// `Sforce-Limit-Info`, else from `DailyApiRequests` in its body. `None` when it says neither
    /// (or cannot be reached).
    #[tracing::instrument(skip_all)]
    pub async fn api_usage(&self) -> Option<ApiUsage> {
        let url = reqwest::Url::parse(&self.webhook_url).ok()?.join(LIMITS_PATH).ok()?;
        let token = self.tokens.get().await.ok()?;
        let response = self
            .http
            .get(url)
            .bearer_auth(token.secret.expose_secret())
            .send()
            .await
            .inspect_err(|e| tracing::debug!(error = %error_chain(e), "could not ask the org's API usage"))
            .ok()?;
        let answer = read_answer(response).await.ok()?;
        answer.api_usage.or_else(|| {
            let body: Value = serde_json::from_str(&answer.body).ok()?;
            let daily = &body["DailyApiRequests"];
            let max = daily["Max"].as_u64()?;
            let remaining = daily["Remaining"].as_u64()?;
            Some(ApiUsage {
                used: max.saturating_sub(remaining),
                max,
            })
        })
    }
}

/// The REST resource that reports the org's limits.
pub const LIMITS_PATH: &str = "/services/data/v60.0/limits";

async fn read_answer(response: reqwest::Response) -> Result<Answer, reqwest::Error> {
    read_answer_up_to(response, BODY_READ_LIMIT).await
}

/// The answer, its body cut at `limit` bytes.
pub(super) async fn read_answer_up_to(mut response: reqwest::Response, limit: usize) -> Result<Answer, reqwest::Error> {
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let location = header("location");
    let api_usage = header("sforce-limit-info").and_then(|h| ApiUsage::parse(&h));
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() >= limit {
            body.truncate(limit);
            break;
        }
    }
    Ok(Answer {
        status,
        location,
        api_usage,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// `errorCode` and `message` from a JSON array (`[{"message","errorCode"}]`), a JSON object, or
/// an OAuth-style object; `None`s for HTML and empty bodies.
pub(super) fn error_fields(body: &str) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return (None, None);
    };
    let first = match &value {
        Value::Array(items) => items.first().cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| first.get(n).and_then(Value::as_str))
            .map(truncate)
    };
    (field(&["errorCode", "error"]), field(&["message", "error_description"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_usage_is_read_from_the_limit_header() {
        assert_eq!(
            ApiUsage::parse("api-usage=18/15000"),
            Some(ApiUsage { used: 18, max: 15000 })
        );
        assert_eq!(
            ApiUsage::parse("per-app-api-usage=1/100(appName=x), api-usage=25/5000"),
            Some(ApiUsage { used: 25, max: 5000 })
        );
        assert_eq!(ApiUsage::parse("garbage"), None);
    }

    #[test]
    fn error_fields_cope_with_arrays_objects_and_html() {
        let array = r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#;
        assert_eq!(
            error_fields(array),
            (
                Some("INVALID_SESSION_ID".into()),
                Some("Session expired or invalid".into())
            )
        );
        let object = r#"{"errorCode":"APEX_ERROR","message":"boom"}"#;
        assert_eq!(error_fields(object).0.as_deref(), Some("APEX_ERROR"));
        assert_eq!(
            error_fields("<html><body>Down for maintenance</body></html>"),
            (None, None)
        );
        assert_eq!(error_fields(""), (None, None));
    }
}
