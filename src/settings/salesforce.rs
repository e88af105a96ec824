//! `[salesforce]`: the org, the grant and its credentials, and the delivery client's limits.
//!
//! The checks here encode the mistakes admins make in step 11: a Lightning URL instead of My
//! Domain, client credentials on the login host, a sandbox host with a production environment.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::DeliverySettings;
use super::problems::{Collector, ConfigProblems, Reader};
use crate::domain::{Mode, SalesforceUrl, ServiceUrl};
use crate::salesforce::jwt::{KeyRing, SigningKey};
use crate::salesforce::{
    ApexClient, GrantType, LOGIN_HOST, SalesforceAuth, SalesforceCredentials, SalesforceEnvironment, SalesforceGrant,
    TEST_HOST, TOKEN_PATH, TokenCache,
};
use crate::support::clock::Clock;
use crate::support::http::Backoff;
use secrecy::SecretString;

#[derive(Debug)]
pub struct SalesforceSettings {
    /// Where this org's keys live: `salesforce` for the one target, or `salesforce.test` /
    /// `salesforce.live` for one of two (problems name their keys with it).
    pub section: String,
    /// Sandbox or production: picks the password grant's token host.
    pub environment: SalesforceEnvironment,
    /// The DR mode whose events this org takes (from the environment unless set).
    pub mode: Mode,
    /// The org's My Domain URL, base of the Apex REST URL.
    pub my_domain_url: Option<SalesforceUrl>,
    /// Explicit, or derived from the environment and grant; `None` only when it cannot be derived.
    pub token_url: Option<ServiceUrl>,
    /// Password or client credentials.
    pub grant_type: GrantType,
    /// The connected app's consumer key.
    pub client_id: Option<String>,
    /// The connected app's consumer secret.
    pub client_secret: Option<SecretString>,
    /// Integration user (password grant).
    pub username: Option<String>,
    /// Password followed by the security token (password grant).
    pub password: Option<SecretString>,
    /// The RSA key whose certificate the connected app holds (JWT bearer flow).
    pub private_key: Option<SigningKey>,
    /// A second key, tried when Salesforce refuses the first: for rotating the certificate
    /// without a gap (JWT bearer flow).
    pub next_private_key: Option<SigningKey>,
    /// Path of the DR package's Apex REST resource.
    pub webhook_path: String,
    /// Most deliveries to Salesforce at once: the ceiling of the adaptive limit, or the fixed one.
    pub max_in_flight: usize,
    /// Whether the number at once adapts to the org's answers (`adaptive`) or stays at
    /// `max_in_flight` (`fixed`).
    pub concurrency: Concurrency,
    /// The share of the org's daily API allocation left to its other integrations, in percent:
    /// deliveries slow down near it and pause at it.
    pub api_reserve_percent: u32,
    /// Timeout of one delivery request (seconds in the configuration).
    pub request_timeout: Duration,
    /// A token older than this is renewed before use (seconds in the configuration).
    pub token_max_age: Duration,
    /// How long a refused grant is answered from memory (seconds in the configuration).
    pub token_failure_cooldown: Duration,
    /// Retries of a grant after a 5xx or a connection error.
    pub token_retries: u32,
    /// Delay before the first such retry, doubling after (milliseconds in the configuration).
    pub token_retry_base_delay: Duration,
}

/// The highest `salesforce.max_in_flight`.
const MAX_IN_FLIGHT: usize = 256;

/// `salesforce.concurrency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Concurrency {
    Adaptive,
    Fixed,
}

impl SalesforceSettings {
    /// Whether the environment and grant type parsed, so that presence checks make sense.
    pub(super) fn kind_is_valid(&self, problems: &Collector) -> bool {
        ["environment", "grant_type"]
            .iter()
            .all(|name| !problems.has(&self.key(name)) && !problems.has(&format!("salesforce.{name}")))
    }

    /// The key `name` of this org's section.
    pub fn key(&self, name: &str) -> String {
        format!("{}.{name}", self.section)
    }

    /// Reads the org in `section`. `bound` is the mode a `salesforce.test` / `salesforce.live`
    /// section takes (its environment then defaults to the mode's: sandbox for test); `None` for
    /// the one `[salesforce]` target, whose mode follows its environment unless set. A mode
    /// section's shared keys (grant type, limits, timeouts, path) fall back to `[salesforce]`'s.
    pub(super) fn read(r: &mut Reader, section: &str, bound: Option<Mode>) -> Self {
        let key = |name: &str| format!("{section}.{name}");
        let shared = |r: &mut Reader, name: &str| {
            if bound.is_some() && !r.is_set(&key(name)) {
                format!("salesforce.{name}")
            } else {
                key(name)
            }
        };
        let environment: Option<SalesforceEnvironment> = match bound {
            Some(mode) if !r.is_set(&key("environment")) => Some(SalesforceEnvironment::of_mode(mode)),
            _ => r.one_of(&key("environment"), "`sandbox`, `production`"),
        };
        let grant_type_key = shared(r, "grant_type");
        let grant_type: Option<GrantType> = r.one_of(&grant_type_key, "`password`, `client_credentials`, `jwt_bearer`");
        let mode: Option<Mode> = match (bound, r.optional_text("salesforce.mode")) {
            (Some(mode), _) => Some(mode),
            (None, Some(_)) => r.one_of("salesforce.mode", "`test`, `live`"),
            (None, None) => None,
        };
        let my_domain_url = r.parse(&key("my_domain_url"), SalesforceUrl::parse);
        let explicit_token_url = r.parse(&key("token_url"), SalesforceUrl::parse_any);
        let webhook_path_key = shared(r, "webhook_path");
        let webhook_path = r.text(&webhook_path_key).trim().to_owned();
        let max_in_flight_key = shared(r, "max_in_flight");
        let max_in_flight: usize = r.get(&max_in_flight_key);
        let concurrency_key = shared(r, "concurrency");
        let concurrency: Option<Concurrency> = r.one_of(&concurrency_key, "`adaptive`, `fixed`");
        let reserve_key = shared(r, "api_reserve_percent");
        let api_reserve_percent: u32 = r.get(&reserve_key);
        let request_timeout_key = shared(r, "request_timeout_secs");
        let request_timeout_secs: u64 = r.get(&request_timeout_key);
        let token_max_age_key = shared(r, "token_max_age_secs");
        let token_max_age_secs: u64 = r.get(&token_max_age_key);
        let cooldown_key = shared(r, "token_failure_cooldown_secs");
        let token_failure_cooldown_secs: u64 = r.get(&cooldown_key);
        let token_retries_key = shared(r, "token_retries");
        let token_retries = r.get(&token_retries_key);
        let retry_delay_key = shared(r, "token_retry_base_delay_ms");
        let token_retry_base_delay_ms: u64 = r.get(&retry_delay_key);
        let client_id = r.optional_text(&key("client_id"));
        let client_secret = r.secret(&key("client_secret"));
        let username = r.optional_text(&key("username"));
        let password = r.secret(&key("password"));
        let private_key = signing_key(r, section, "private_key");
        let next_private_key = signing_key(r, section, "next_private_key");
        let c = &mut r.problems;
        let token_url = match (&explicit_token_url, grant_type, environment) {
            (Some(url), _, _) => Some(url.clone()),
            (None, Some(GrantType::ClientCredentials), _) => my_domain_url
                .as_ref()
                .map(|d| ServiceUrl::parse(&d.join_path(TOKEN_PATH)).expect("a My Domain URL plus a path is a URL")),
            (None, Some(GrantType::Password), Some(env)) => {
                Some(ServiceUrl::parse(&format!("https://{}{TOKEN_PATH}", env.login_host())).expect("a constant URL"))
            }
            (None, Some(GrantType::JwtBearer), Some(env)) => Some(match &my_domain_url {
                Some(domain) => {
                    ServiceUrl::parse(&domain.join_path(TOKEN_PATH)).expect("a My Domain URL plus a path is a URL")
                }
                None => {
                    ServiceUrl::parse(&format!("https://{}{TOKEN_PATH}", env.login_host())).expect("a constant URL")
                }
            }),
            _ => None,
        };
        if let (Some(GrantType::ClientCredentials), Some(url)) = (grant_type, &token_url) {
            let host = host_of(url);
            if host == LOGIN_HOST || host == TEST_HOST {
                c.push(
                    &grant_type_key,
                    format!(
                        "client_credentials does not work on {host} (Salesforce answers \"request not supported on this domain\"); \
                         set {} to the My Domain token URL, https://<name>.my.salesforce.com{TOKEN_PATH}, or leave it unset",
                        key("token_url")
                    ),
                );
            }
        }
        if let (Some(GrantType::ClientCredentials), None, None) = (grant_type, &explicit_token_url, &my_domain_url) {
            c.push_new(
                &key("my_domain_url"),
                "is required with grant_type = \"client_credentials\": the grant works only on the My Domain host",
            );
        }
        if let Some(env) = environment {
            check_hosts_match(c, section, env, explicit_token_url.as_ref(), my_domain_url.as_ref());
        }
        if !webhook_path.starts_with("/services/apexrest/") {
            c.push(&webhook_path_key, format!("`{webhook_path}` must start with /services/apexrest/ (default /services/apexrest/digitalriverv3/webhooks/)"));
        }
        if max_in_flight == 0 {
            c.push(&max_in_flight_key, "must be at least 1");
        } else if max_in_flight > MAX_IN_FLIGHT {
            c.push(
                &max_in_flight_key,
                format!("{max_in_flight} is more than {MAX_IN_FLIGHT}"),
            );
        } else if max_in_flight > 10 && concurrency == Some(Concurrency::Fixed) {
            c.push(
                &max_in_flight_key,
                format!(
                    "{max_in_flight} at once, always (concurrency = \"fixed\"), exceeds Salesforce's default limit of 10 \
                     concurrent long-running Apex requests; use concurrency = \"adaptive\" or at most 10"
                ),
            );
        }
        if api_reserve_percent > 90 {
            c.push(&reserve_key, format!("{api_reserve_percent} leaves the relay less than 10% of the org's daily API allocation; use 0 to 90"));
        }
        c.positive(&request_timeout_key, request_timeout_secs);
        c.positive(&token_max_age_key, token_max_age_secs);
        SalesforceSettings {
            section: section.to_owned(),
            environment: environment.unwrap_or(SalesforceEnvironment::Sandbox),
            mode: mode.unwrap_or_else(|| environment.unwrap_or(SalesforceEnvironment::Sandbox).mode()),
            my_domain_url,
            token_url,
            grant_type: grant_type.unwrap_or(GrantType::Password),
            client_id,
            client_secret,
            username,
            password,
            private_key,
            next_private_key,
            webhook_path,
            max_in_flight: max_in_flight.clamp(1, MAX_IN_FLIGHT),
            concurrency: concurrency.unwrap_or(Concurrency::Adaptive),
            api_reserve_percent: api_reserve_percent.min(90),
            request_timeout: Duration::from_secs(request_timeout_secs.max(1)),
            token_max_age: Duration::from_secs(token_max_age_secs.max(1)),
            token_failure_cooldown: Duration::from_secs(token_failure_cooldown_secs),
            token_retries,
            token_retry_base_delay: Duration::from_millis(token_retry_base_delay_ms),
        }
    }
}

/// The key `name` of `section` (inline or `_file`), checked: a problem names the key the admin set.
fn signing_key(r: &mut Reader, section: &str, name: &str) -> Option<SigningKey> {
    let inline = format!("{section}.{name}");
    let pem = r.secret(&inline)?;
    let file = format!("{inline}_file");
    let shown = if r.is_set(&file) { file } else { inline };
    match SigningKey::parse(&shown, &pem) {
        Ok(key) => Some(key),
        Err(problem) => {
            r.problems.push(&shown, problem.to_string());
            None
        }
    }
}

/// A sandbox host with `environment = "production"` (or the reverse) is a mistake.
fn check_hosts_match(
    c: &mut Collector,
    section: &str,
    env: SalesforceEnvironment,
    token_url: Option<&ServiceUrl>,
    my_domain_url: Option<&SalesforceUrl>,
) {
    let mut hosts: Vec<(String, String)> = Vec::new();
    if let Some(url) = token_url {
        hosts.push((format!("{section}.token_url"), host_of(url)));
    }
    if let Some(url) = my_domain_url {
        hosts.push((format!("{section}.my_domain_url"), url.host().to_ascii_lowercase()));
    }
    for (key, host) in hosts {
        let key = key.as_str();
        let sandbox_host = host == TEST_HOST || host.ends_with(".sandbox.my.salesforce.com");
        let production_host = host == LOGIN_HOST;
        if env == SalesforceEnvironment::Sandbox && production_host {
            c.push(key, format!("{host} is the production host but {section}.environment = \"sandbox\"; use https://{TEST_HOST} or the sandbox's My Domain, or set environment = \"production\""));
        }
        if env == SalesforceEnvironment::Production && sandbox_host {
            c.push(key, format!("{host} is a sandbox host but {section}.environment = \"production\"; use https://{LOGIN_HOST} or the org's My Domain, or set environment = \"sandbox\""));
        }
    }
}

fn host_of(url: &ServiceUrl) -> String {
    url.host().to_ascii_lowercase()
}

impl SalesforceSettings {
    /// The Apex REST URL events are posted to.
    pub fn webhook_url(&self) -> Result<String, ConfigProblems> {
        let base = self.my_domain_url.as_ref().ok_or_else(|| {
            ConfigProblems::single(
                &self.key("my_domain_url"),
                "is required (https://<name>.my.salesforce.com)",
            )
        })?;
        Ok(base.join_path(&self.webhook_path))
    }

    /// The grant's values, or the keys that are missing.
    pub fn credentials(&self) -> Result<SalesforceCredentials, ConfigProblems> {
        let mut c = Collector::default();
        let token_url = self.token_url.clone();
        if token_url.is_none() {
            c.push(
                &self.key("token_url"),
                format!(
                    "cannot be derived: set {} (or {})",
                    self.key("my_domain_url"),
                    self.key("token_url")
                ),
            );
        }
        let client_id = c
            .require(
                &self.key("client_id"),
                &self.client_id,
                "(the connected app's consumer key)",
            )
            .cloned();
        let client_secret = match self.grant_type {
            GrantType::JwtBearer => Some(None),
            _ => c
                .require(
                    &self.key("client_secret"),
                    &self.client_secret,
                    "(the connected app's consumer secret)",
                )
                .cloned()
                .map(Some),
        };
        let grant = match self.grant_type {
            GrantType::ClientCredentials => Some(SalesforceGrant::ClientCredentials),
            GrantType::JwtBearer => {
                let why = "with grant_type = \"jwt_bearer\"";
                let username = c.require(&self.key("username"), &self.username, why).cloned();
                let key = c
                    .require(
                        &self.key("private_key_file"),
                        &self.private_key,
                        "with grant_type = \"jwt_bearer\" (the key whose certificate the connected app holds; `dr-sf-bridge salesforce keygen` makes both)",
                    )
                    .cloned();
                username.zip(key).map(|(username, key)| SalesforceGrant::JwtBearer {
                    username,
                    audience: format!("https://{}", self.environment.login_host()),
                    keys: KeyRing::new(std::iter::once(key).chain(self.next_private_key.clone()).collect()),
                })
            }
            GrantType::Password => {
                let why = "with grant_type = \"password\"";
                let username = c.require(&self.key("username"), &self.username, why).cloned();
                let password = c.require(&self.key("password"), &self.password, why).cloned();
                username
                    .zip(password)
                    .map(|(username, password)| SalesforceGrant::Password { username, password })
            }
        };
        match (token_url, client_id, client_secret, grant) {
            (Some(token_url), Some(client_id), Some(client_secret), Some(grant)) => c.finish(SalesforceCredentials {
                token_url,
                client_id,
                client_secret,
                grant,
            }),
            _ => Err(ConfigProblems(c.0)),
        }
    }

    /// What delivering to Salesforce needs: the org and a complete grant.
    pub(super) fn require_for_delivery(&self, c: &mut Collector) {
        if self.my_domain_url.is_none() {
            c.push_new(
                &self.key("my_domain_url"),
                "is required (https://<name>.my.salesforce.com)",
            );
        }
        if let Err(missing) = self.credentials() {
            c.extend_new(missing.0);
        }
    }
}

impl SalesforceSettings {
    /// The settings keys of this org's private keys (JWT bearer flow), the first one first.
    pub fn signing_key_names(&self) -> Vec<String> {
        self.private_key
            .iter()
            .chain(&self.next_private_key)
            .map(|key| key.name.clone())
            .collect()
    }

    /// The token cache and Apex client of this org; the cache counts its grants into `grants`.
    pub fn apex_client(
        &self,
        delivery: &DeliverySettings,
        grants: Counter,
        key_gauges: Vec<(String, Gauge)>,
        clock: &Clock,
    ) -> Result<ApexClient, ConfigProblems> {
        let sf = self;
        let auth = SalesforceAuth::new(sf.credentials()?, sf.request_timeout)
            .map_err(|e| ConfigProblems::single(&self.key("token_url"), e.to_string()))?
            .with_retries(Backoff {
                retries: sf.token_retries,
                base: sf.token_retry_base_delay,
            })
            .reporting_keys_in(key_gauges);
        let tokens = Arc::new(
            TokenCache::new(auth, sf.token_max_age, sf.token_failure_cooldown)
                .counting_grants_in(grants)
                .with_clock(clock.clone()),
        );
        ApexClient::new(
            sf.webhook_url()?,
            tokens,
            sf.request_timeout,
            delivery.rate_limit_min_delay,
        )
        .map_err(|e| ConfigProblems::single(&self.section, e.to_string()))
    }
}
