//! Salesforce sign-in: the password and client-credentials grants, and the token cache every
//! delivery shares.
//!
//! Salesforce is not a textbook OAuth server: its token answer has no `expires_in` (the session
//! instead times out after an org-defined idle period, 15 minutes at the shortest), `issued_at` is
//! a string of epoch milliseconds, and a token's end shows up only as a 401 on the next call. So
//! the cache renews a token proactively after `token_max_age` and on demand after a 401
//! ([`TokenCache::invalidate`]), and only one grant runs at a time however many deliveries wait.
//!
//! A refused grant (HTTP 400) is a configuration problem, not a glitch: repeating a failing
//! password grant can lock the integration user out. The refusal is remembered for a cool-down and
//! answered from memory meanwhile, and its message names the likely causes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, ExtraTokenFields, HttpClientError, HttpRequest,
    RequestTokenError, ResourceOwnerPassword, ResourceOwnerUsername, StandardRevocableToken, StandardTokenResponse,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::domain::ServiceUrl;
use prometheus_client::metrics::counter::Counter;

use super::credentials::{GrantType, SalesforceCredentials, SalesforceGrant};
pub use super::hints::hint_for;
use crate::support::clock::Clock;
use crate::support::http::{Backoff, Failure, client_builder, retry};
use crate::support::text::{error_chain, excerpt};

mod jwt_grant;

/// The fields Salesforce adds to a token answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SalesforceTokenFields {
    /// The org's API host, e.g. `https://acme.my.salesforce.com`.
    pub instance_url: Option<String>,
    /// Epoch milliseconds, as a string.
    pub issued_at: Option<String>,
    /// The identity URL (`.../id/<org id>/<user id>`).
    pub id: Option<String>,
    pub signature: Option<String>,
}

impl ExtraTokenFields for SalesforceTokenFields {}

/// Salesforce's token answer: the standard fields (no `expires_in`, optional `scope`) plus its own.
pub type SalesforceTokenResponse = StandardTokenResponse<SalesforceTokenFields, BasicTokenType>;

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    SalesforceTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Salesforce refused the grant: the configuration (or the org's setup) must change.
    #[error("Salesforce refused the {grant} grant at {token_url}: {error} ({description}). {hint}")]
    Rejected {
        grant: &'static str,
        token_url: String,
        error: String,
        description: String,
        hint: String,
    },
    /// The token endpoint failed or could not be reached; worth retrying later.
    #[error("Salesforce's token endpoint {token_url} failed after {attempts} attempt(s): {detail}")]
    Unavailable {
        token_url: String,
        attempts: u32,
        detail: String,
    },
}

impl AuthError {
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }
}

/// A token and what Salesforce said with it.
#[derive(Clone)]
pub struct AccessToken {
    pub secret: SecretString,
    pub instance_url: Option<String>,
    pub issued_at_millis: Option<u64>,
    pub scope: Option<String>,
    /// Increases with every grant; `invalidate` names the token it found stale.
    pub generation: u64,
    obtained: Instant,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("secret", &"[REDACTED]")
            .field("instance_url", &self.instance_url)
            .field("generation", &self.generation)
            .finish()
    }
}

/// One grant against Salesforce's token endpoint.
#[derive(Clone)]
pub struct SalesforceAuth {
    credentials: SalesforceCredentials,
    http: reqwest::Client,
    oauth: OAuthClient,
    backoff: Backoff,
    /// With the JWT bearer flow: the settings key of the key that signed in last, and a gauge
    /// per key name (1 for that one).
    signed_in_key: Arc<std::sync::Mutex<Option<String>>>,
    key_gauges: Vec<(String, prometheus_client::metrics::gauge::Gauge)>,
}

impl SalesforceAuth {
    pub fn new(credentials: SalesforceCredentials, timeout: Duration) -> anyhow::Result<Self> {
        let http = client_builder(timeout).build()?;
        let mut oauth = oauth2::Client::new(ClientId::new(credentials.client_id.clone()))
            .set_token_uri(TokenUrl::new(credentials.token_url.base().to_owned())?)
            .set_auth_type(AuthType::RequestBody);
        if let Some(secret) = &credentials.client_secret {
            oauth = oauth.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
        }
        Ok(Self {
            credentials,
            http,
            oauth,
            signed_in_key: Arc::default(),
            key_gauges: Vec::new(),
            backoff: Backoff {
                retries: 3,
                base: Duration::from_millis(500),
            },
        })
    }

    /// Transport failures and 5xx answers are retried `retries` times, waiting `base_delay`,
    /// then twice as long each time.
    pub fn with_retries(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Reports in `gauges` (one per key name) which key the JWT bearer flow signed in with.
    pub fn reporting_keys_in(mut self, gauges: Vec<(String, prometheus_client::metrics::gauge::Gauge)>) -> Self {
        self.key_gauges = gauges;
        self
    }

    /// The settings key of the private key that signed in last (the JWT bearer flow).
    pub fn signed_in_key(&self) -> Option<String> {
        self.signed_in_key.lock().expect("not poisoned").clone()
    }

    pub fn grant_type(&self) -> GrantType {
        self.credentials.grant.grant_type()
    }

    pub fn token_url(&self) -> &ServiceUrl {
        &self.credentials.token_url
    }

    /// See [`SalesforceCredentials::fingerprint`].
    pub fn fingerprint(&self) -> String {
        self.credentials.fingerprint()
    }

    /// Runs the configured grant, retrying transient failures.
    #[tracing::instrument(skip_all, fields(grant = self.grant_type().as_str(), host = self.token_url().host()))]
    pub async fn grant(&self, generation: u64) -> Result<AccessToken, AuthError> {
        retry(self.backoff, "the Salesforce token endpoint", |attempt| async move {
            match self.grant_once(generation).await {
                Ok(token) => Ok(token),
                Err(GrantFailure::Rejected(e)) => Err(Failure::Permanent(e)),
                Err(GrantFailure::Transient(detail)) => Err(Failure::transient(AuthError::Unavailable {
                    token_url: self.token_url().base().to_owned(),
                    attempts: attempt,
                    detail,
                })),
            }
        })
        .await
    }

    async fn grant_once(&self, generation: u64) -> Result<AccessToken, GrantFailure> {
        let http_client = StatusRecorder {
            http: &self.http,
            status: AtomicU16::new(0),
        };
        let result = match &self.credentials.grant {
            SalesforceGrant::Password { username, password } => {
                let username = ResourceOwnerUsername::new(username.clone());
                let password = ResourceOwnerPassword::new(password.expose_secret().to_owned());
                self.oauth
                    .exchange_password(&username, &password)
                    .request_async(&http_client)
                    .await
            }
            SalesforceGrant::ClientCredentials => {
                self.oauth
                    .exchange_client_credentials()
                    .request_async(&http_client)
                    .await
            }
            SalesforceGrant::JwtBearer {
                username,
                audience,
                keys,
            } => return self.jwt_grant(username, audience, keys, generation).await,
        };
        let status = Some(http_client.status.load(Ordering::Relaxed)).filter(|s| *s != 0);
        match result {
            Ok(response) => Ok(token_from(&response, generation)),
            Err(e) => Err(self.classify(e, status)),
        }
    }

    fn classify(
        &self,
        error: RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>,
        status: Option<u16>,
    ) -> GrantFailure {
        let status_text = status
            .map(|s| format!("HTTP {s}"))
            .unwrap_or_else(|| "no answer".to_owned());
        match error {
            RequestTokenError::ServerResponse(body) if status.is_some_and(|s| (400..500).contains(&s)) => {
                let error = body.error().as_ref().to_owned();
                let description = body.error_description().cloned().unwrap_or_default();
                let grant = self.grant_type();
                GrantFailure::Rejected(AuthError::Rejected {
                    grant: grant.as_str(),
                    token_url: self.token_url().base().to_owned(),
                    hint: hint_for(&error, &description, grant),
                    error,
                    description,
                })
            }
            _ if status.is_some_and(|s| (300..400).contains(&s)) => GrantFailure::Rejected(AuthError::Rejected {
                grant: self.grant_type().as_str(),
                token_url: self.token_url().base().to_owned(),
                error: format!("redirect ({status_text})"),
                description: "the token endpoint answered with a redirect, which is not followed".to_owned(),
                hint: "Check salesforce.token_url / salesforce.my_domain_url: use the org's My Domain or \
                       login/test.salesforce.com, never a Lightning or custom host."
                    .to_owned(),
            }),
            RequestTokenError::ServerResponse(body) => {
                GrantFailure::Transient(format!("{status_text}: {}", body.error().as_ref()))
            }
            RequestTokenError::Request(e) => GrantFailure::Transient(error_chain(&e)),
            RequestTokenError::Parse(_, body) => GrantFailure::Transient(format!(
                "{status_text}, unreadable answer: {}",
                excerpt(&String::from_utf8_lossy(&body))
            )),
            RequestTokenError::Other(text) => GrantFailure::Transient(format!("{status_text}: {text}")),
        }
    }
}

/// The token of a successful answer.
fn token_from(response: &SalesforceTokenResponse, generation: u64) -> AccessToken {
    let extra = response.extra_fields();
    AccessToken {
        secret: SecretString::from(response.access_token().secret().clone()),
        instance_url: extra.instance_url.clone(),
        issued_at_millis: extra.issued_at.as_deref().and_then(|s| s.parse().ok()),
        scope: response
            .scopes()
            .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")),
        generation,
        obtained: Instant::now(),
    }
}

/// Sends oauth2's requests through reqwest and remembers the answer's status code, which oauth2
/// does not report with a parse error (a 503 maintenance page and a 400 look alike otherwise).
struct StatusRecorder<'a> {
    http: &'a reqwest::Client,
    status: AtomicU16,
}

impl<'c> oauth2::AsyncHttpClient<'c> for StatusRecorder<'_> {
    type Error = HttpClientError<reqwest::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, Self::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = oauth2::AsyncHttpClient::call(self.http, request).await?;
            self.status.store(response.status().as_u16(), Ordering::Relaxed);
            Ok(response)
        })
    }
}

enum GrantFailure {
    Rejected(AuthError),
    Transient(String),
}

/// The token every delivery shares: one grant at a time, renewed after `max_age`, dropped on 401.
pub struct TokenCache {
    auth: SalesforceAuth,
    max_age: Duration,
    /// How long a refused grant is answered from memory before Salesforce is asked again.
    rejection_cooldown: Duration,
    state: Mutex<CacheState>,
    grants: Counter,
    clock: Clock,
}

#[derive(Default)]
struct CacheState {
    token: Option<Arc<AccessToken>>,
    generation: u64,
    rejected: Option<(AuthError, Instant)>,
}

impl TokenCache {
    pub fn new(auth: SalesforceAuth, max_age: Duration, rejection_cooldown: Duration) -> Self {
        Self {
            auth,
            max_age,
            rejection_cooldown,
            state: Mutex::new(CacheState::default()),
            grants: Counter::default(),
            clock: Clock::system(),
        }
    }

    /// The cache with its ages read from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Counts grants into `counter` (a metric of the target this cache signs in to).
    pub fn counting_grants_in(mut self, counter: Counter) -> Self {
        self.grants = counter;
        self
    }

    pub fn auth(&self) -> &SalesforceAuth {
        &self.auth
    }

    /// How long a refused sign-in is answered from memory (`salesforce.token_failure_cooldown_secs`).
    pub fn rejection_cooldown(&self) -> Duration {
        self.rejection_cooldown
    }

    /// The refusal being answered from memory now, if any, and how long ago it happened.
    pub async fn current_rejection(&self) -> Option<(AuthError, Duration)> {
        let state = self.state.lock().await;
        state
            .rejected
            .as_ref()
            .filter(|(_, at)| self.since(*at) < self.rejection_cooldown)
            .map(|(error, at)| (error.clone(), self.since(*at)))
    }

    /// Remembers a refusal that happened `age` ago (read back from the store after a restart), so
    /// that a restarted relay does not try the refused credentials again before the cool-down.
    pub async fn remember_rejection(&self, error: AuthError, age: Duration) {
        let at = self.clock.now().checked_sub(age).unwrap_or_else(|| self.clock.now());
        self.state.lock().await.rejected = Some((error, at));
    }

    /// How many grants were requested from Salesforce.
    pub fn grants(&self) -> u64 {
        self.grants.get()
    }

    /// The counter of grants, to be shown as a metric.
    pub fn grant_counter(&self) -> Counter {
        self.grants.clone()
    }

    /// A valid token: the cached one, or a new grant. Concurrent callers wait for the same grant.
    pub async fn get(&self) -> Result<Arc<AccessToken>, AuthError> {
        let mut state = self.state.lock().await;
        if let Some(token) = &state.token
            && self.since(token.obtained) < self.max_age
        {
            return Ok(token.clone());
        }
        if let Some((error, at)) = &state.rejected
            && self.since(*at) < self.rejection_cooldown
        {
            return Err(error.clone());
        }
        state.generation += 1;
        self.grants.inc();
        match self.auth.grant(state.generation).await {
            Ok(mut token) => {
                token.obtained = self.clock.now();
                let token = Arc::new(token);
                state.token = Some(token.clone());
                state.rejected = None;
                tracing::info!(generation = token.generation, "Salesforce token obtained");
                Ok(token)
            }
            Err(error) => {
                state.token = None;
                if error.is_rejection() {
                    tracing::error!(
                        error = %error,
                        retry_in_secs = self.rejection_cooldown.as_secs(),
                        "Salesforce refused the sign-in: fix the credentials (the password and security token, or \
                         the connected app); no new sign-in is tried before the cool-down, so the user is not locked out"
                    );
                    state.rejected = Some((error.clone(), self.clock.now()));
                }
                Err(error)
            }
        }
    }

    fn since(&self, then: Instant) -> Duration {
        self.clock.now().saturating_duration_since(then)
    }

    /// Drops the token of `generation` after Salesforce answered 401 with it; a newer token (one
    /// another delivery already fetched) is kept.
    pub async fn invalidate(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state.token.as_ref().is_some_and(|t| t.generation == generation) {
            state.token = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_answer_without_expires_in_or_scope_parses() {
        let body = r#"{"access_token":"00Dxx!AQ.token","instance_url":"https://acme.my.salesforce.com",
            "id":"https://login.salesforce.com/id/00Dxx/005xx","token_type":"Bearer",
            "issued_at":"1700000000000","signature":"c2lnbmF0dXJl"}"#;
        let parsed: SalesforceTokenResponse = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.access_token().secret(), "00Dxx!AQ.token");
        assert!(parsed.expires_in().is_none());
        assert!(parsed.scopes().is_none());
        assert_eq!(parsed.extra_fields().issued_at.as_deref(), Some("1700000000000"));
        assert_eq!(
            parsed.extra_fields().instance_url.as_deref(),
            Some("https://acme.my.salesforce.com")
        );
    }

    #[test]
    fn a_token_answer_with_scope_parses() {
        let body = r#"{"access_token":"t","token_type":"Bearer","issued_at":"1","scope":"api web"}"#;
        let parsed: SalesforceTokenResponse = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.scopes().unwrap().len(), 2);
    }
}
