//! Configuration: loading the layers, reading secrets, and validating everything at once.
//!
//! An admin who gets one error, fixes it, and then gets the next one loses an evening; so
//! [`RawSettings::validate`] checks every key and reports all problems together, each naming its
//! key. The result, [`Settings`], holds parsed types only ([`ServiceUrl`], [`SalesforceUrl`],
//! [`EventType`], ...): code past this module never sees a raw URL or event type.
//!
//! Secrets are [`SecretString`]s from the moment they are read; they can be given inline
//! (environment) or as `KEY_file` (a path whose content is the secret, as container secrets are
//! mounted).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::{EventType, SalesforceUrl, ServiceUrl};

const DEFAULT_TOML: &str = include_str!("../config/default.toml");
const SANDBOX_TOML: &str = include_str!("../config/sandbox.toml");
const PRODUCTION_TOML: &str = include_str!("../config/production.toml");

/// Keys whose value is a secret and may be given as `KEY_file` instead.
const SECRET_KEYS: [&str; 9] = [
    "digital_river.api_key",
    "digital_river.signing_secrets",
    "salesforce.client_secret",
    "salesforce.password",
    "relay.inbound_client_secret",
    "relay.inbound_password",
    "relay.inbound_token_key",
    "relay.basic_password",
    "relay.admin_token",
];

pub const LOGIN_HOST: &str = "login.salesforce.com";
pub const TEST_HOST: &str = "test.salesforce.com";
pub const TOKEN_PATH: &str = "/services/oauth2/token";

/// Where to read configuration from; filled from the command line.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `sandbox` or `production` (`--env` / `DRSF_ENV`).
    pub env: Option<String>,
    /// An extra file layered over the defaults (`--config`).
    pub config_file: Option<PathBuf>,
    /// The folder holding `default.toml`, `sandbox.toml`, `production.toml`; `config` when unset.
    pub config_dir: Option<PathBuf>,
    /// Values set last, over every layer (`("salesforce.max_in_flight", "4")`): for tests and
    /// embedding.
    pub overrides: Vec<(String, String)>,
}

/// What a command needs from the configuration, so that validation can report every missing key
/// for that command in one go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Commands that only read or change webhooks on the DR API.
    DigitalRiverApi,
    /// `register` / `unregister` with the given target.
    Register(RegisterTarget),
    /// Talking to Salesforce (delivery, `check`).
    Salesforce,
    /// The relay: inbound auth, Salesforce and the store.
    Relay,
    /// Commands that only need the store.
    Store,
    /// `check`: the DR API and Salesforce.
    Check,
}

/// One invalid or missing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

/// Every problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigProblems(pub Vec<Problem>);

impl ConfigProblems {
    fn single(key: &str, message: impl Into<String>) -> Self {
        Self(vec![Problem {
            key: key.to_owned(),
            message: message.into(),
        }])
    }
}

impl fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            write!(f, "\n  - {}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Collector(Vec<Problem>);

impl Collector {
    fn push(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn parse<T>(&mut self, key: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|m| self.push(key, m)).ok()
    }

    /// Adds `problems` whose key has no problem yet (a key that is invalid is not also "required").
    fn extend_new(&mut self, problems: impl IntoIterator<Item = Problem>) {
        for p in problems {
            if !self.0.iter().any(|q| q.key == p.key) {
                self.0.push(p);
            }
        }
    }

    fn push_new(&mut self, key: &str, message: impl Into<String>) {
        self.extend_new([Problem {
            key: key.to_owned(),
            message: message.into(),
        }]);
    }

    fn require<'a, T>(&mut self, key: &str, value: &'a Option<T>, why: &str) -> Option<&'a T> {
        if value.is_none() {
            self.push(key, format!("is required {why}"));
        }
        value.as_ref()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SalesforceEnvironment {
    Sandbox,
    Production,
}

impl SalesforceEnvironment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Production => "production",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    Password,
    ClientCredentials,
}

impl GrantType {
    /// The OAuth `grant_type` value, as DR's `oauth.grantType` and Salesforce expect it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::ClientCredentials => "client_credentials",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum RegisterTarget {
    /// DR posts straight to Salesforce (setup step 11).
    Salesforce,
    /// DR posts to the relay, which delivers to Salesforce.
    Relay,
}

impl RegisterTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Salesforce => "salesforce",
            Self::Relay => "relay",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw layer: what the config crate deserializes. Strings stay strings until `validate`. Each key is
// documented, with its unit, in config/default.toml (compiled in as the built-in defaults).

#[derive(Debug, Deserialize)]
pub struct RawSettings {
    pub digital_river: RawDigitalRiver,
    pub salesforce: RawSalesforce,
    pub relay: RawRelay,
    pub delivery: RawDelivery,
    pub storage: RawStorage,
    pub register: RawRegister,
}

#[derive(Debug, Deserialize)]
pub struct RawDigitalRiver {
    pub api_base_url: String,
    pub api_key: Option<SecretString>,
    pub api_version: String,
    #[serde(deserialize_with = "list_or_csv")]
    pub event_types: Vec<String>,
    #[serde(deserialize_with = "secret_list_or_csv")]
    pub signing_secrets: Vec<SecretString>,
    pub signature_tolerance_secs: u64,
    pub request_timeout_secs: u64,
    pub max_retries: u32,
    pub retry_base_delay_ms: u64,
}

#[derive(Debug, Deserialize)]
pub struct RawSalesforce {
    pub environment: String,
    pub my_domain_url: Option<String>,
    pub token_url: Option<String>,
    pub grant_type: String,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub webhook_path: String,
    pub max_in_flight: usize,
    pub request_timeout_secs: u64,
    pub token_max_age_secs: u64,
    pub token_failure_cooldown_secs: u64,
    pub token_retries: u32,
    pub token_retry_base_delay_ms: u64,
}

#[derive(Debug, Deserialize)]
pub struct RawRelay {
    pub listen: String,
    pub public_url: Option<String>,
    pub body_limit_bytes: usize,
    pub inbound_grant_type: String,
    pub inbound_client_id: Option<String>,
    pub inbound_client_secret: Option<SecretString>,
    pub inbound_username: Option<String>,
    pub inbound_password: Option<SecretString>,
    pub inbound_token_key: Option<SecretString>,
    pub inbound_token_ttl_secs: u64,
    pub basic_username: Option<String>,
    pub basic_password: Option<SecretString>,
    pub admin_token: Option<SecretString>,
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Deserialize)]
pub struct RawDelivery {
    #[serde(deserialize_with = "list_or_csv")]
    pub retry_schedule: Vec<String>,
    pub max_attempts_on_400: u32,
    pub rate_limit_min_delay_secs: u64,
    pub breaker_threshold: u32,
    pub breaker_cooldown_secs: u64,
    pub poll_interval_ms: u64,
}

#[derive(Debug, Deserialize)]
pub struct RawStorage {
    pub url: String,
    pub retention_days: u32,
}

#[derive(Debug, Deserialize)]
pub struct RawRegister {
    pub target: String,
}

/// A list given as a list (files) or as one comma-separated string (environment, where an empty
/// value means an empty list).
fn list_or_csv<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrCsv {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match ListOrCsv::deserialize(deserializer)? {
        ListOrCsv::List(items) => items,
        ListOrCsv::Csv(text) => text
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    })
}

fn secret_list_or_csv<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<SecretString>, D::Error> {
    Ok(list_or_csv(deserializer)?.into_iter().map(SecretString::from).collect())
}

// ---------------------------------------------------------------------------------------------
// Validated settings.

#[derive(Debug)]
pub struct Settings {
    pub digital_river: DigitalRiverSettings,
    pub salesforce: SalesforceSettings,
    pub relay: RelaySettings,
    pub delivery: DeliverySettings,
    pub storage: StorageSettings,
    pub register: RegisterSettings,
}

#[derive(Debug)]
pub struct DigitalRiverSettings {
    /// Base URL of DR's API (`https://api.digitalriver.com`).
    pub api_base_url: ServiceUrl,
    /// DR secret key; required by the commands that call DR's API.
    pub api_key: Option<SecretString>,
    /// `apiVersion` of the webhook `register` creates: `default` or a date.
    pub api_version: String,
    /// The subscription, and the types the relay delivers (others are ignored).
    pub event_types: Vec<EventType>,
    /// Signing secrets, current first; empty: signatures are not checked.
    pub signing_secrets: Vec<SecretString>,
    /// Maximum age of a signature timestamp (seconds in the configuration).
    pub signature_tolerance: Duration,
    /// Timeout of one DR API call (seconds in the configuration).
    pub request_timeout: Duration,
    /// Retries of a DR API call after a 429, a 5xx or a connection error.
    pub max_retries: u32,
    /// Delay before the first such retry, doubling after (milliseconds in the configuration).
    pub retry_base_delay: Duration,
}

#[derive(Debug)]
pub struct SalesforceSettings {
    /// Sandbox or production: picks the password grant's token host.
    pub environment: SalesforceEnvironment,
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
    /// Path of the DR package's Apex REST resource.
    pub webhook_path: String,
    /// Most deliveries to Salesforce at once.
    pub max_in_flight: usize,
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

/// The complete set of values a Salesforce grant needs; built only from validated settings.
#[derive(Debug, Clone)]
pub struct SalesforceCredentials {
    pub token_url: ServiceUrl,
    pub client_id: String,
    pub client_secret: SecretString,
    pub grant: SalesforceGrant,
}

#[derive(Debug, Clone)]
pub enum SalesforceGrant {
    Password { username: String, password: SecretString },
    ClientCredentials,
}

impl SalesforceGrant {
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::Password { .. } => GrantType::Password,
            Self::ClientCredentials => GrantType::ClientCredentials,
        }
    }
}

impl SalesforceSettings {
    /// The Apex REST URL events are posted to.
    pub fn webhook_url(&self) -> Result<String, ConfigProblems> {
        let base = self.my_domain_url.as_ref().ok_or_else(|| {
            ConfigProblems::single(
                "salesforce.my_domain_url",
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
                "salesforce.token_url",
                "cannot be derived: set salesforce.my_domain_url (or salesforce.token_url)",
            );
        }
        let client_id = c
            .require(
                "salesforce.client_id",
                &self.client_id,
                "(the connected app's consumer key)",
            )
            .cloned();
        let client_secret = c
            .require(
                "salesforce.client_secret",
                &self.client_secret,
                "(the connected app's consumer secret)",
            )
            .cloned();
        let grant = match self.grant_type {
            GrantType::ClientCredentials => Some(SalesforceGrant::ClientCredentials),
            GrantType::Password => {
                let why = "with grant_type = \"password\"";
                let username = c.require("salesforce.username", &self.username, why).cloned();
                let password = c.require("salesforce.password", &self.password, why).cloned();
                username
                    .zip(password)
                    .map(|(username, password)| SalesforceGrant::Password { username, password })
            }
        };
        match (token_url, client_id, client_secret, grant) {
            (Some(token_url), Some(client_id), Some(client_secret), Some(grant)) if c.0.is_empty() => {
                Ok(SalesforceCredentials {
                    token_url,
                    client_id,
                    client_secret,
                    grant,
                })
            }
            _ => Err(ConfigProblems(c.0)),
        }
    }
}

#[derive(Debug)]
pub struct RelaySettings {
    /// Address the relay binds (host:port).
    pub listen: String,
    /// The URL DR reaches the relay at (for `register --target relay`).
    pub public_url: Option<ServiceUrl>,
    /// Larger request bodies get 413, in bytes.
    pub body_limit_bytes: usize,
    /// The grant DR uses at the relay's `/oauth2/token`.
    pub inbound_grant_type: GrantType,
    /// Client id DR presents.
    pub inbound_client_id: Option<String>,
    /// Client secret DR presents.
    pub inbound_client_secret: Option<SecretString>,
    /// User name DR presents with the password grant.
    pub inbound_username: Option<String>,
    /// Password DR presents with the password grant.
    pub inbound_password: Option<SecretString>,
    /// Key that signs the relay's tokens, shared by every instance.
    pub inbound_token_key: Option<SecretString>,
    /// Lifetime of the relay's tokens (seconds in the configuration).
    pub inbound_token_ttl: Duration,
    /// Basic auth user name, instead of OAuth.
    pub basic_username: Option<String>,
    /// Basic auth password.
    pub basic_password: Option<SecretString>,
    /// Bearer token of the admin API (`/admin/...`); no admin API when unset.
    pub admin_token: Option<SecretString>,
    /// Bound on a graceful shutdown (seconds in the configuration).
    pub shutdown_timeout: Duration,
}

/// What DR must present to the relay's `/oauth2/token`.
#[derive(Debug, Clone)]
pub struct InboundOAuth {
    pub public_url: ServiceUrl,
    pub client_id: String,
    pub client_secret: SecretString,
    /// `Some` with the password grant.
    pub user: Option<(String, SecretString)>,
}

impl RelaySettings {
    pub fn inbound_oauth(&self) -> Result<InboundOAuth, ConfigProblems> {
        let mut c = Collector::default();
        let why = "for DR's OAuth transport to the relay";
        let public_url = c
            .require(
                "relay.public_url",
                &self.public_url,
                "(the https:// URL DR reaches the relay at)",
            )
            .cloned();
        let client_id = c
            .require("relay.inbound_client_id", &self.inbound_client_id, why)
            .cloned();
        let client_secret = c
            .require("relay.inbound_client_secret", &self.inbound_client_secret, why)
            .cloned();
        let user = match self.inbound_grant_type {
            GrantType::ClientCredentials => None,
            GrantType::Password => {
                let why = "with relay.inbound_grant_type = \"password\"";
                let u = c
                    .require("relay.inbound_username", &self.inbound_username, why)
                    .cloned();
                let p = c
                    .require("relay.inbound_password", &self.inbound_password, why)
                    .cloned();
                u.zip(p)
            }
        };
        match (public_url, client_id, client_secret) {
            (Some(public_url), Some(client_id), Some(client_secret)) if c.0.is_empty() => Ok(InboundOAuth {
                public_url,
                client_id,
                client_secret,
                user,
            }),
            _ => Err(ConfigProblems(c.0)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Delay before each attempt; after the last one the event is dead.
    pub retry_schedule: Vec<Duration>,
    /// Attempts answered 400 before the event is dead.
    pub max_attempts_on_400: u32,
    /// Least delay after `REQUEST_LIMIT_EXCEEDED` (seconds in the configuration).
    pub rate_limit_min_delay: Duration,
    /// Consecutive failures across events that pause deliveries.
    pub breaker_threshold: u32,
    /// How long deliveries pause before a trial (seconds in the configuration).
    pub breaker_cooldown: Duration,
    /// Longest idle wait of the worker (milliseconds in the configuration).
    pub poll_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// `sqlite://path` (or `postgres://...`, not in this build).
    pub url: String,
    /// Delivered and ignored events are pruned after this many days.
    pub retention_days: u32,
}

#[derive(Debug, Clone)]
pub struct RegisterSettings {
    /// What `register` points DR at by default.
    pub target: RegisterTarget,
}

impl DigitalRiverSettings {
    pub fn api_key(&self) -> Result<&SecretString, ConfigProblems> {
        self.api_key.as_ref().ok_or_else(|| {
            ConfigProblems::single(
                "digital_river.api_key",
                "is required (DR secret key, sk_test_... or live)",
            )
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Loading.

/// Reads every layer and the secret files, without validating values yet.
pub fn load_raw(options: &LoadOptions) -> Result<RawSettings, ConfigProblems> {
    let dir = options.config_dir.clone().unwrap_or_else(|| PathBuf::from("config"));
    let env_name = match options.env.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        None => None,
        Some(e @ ("sandbox" | "production")) => Some(e.to_owned()),
        Some(other) => {
            return Err(ConfigProblems::single(
                "--env / DRSF_ENV",
                format!("`{other}` is not an environment; use `sandbox` or `production`"),
            ));
        }
    };

    let mut builder = Config::builder()
        .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
        .add_source(File::from(dir.join("default.toml")).required(false));
    if let Some(env_name) = &env_name {
        let embedded = if env_name == "sandbox" {
            SANDBOX_TOML
        } else {
            PRODUCTION_TOML
        };
        let on_disk = dir.join(format!("{env_name}.toml"));
        builder = if on_disk.exists() {
            builder.add_source(File::from(on_disk))
        } else {
            builder.add_source(File::from_str(embedded, FileFormat::Toml))
        };
    }
    if let Some(file) = &options.config_file {
        if !file.exists() {
            return Err(ConfigProblems::single(
                "--config",
                format!("file {} does not exist", file.display()),
            ));
        }
        builder = builder.add_source(File::from(file.clone()));
    }
    builder = builder.add_source(
        Environment::with_prefix("DRSF")
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("digital_river.event_types")
            .with_list_parse_key("digital_river.signing_secrets")
            .with_list_parse_key("delivery.retry_schedule")
            .try_parsing(false),
    );
    for (key, value) in &options.overrides {
        builder = builder
            .set_override(key.as_str(), value.as_str())
            .map_err(|e| ConfigProblems::single(key, e.to_string()))?;
    }
    let layered = builder
        .build()
        .map_err(|e| ConfigProblems::single("configuration", e.to_string()))?;

    let mut problems = Collector::default();
    let mut with_secrets = Config::builder().add_source(layered.clone());
    for key in SECRET_KEYS {
        let file_key = format!("{key}_file");
        let Ok(path) = layered.get_string(&file_key) else {
            continue;
        };
        if layered.get::<config::Value>(key).is_ok_and(|v| !is_empty_value(&v)) {
            problems.push(key, format!("is given both inline and as {file_key}; keep one"));
            continue;
        }
        match read_secret_file(Path::new(&path)) {
            Ok(content) if key == "digital_river.signing_secrets" => {
                let lines: Vec<String> = content
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect();
                with_secrets = with_secrets
                    .set_override(key, lines)
                    .expect("a list is a valid override");
            }
            Ok(content) => {
                with_secrets = with_secrets
                    .set_override(key, content)
                    .expect("a string is a valid override")
            }
            Err(e) => problems.push(&file_key, e),
        }
    }
    if !problems.0.is_empty() {
        return Err(ConfigProblems(problems.0));
    }
    let merged = with_secrets
        .build()
        .map_err(|e| ConfigProblems::single("configuration", e.to_string()))?;
    merged.try_deserialize::<RawSettings>().map_err(|e| {
        // The config crate names the key in its message ("invalid type ... for key `x.y`").
        let text = e.to_string();
        let key = text
            .split("for key `")
            .nth(1)
            .and_then(|rest| rest.split('`').next())
            .unwrap_or("configuration");
        let message = text.split(" for key `").next().unwrap_or(&text);
        ConfigProblems::single(key, message)
    })
}

fn is_empty_value(v: &config::Value) -> bool {
    match &v.kind {
        config::ValueKind::Nil => true,
        config::ValueKind::String(s) => s.is_empty(),
        config::ValueKind::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn read_secret_file(path: &Path) -> Result<String, String> {
    let content = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // Files written by `echo` end in a newline that is not part of the secret.
    Ok(content.trim_end_matches(['\n', '\r']).to_owned())
}

/// Loads and validates for a purpose: the one entry point commands use.
pub fn load(options: &LoadOptions, purpose: Purpose) -> Result<Settings, ConfigProblems> {
    load_raw(options)?.validate(purpose)
}

fn non_empty_string(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(String::from)
}

fn non_empty_secret(v: &Option<SecretString>) -> Option<SecretString> {
    v.as_ref().filter(|s| !s.expose_secret().is_empty()).cloned()
}

fn parse_enum<T: for<'de> Deserialize<'de>>(raw: &str, allowed: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(raw.trim().to_owned()))
        .map_err(|_| format!("`{raw}` is not one of {allowed}"))
}

fn host_of(url: &ServiceUrl) -> String {
    url.host().to_ascii_lowercase()
}

impl RawSettings {
    /// `register.target`, when it names a target.
    pub fn register_target(&self) -> Option<RegisterTarget> {
        parse_enum(&self.register.target, "").ok()
    }

    /// Parses every value and checks the rules that tie keys together; reports all problems.
    pub fn validate(&self, purpose: Purpose) -> Result<Settings, ConfigProblems> {
        let mut c = Collector::default();

        // Digital River.
        let dr = &self.digital_river;
        let api_base_url = c.parse("digital_river.api_base_url", ServiceUrl::parse(&dr.api_base_url));
        let mut event_types = Vec::new();
        for raw in dr.event_types.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            if let Some(t) = c.parse("digital_river.event_types", EventType::parse(raw)) {
                if !event_types.contains(&t) {
                    event_types.push(t);
                }
            }
        }
        if dr.event_types.iter().all(|t| t.trim().is_empty()) {
            c.push(
                "digital_river.event_types",
                format!(
                    "is empty; subscribe to at least one event type (default: {})",
                    EventType::SUPPORTED.join(", ")
                ),
            );
        }
        let api_version = dr.api_version.trim().to_owned();
        if api_version != "default" && !is_dated_version(&api_version) {
            c.push(
                "digital_river.api_version",
                format!("`{api_version}` is neither \"default\" nor a date such as 2021-12-13"),
            );
        }
        let signing_secrets: Vec<SecretString> = dr
            .signing_secrets
            .iter()
            .filter(|s| !s.expose_secret().trim().is_empty())
            .cloned()
            .collect();
        if signing_secrets.len() > 2 {
            c.push(
                "digital_river.signing_secrets",
                "holds more than two secrets; keep the current one and, during a rotation, the previous one",
            );
        }
        let api_key = non_empty_secret(&dr.api_key);

        // Salesforce.
        let sf = &self.salesforce;
        let environment: Option<SalesforceEnvironment> = c.parse(
            "salesforce.environment",
            parse_enum(&sf.environment, "`sandbox`, `production`"),
        );
        let grant_type: Option<GrantType> = c.parse(
            "salesforce.grant_type",
            parse_enum(&sf.grant_type, "`password`, `client_credentials`"),
        );
        let my_domain_url = non_empty_string(&sf.my_domain_url)
            .and_then(|raw| c.parse("salesforce.my_domain_url", SalesforceUrl::parse(&raw)));
        let explicit_token_url = non_empty_string(&sf.token_url)
            .and_then(|raw| c.parse("salesforce.token_url", SalesforceUrl::parse_any(&raw)));
        let token_url = match (&explicit_token_url, grant_type, environment) {
            (Some(url), _, _) => Some(url.clone()),
            (None, Some(GrantType::ClientCredentials), _) => my_domain_url
                .as_ref()
                .map(|d| ServiceUrl::parse(&d.join_path(TOKEN_PATH)).expect("a My Domain URL plus a path is a URL")),
            (None, Some(GrantType::Password), Some(env)) => {
                let host = if env == SalesforceEnvironment::Sandbox {
                    TEST_HOST
                } else {
                    LOGIN_HOST
                };
                Some(ServiceUrl::parse(&format!("https://{host}{TOKEN_PATH}")).expect("a constant URL"))
            }
            _ => None,
        };
        if let (Some(GrantType::ClientCredentials), Some(url)) = (grant_type, &token_url) {
            let host = host_of(url);
            if host == LOGIN_HOST || host == TEST_HOST {
                c.push(
                    "salesforce.grant_type",
                    format!(
                        "client_credentials does not work on {host} (Salesforce answers \"request not supported on this domain\"); \
                         set salesforce.token_url to the My Domain token URL, https://<name>.my.salesforce.com{TOKEN_PATH}, or leave it unset"
                    ),
                );
            }
        }
        if let (Some(GrantType::ClientCredentials), None, None) = (grant_type, &explicit_token_url, &my_domain_url) {
            c.push_new(
                "salesforce.my_domain_url",
                "is required with grant_type = \"client_credentials\": the grant works only on the My Domain host",
            );
        }
        if let Some(env) = environment {
            let mut hosts: Vec<(&str, String)> = Vec::new();
            if let Some(url) = &explicit_token_url {
                hosts.push(("salesforce.token_url", host_of(url)));
            }
            if let Some(url) = &my_domain_url {
                hosts.push(("salesforce.my_domain_url", url.host().to_ascii_lowercase()));
            }
            for (key, host) in hosts {
                let sandbox_host = host == TEST_HOST || host.ends_with(".sandbox.my.salesforce.com");
                let production_host = host == LOGIN_HOST;
                if env == SalesforceEnvironment::Sandbox && production_host {
                    c.push(key, format!("{host} is the production host but salesforce.environment = \"sandbox\"; use https://{TEST_HOST} or the sandbox's My Domain, or set environment = \"production\""));
                }
                if env == SalesforceEnvironment::Production && sandbox_host {
                    c.push(key, format!("{host} is a sandbox host but salesforce.environment = \"production\"; use https://{LOGIN_HOST} or the org's My Domain, or set environment = \"sandbox\""));
                }
            }
        }
        let webhook_path = sf.webhook_path.trim().to_owned();
        if !webhook_path.starts_with("/services/apexrest/") {
            c.push("salesforce.webhook_path", format!("`{webhook_path}` must start with /services/apexrest/ (default /services/apexrest/digitalriverv3/webhooks/)"));
        }
        if sf.max_in_flight == 0 {
            c.push("salesforce.max_in_flight", "must be at least 1");
        } else if sf.max_in_flight > 10 {
            c.push(
                "salesforce.max_in_flight",
                format!(
                    "{} exceeds Salesforce's default limit of 10 concurrent long-running Apex requests",
                    sf.max_in_flight
                ),
            );
        }
        check_positive(&mut c, "salesforce.request_timeout_secs", sf.request_timeout_secs);
        check_positive(&mut c, "salesforce.token_max_age_secs", sf.token_max_age_secs);

        // Relay.
        let r = &self.relay;
        let public_url =
            non_empty_string(&r.public_url).and_then(|raw| c.parse("relay.public_url", ServiceUrl::parse(&raw)));
        if let Some(url) = &public_url {
            if url.url().path() != "/" || url.url().query().is_some() {
                c.push(
                    "relay.public_url",
                    "must be the relay's base URL without a path (the relay adds /webhooks/digitalriver)",
                );
            }
        }
        let inbound_grant_type: Option<GrantType> = c.parse(
            "relay.inbound_grant_type",
            parse_enum(&r.inbound_grant_type, "`client_credentials`, `password`"),
        );
        if r.listen.parse::<std::net::SocketAddr>().is_err() {
            c.push(
                "relay.listen",
                format!("`{}` is not a host:port address such as 127.0.0.1:8080", r.listen),
            );
        }
        if r.body_limit_bytes < 1024 {
            c.push("relay.body_limit_bytes", "must be at least 1024");
        }
        check_positive(&mut c, "relay.inbound_token_ttl_secs", r.inbound_token_ttl_secs);
        let basic_username = non_empty_string(&r.basic_username);
        let basic_password = non_empty_secret(&r.basic_password);
        if basic_username.is_some() != basic_password.is_some() {
            c.push(
                "relay.basic_password",
                "relay.basic_username and relay.basic_password go together",
            );
        }
        let inbound_token_key = non_empty_secret(&r.inbound_token_key);
        if non_empty_secret(&r.admin_token).is_some_and(|k| k.expose_secret().len() < 24) {
            c.push("relay.admin_token", "must be at least 24 characters");
        }
        if inbound_token_key.as_ref().is_some_and(|k| k.expose_secret().len() < 32) {
            c.push("relay.inbound_token_key", "must be at least 32 characters");
        }

        // Delivery and storage.
        let d = &self.delivery;
        let mut retry_schedule = Vec::new();
        for raw in &d.retry_schedule {
            match humantime::parse_duration(raw.trim()) {
                Ok(delay) => retry_schedule.push(delay),
                Err(e) => c.push(
                    "delivery.retry_schedule",
                    format!("`{raw}` is not a duration such as 5s, 5m, 2h ({e})"),
                ),
            }
        }
        if d.retry_schedule.is_empty() {
            c.push("delivery.retry_schedule", "is empty; give at least one delay (\"0s\")");
        }
        check_positive(&mut c, "delivery.max_attempts_on_400", u64::from(d.max_attempts_on_400));
        check_positive(&mut c, "delivery.breaker_threshold", u64::from(d.breaker_threshold));
        check_positive(&mut c, "delivery.poll_interval_ms", d.poll_interval_ms);
        let storage_url = self.storage.url.trim().to_owned();
        if !(storage_url.starts_with("sqlite://")
            || storage_url.starts_with("postgres://")
            || storage_url.starts_with("postgresql://"))
        {
            c.push(
                "storage.url",
                format!("`{storage_url}` must start with sqlite:// or postgres://"),
            );
        }
        let target: Option<RegisterTarget> = c.parse(
            "register.target",
            parse_enum(&self.register.target, "`salesforce`, `relay`"),
        );

        let settings = Settings {
            digital_river: DigitalRiverSettings {
                api_base_url: api_base_url
                    .unwrap_or_else(|| ServiceUrl::parse("https://api.digitalriver.com").expect("constant")),
                api_key,
                api_version,
                event_types,
                signing_secrets,
                signature_tolerance: Duration::from_secs(dr.signature_tolerance_secs),
                request_timeout: Duration::from_secs(dr.request_timeout_secs.max(1)),
                max_retries: dr.max_retries,
                retry_base_delay: Duration::from_millis(dr.retry_base_delay_ms),
            },
            salesforce: SalesforceSettings {
                environment: environment.unwrap_or(SalesforceEnvironment::Sandbox),
                my_domain_url,
                token_url,
                grant_type: grant_type.unwrap_or(GrantType::Password),
                client_id: non_empty_string(&sf.client_id),
                client_secret: non_empty_secret(&sf.client_secret),
                username: non_empty_string(&sf.username),
                password: non_empty_secret(&sf.password),
                webhook_path,
                max_in_flight: sf.max_in_flight.max(1),
                request_timeout: Duration::from_secs(sf.request_timeout_secs.max(1)),
                token_max_age: Duration::from_secs(sf.token_max_age_secs.max(1)),
                token_failure_cooldown: Duration::from_secs(sf.token_failure_cooldown_secs),
                token_retries: sf.token_retries,
                token_retry_base_delay: Duration::from_millis(sf.token_retry_base_delay_ms),
            },
            relay: RelaySettings {
                listen: r.listen.trim().to_owned(),
                public_url,
                body_limit_bytes: r.body_limit_bytes,
                inbound_grant_type: inbound_grant_type.unwrap_or(GrantType::ClientCredentials),
                inbound_client_id: non_empty_string(&r.inbound_client_id),
                inbound_client_secret: non_empty_secret(&r.inbound_client_secret),
                inbound_username: non_empty_string(&r.inbound_username),
                inbound_password: non_empty_secret(&r.inbound_password),
                inbound_token_key,
                inbound_token_ttl: Duration::from_secs(r.inbound_token_ttl_secs.max(1)),
                basic_username,
                basic_password,
                admin_token: non_empty_secret(&r.admin_token),
                shutdown_timeout: Duration::from_secs(r.shutdown_timeout_secs),
            },
            delivery: DeliverySettings {
                retry_schedule,
                max_attempts_on_400: d.max_attempts_on_400.max(1),
                rate_limit_min_delay: Duration::from_secs(d.rate_limit_min_delay_secs),
                breaker_threshold: d.breaker_threshold.max(1),
                breaker_cooldown: Duration::from_secs(d.breaker_cooldown_secs),
                poll_interval: Duration::from_millis(d.poll_interval_ms.max(1)),
            },
            storage: StorageSettings {
                url: storage_url,
                retention_days: self.storage.retention_days,
            },
            register: RegisterSettings {
                target: target.unwrap_or(RegisterTarget::Salesforce),
            },
        };

        // Presence checks for what this command needs.
        let needs_dr_api = matches!(
            purpose,
            Purpose::DigitalRiverApi | Purpose::Register(_) | Purpose::Check
        );
        if needs_dr_api && settings.digital_river.api_key.is_none() {
            c.push(
                "digital_river.api_key",
                "is required (DR secret key, sk_test_... in test mode)",
            );
        }
        let needs_salesforce = matches!(
            purpose,
            Purpose::Salesforce | Purpose::Relay | Purpose::Check | Purpose::Register(RegisterTarget::Salesforce)
        );
        if needs_salesforce && grant_type.is_some() && environment.is_some() {
            if settings.salesforce.my_domain_url.is_none() {
                c.push_new(
                    "salesforce.my_domain_url",
                    "is required (https://<name>.my.salesforce.com)",
                );
            }
            if let Err(missing) = settings.salesforce.credentials() {
                c.extend_new(missing.0);
            }
        }
        if purpose == Purpose::Register(RegisterTarget::Relay) && inbound_grant_type.is_some() {
            if let Err(missing) = settings.relay.inbound_oauth() {
                c.extend_new(missing.0);
            }
        }
        if purpose == Purpose::Relay {
            let has_oauth = settings.relay.inbound_client_id.is_some();
            let has_basic = settings.relay.basic_username.is_some();
            if !has_oauth && !has_basic {
                c.push("relay.inbound_client_id", "is required: the relay accepts events only from an authenticated DR (set inbound_client_id/inbound_client_secret/inbound_token_key, or basic_username/basic_password)");
            }
            if has_oauth {
                if settings.relay.inbound_client_secret.is_none() {
                    c.push(
                        "relay.inbound_client_secret",
                        "is required with relay.inbound_client_id",
                    );
                }
                if settings.relay.inbound_token_key.is_none() {
                    c.push_new("relay.inbound_token_key", "is required with relay.inbound_client_id (at least 32 characters; shared by every relay instance)");
                }
                if settings.relay.inbound_grant_type == GrantType::Password
                    && (settings.relay.inbound_username.is_none() || settings.relay.inbound_password.is_none())
                {
                    c.push("relay.inbound_username", "relay.inbound_username and relay.inbound_password are required with relay.inbound_grant_type = \"password\"");
                }
            }
        }

        if c.0.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigProblems(c.0))
        }
    }
}

fn check_positive(c: &mut Collector, key: &str, value: u64) {
    if value == 0 {
        c.push(key, "must be greater than 0");
    }
}

fn is_dated_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, ch)| i == 4 || i == 7 || ch.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_versions_are_recognised() {
        assert!(is_dated_version("2021-12-13"));
        assert!(!is_dated_version("2021-1213"));
        assert!(!is_dated_version("latest"));
    }
}
