//! A stand-in for a Salesforce org: the token endpoint answers like Salesforce (no `expires_in`,
//! `issued_at` as a string, a new token per grant), and tests mount the Apex resource's answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dr_sf_bridge::domain::ServiceUrl;
use dr_sf_bridge::salesforce::{ApexClient, SalesforceAuth, TokenCache};
use dr_sf_bridge::salesforce::{SalesforceCredentials, SalesforceGrant};
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::helpers::*;

pub const TOKEN_PATH: &str = "/services/oauth2/token";

pub struct SalesforceStandIn {
    pub server: MockServer,
}

/// Issues `00DTESTORG!AQ.token-1`, `-2`, ... like Salesforce's token endpoint.
pub struct TokenIssuer {
    issued: Arc<AtomicUsize>,
    instance_url: String,
    delay: Duration,
}

/// What Salesforce's token endpoint checks, answered as it answers (HTTP 400 with `error` and
/// `error_description`); `None` when the form is one a real org would grant.
fn refusal(form: &std::collections::HashMap<String, String>) -> Option<ResponseTemplate> {
    let field = |name: &str| form.get(name).map(String::as_str);
    let grant = field("grant_type");
    if !matches!(grant, Some("password" | "client_credentials")) {
        return Some(oauth_error("unsupported_grant_type", "grant type not supported"));
    }
    if field("client_id") != Some("3MVG9consumerKey") {
        return Some(oauth_error("invalid_client_id", "client identifier invalid"));
    }
    if field("client_secret") != Some(SF_CLIENT_SECRET) {
        return Some(oauth_error("invalid_client", "invalid client credentials"));
    }
    if grant == Some("password") && (field("username").is_none() || field("password") != Some(SF_PASSWORD)) {
        return Some(oauth_error("invalid_grant", "authentication failure"));
    }
    None
}

impl Respond for TokenIssuer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(&request.body).into_owned().collect();
        if let Some(refused) = refusal(&form) {
            return refused;
        }
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200)
            .set_body_json(json!({
                "access_token": token(n),
                "instance_url": self.instance_url,
                "id": "https://test.salesforce.com/id/00DTESTORG/005USER",
                "token_type": "Bearer",
                "issued_at": "1700000000000",
                "signature": "c2lnbmF0dXJl"
            }))
            .set_delay(self.delay)
    }
}

/// A mock of the Apex REST resource answering `response` to POSTs (then `.expect(n)`, `.mount`).
pub fn apex(response: impl Respond + 'static) -> Mock {
    Mock::given(method("POST")).and(path(APEX_PATH)).respond_with(response)
}

/// A mock of the token endpoint answering `response` (then `.expect(n)`, `.mount`).
pub fn token_endpoint(response: impl Respond + 'static) -> Mock {
    Mock::given(method("POST")).and(path(TOKEN_PATH)).respond_with(response)
}

impl SalesforceStandIn {
    /// Like an org whose first session has expired: token 1 gets 401 `INVALID_SESSION_ID` and
    /// token 2 gets 200, once each.
    pub async fn expire_the_first_session(&self) {
        Mock::given(method("POST"))
            .and(path(APEX_PATH))
            .and(wiremock::matchers::header(
                "authorization",
                format!("Bearer {}", token(1)).as_str(),
            ))
            .respond_with(sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid"))
            .expect(1)
            .mount(&self.server)
            .await;
        Mock::given(method("POST"))
            .and(path(APEX_PATH))
            .and(wiremock::matchers::header(
                "authorization",
                format!("Bearer {}", token(2)).as_str(),
            ))
            .respond_with(ResponseTemplate::new(200))
            .expect(1)
            .mount(&self.server)
            .await;
    }
}

pub fn token(n: usize) -> String {
    format!("{SF_TOKEN_PREFIX}.token-{n}")
}

pub fn oauth_error(error: &str, description: &str) -> ResponseTemplate {
    ResponseTemplate::new(400).set_body_json(json!({"error": error, "error_description": description}))
}

pub fn sf_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!([{"message": message, "errorCode": code}]))
}

impl SalesforceStandIn {
    /// An org whose token endpoint grants tokens (after `token_delay`) and whose Apex resource is
    /// not mounted yet.
    pub async fn start() -> Self {
        Self::start_with_token_delay(Duration::ZERO).await
    }

    pub async fn start_with_token_delay(token_delay: Duration) -> Self {
        let server = MockServer::start().await;
        let issuer = TokenIssuer {
            issued: Arc::new(AtomicUsize::new(0)),
            instance_url: server.uri(),
            delay: token_delay,
        };
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(issuer)
            .mount(&server)
            .await;
        Self { server }
    }

    /// An org whose token endpoint answers `response` (tests mount the rest).
    pub async fn bare() -> Self {
        Self {
            server: MockServer::start().await,
        }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn webhook_url(&self) -> String {
        format!("{}{APEX_PATH}", self.uri())
    }

    pub fn credentials(&self, grant: SalesforceGrant) -> SalesforceCredentials {
        SalesforceCredentials {
            token_url: ServiceUrl::parse(&format!("{}{TOKEN_PATH}", self.uri())).unwrap(),
            client_id: "3MVG9consumerKey".to_owned(),
            client_secret: Some(SecretString::from(SF_CLIENT_SECRET)),
            grant,
        }
    }

    pub fn password_grant() -> SalesforceGrant {
        SalesforceGrant::Password {
            username: "integration@acme.com.uat".to_owned(),
            password: SecretString::from(SF_PASSWORD),
        }
    }

    pub fn token_cache(&self, grant: SalesforceGrant) -> Arc<TokenCache> {
        let auth = SalesforceAuth::new(self.credentials(grant), Duration::from_secs(5))
            .unwrap()
            .with_retries(dr_sf_bridge::support::http::Backoff {
                retries: 2,
                base: Duration::from_millis(10),
            });
        Arc::new(TokenCache::new(
            auth,
            Duration::from_secs(900),
            Duration::from_secs(300),
        ))
    }

    pub fn apex_client(&self, timeout: Duration) -> ApexClient {
        ApexClient::new(
            self.webhook_url(),
            self.token_cache(Self::password_grant()),
            timeout,
            Duration::from_secs(300),
        )
        .unwrap()
    }

    pub async fn token_requests(&self) -> Vec<Request> {
        self.requests_to(TOKEN_PATH).await
    }

    pub async fn apex_requests(&self) -> Vec<Request> {
        self.requests_to(APEX_PATH).await
    }

    /// The ids of the events delivered, in the order they arrived (other posts to the Apex
    /// resource, such as `check`'s probe, are left out).
    pub async fn delivered_ids(&self) -> Vec<String> {
        self.apex_requests()
            .await
            .iter()
            .filter_map(|r| {
                let body = serde_json::from_slice::<serde_json::Value>(&r.body).ok()?;
                body["id"].as_str().map(str::to_owned)
            })
            .collect()
    }

    async fn requests_to(&self, wanted: &str) -> Vec<Request> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.url.path() == wanted)
            .collect()
    }
}
