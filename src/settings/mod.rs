//! Configuration: loading the layers, reading secrets, and validating everything at once.
//!
//! An admin who gets one error, fixes it, and then gets the next one loses an evening; so
//! [`RawSettings::validate`] checks every key and reports all problems together, each naming its
//! key. Each section lives in its own file ([`digital_river`], [`salesforce`], [`relay`],
//! [`delivery`], [`storage`]) with its settings struct and its own rules; this module layers the
//! sources, reads secret files, and asks each section to read itself.
//!
//! One struct per section: serde would stop at the first bad value, and an admin must see every
//! problem at once. So each section reads its keys one by one through a [`Reader`] that parses
//! as it goes ([`ServiceUrl`](crate::domain::ServiceUrl), [`EventType`](crate::domain::EventType),
//! ...) and records a problem per bad key: code past this module never sees a raw URL or event
//! type.
//!
//! Secrets are [`SecretString`]s from the moment they are read; they can be given inline
//! (environment) or as `KEY_file` (a path whose content is the secret, as container secrets are
//! mounted).

pub mod confirm;
pub mod delivery;
pub mod digital_river;
pub mod notify;
pub mod problems;
pub mod reconcile;
pub mod relay;
pub mod salesforce;
pub mod storage;
pub mod targets;
pub mod telemetry;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use secrecy::SecretString;

use crate::domain::Mode;

pub use delivery::DeliverySettings;
pub use digital_river::DigitalRiverSettings;
pub use problems::{Collector, ConfigProblems, Problem, Reader};
pub use relay::{ConnectionLimits, InboundOAuth, InboundSettings, RelaySettings};
pub use salesforce::SalesforceSettings;
pub use storage::{RegisterSettings, RegisterTarget, StorageSettings};
pub use targets::SalesforceTargets;

const DEFAULT_TOML: &str = include_str!("../../config/default.toml");
const SANDBOX_TOML: &str = include_str!("../../config/sandbox.toml");
const PRODUCTION_TOML: &str = include_str!("../../config/production.toml");

/// Keys whose value is a secret and may be given as `KEY_file` instead.
const SECRET_KEYS: [&str; 25] = [
    "digital_river.api_key",
    "digital_river.signing_secrets",
    "digital_river.test.api_key",
    "digital_river.test.signing_secrets",
    "digital_river.live.api_key",
    "digital_river.live.signing_secrets",
    "salesforce.client_secret",
    "salesforce.password",
    "salesforce.test.client_secret",
    "salesforce.test.password",
    "salesforce.live.client_secret",
    "salesforce.live.password",
    "salesforce.private_key",
    "salesforce.next_private_key",
    "salesforce.test.private_key",
    "salesforce.test.next_private_key",
    "salesforce.live.private_key",
    "salesforce.live.next_private_key",
    "relay.inbound_client_secret",
    "relay.inbound_password",
    "relay.inbound_token_key",
    "relay.basic_password",
    "relay.admin_token",
    "notify.signing_secret",
    "storage.password",
];

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
    /// Leave `DRSF__*` variables out (`demo`, which must not pick up a real org's settings).
    pub ignore_environment: bool,
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
    /// `events backfill`: the DR API (each mode's key) and the store.
    Backfill,
}

impl Purpose {
    fn needs_dr_api(self) -> bool {
        matches!(
            self,
            Self::DigitalRiverApi | Self::Register(_) | Self::Check | Self::Backfill
        )
    }

    fn needs_salesforce(self) -> bool {
        matches!(
            self,
            Self::Salesforce | Self::Relay | Self::Check | Self::Register(RegisterTarget::Salesforce)
        )
    }
}

/// Every layer merged, secret files read, nothing validated yet.
#[derive(Clone)]
pub struct RawSettings(Config);

impl std::fmt::Debug for RawSettings {
    /// The raw layers hold secrets as plain text: their values are never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawSettings(..)")
    }
}

/// The validated configuration: parsed types only.
#[derive(Debug)]
pub struct Settings {
    pub digital_river: DigitalRiverSettings,
    /// One org, or a sandbox for test events and production for live ones.
    pub salesforce: SalesforceTargets,
    pub relay: RelaySettings,
    pub delivery: DeliverySettings,
    pub reconcile: reconcile::ReconcileSettings,
    /// The sweep of the DR package's failure records in each org.
    pub confirm: confirm::ConfirmSettings,
    /// Who is told of the conditions an admin must act on, and how.
    pub notify: notify::NotifySettings,
    pub storage: StorageSettings,
    pub register: RegisterSettings,
    /// Traces over OpenTelemetry.
    pub telemetry: telemetry::TelemetrySettings,
}

impl Settings {
    /// The DR key that manages `mode`'s webhooks: the mode's own key; with one Salesforce target,
    /// also the section's key whatever its mode (`check` warns when it is of the other mode).
    pub fn dr_key(&self, mode: Mode) -> Result<&SecretString, ConfigProblems> {
        let own = self.digital_river.api_key_for(mode);
        if own.is_err() && !self.salesforce.by_mode_sections() {
            return self.digital_river.api_key();
        }
        own
    }
}

impl RawSettings {
    /// `register.target`, when it names a target.
    pub fn register_target(&self) -> Option<RegisterTarget> {
        let raw = self.0.get_string(RegisterSettings::TARGET_KEY).ok()?;
        problems::one_of(&raw, RegisterSettings::TARGETS).ok()
    }

    /// Parses every value and checks the rules that tie keys together; reports all problems.
    pub fn validate(&self, purpose: Purpose) -> Result<Settings, ConfigProblems> {
        let mut r = Reader::new(&self.0);
        let settings = Settings {
            digital_river: DigitalRiverSettings::read(&mut r),
            salesforce: SalesforceTargets::read(&mut r),
            relay: RelaySettings::read(&mut r),
            delivery: DeliverySettings::read(&mut r),
            reconcile: reconcile::ReconcileSettings::read(&mut r),
            confirm: confirm::ConfirmSettings::read(&mut r),
            notify: notify::NotifySettings::read(&mut r),
            storage: StorageSettings::read(&mut r),
            register: RegisterSettings::read(&mut r),
            telemetry: telemetry::TelemetrySettings::read(&mut r),
        };
        let mut settings = settings;
        settings.telemetry.modes = settings.salesforce.modes();
        let secret_files: Vec<String> = SECRET_KEYS.iter().map(|k| format!("{k}_file")).collect();
        r.report_unknown_keys(&secret_files);
        let mut c = r.problems;

        // Presence checks for what this command needs.
        if purpose.needs_dr_api() {
            settings.digital_river.require_api_key(&mut c);
        }
        if purpose.needs_salesforce() {
            settings.salesforce.require_for_delivery(&mut c);
        }
        if purpose == Purpose::Register(RegisterTarget::Relay)
            && !c.has("relay.inbound_grant_type")
            && let Err(missing) = settings.relay.inbound_oauth()
        {
            c.extend_new(missing.0);
        }
        if purpose == Purpose::Relay {
            settings.relay.require_for_relay(&mut c);
        }
        c.finish(settings)
    }
}

/// Loads and validates for a purpose: the one entry point commands use.
pub fn load(options: &LoadOptions, purpose: Purpose) -> Result<Settings, ConfigProblems> {
    load_raw(options)?.validate(purpose)
}

/// Reads every layer and the secret files, without validating values yet.
pub fn load_raw(options: &LoadOptions) -> Result<RawSettings, ConfigProblems> {
    Ok(RawSettings(with_secret_files(layers(options)?)?))
}

/// Built-in defaults, then config/default.toml, the environment's file, `--config`, `DRSF__*`
/// variables and the overrides, each over the one before.
fn layers(options: &LoadOptions) -> Result<Config, ConfigProblems> {
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
    if !options.ignore_environment {
        misspelt_variables(std::env::vars().map(|(name, _)| name))?;
        builder = builder.add_source(
            Environment::with_prefix("DRSF")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("digital_river.event_types")
                .with_list_parse_key("digital_river.signing_secrets")
                .with_list_parse_key("digital_river.test.signing_secrets")
                .with_list_parse_key("digital_river.live.signing_secrets")
                .with_list_parse_key("delivery.retry_schedule")
                .try_parsing(false),
        );
    }
    for (key, value) in &options.overrides {
        builder = builder
            .set_override(key.as_str(), value.as_str())
            .map_err(|e| ConfigProblems::single(key, e.to_string()))?;
    }
    builder
        .build()
        .map_err(|e| ConfigProblems::single("configuration", e.to_string()))
}

/// The `DRSF_` variables read as themselves (the others are `DRSF__SECTION__KEY`).
pub const OWN_VARIABLES: [&str; 3] = ["DRSF_ENV", "DRSF_CONFIG_DIR", "DRSF_LOG_FORMAT"];
/// Variables of the project's own tests and benchmarks, never of a deployment.
const HARNESS_PREFIXES: [&str; 3] = ["DRSF_TEST_", "DRSF_BENCH_", "DRSF_UPDATE_SCREENSHOTS"];

/// A `DRSF_` variable that is none of the relay's — one underscore where two belong
/// (`DRSF_STORAGE__URL`), a typo of `DRSF_ENV` — would be silently ignored: it is a problem
/// naming the variable meant.
fn misspelt_variables(names: impl Iterator<Item = String>) -> Result<(), ConfigProblems> {
    let mut problems = Collector::default();
    for name in names {
        let Some(rest) = name.strip_prefix("DRSF_") else {
            continue;
        };
        if rest.starts_with('_')
            || OWN_VARIABLES.contains(&name.as_str())
            || HARNESS_PREFIXES.iter().any(|p| name.starts_with(p))
        {
            continue;
        }
        let own = OWN_VARIABLES
            .iter()
            .find(|own| name.starts_with(*own))
            .copied()
            .or_else(|| problems::nearest(&name, &OWN_VARIABLES));
        let meant = match own {
            Some(own) if !rest.contains("__") => own.to_owned(),
            _ => format!("DRSF__{rest}"),
        };
        problems.push(
            &name,
            format!("is not a variable the relay reads, so it would be ignored; did you mean `{meant}`?"),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigProblems(problems.0))
    }
}

/// Replaces each `KEY_file` by the content of the file it names.
fn with_secret_files(layered: Config) -> Result<Config, ConfigProblems> {
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
            Ok(content) if key.ends_with("signing_secrets") => {
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
    if !problems.is_empty() {
        return Err(ConfigProblems(problems.0));
    }
    with_secrets
        .build()
        .map_err(|e| ConfigProblems::single("configuration", e.to_string()))
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
