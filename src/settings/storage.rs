//! `[storage]` and `[register]`: where events are kept, and what `register` points DR at.

use serde::Deserialize;

use super::problems::Reader;

#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// `sqlite://path` (or `postgres://...`, not in this build).
    pub url: String,
    /// Delivered and ignored events are pruned after this many days.
    pub retention_days: u32,
}

impl StorageSettings {
    pub(super) fn read(r: &mut Reader) -> Self {
        let url = r.text("storage.url").trim().to_owned();
        let retention_days = r.get("storage.retention_days");
        let c = &mut r.problems;
        if !(url.starts_with("sqlite://") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            c.push(
                "storage.url",
                format!("`{url}` must start with sqlite:// or postgres://"),
            );
        }
        StorageSettings { url, retention_days }
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

#[derive(Debug, Clone)]
pub struct RegisterSettings {
    /// What `register` points DR at by default.
    pub target: RegisterTarget,
}

impl RegisterSettings {
    pub(super) const TARGET_KEY: &str = "register.target";
    pub(super) const TARGETS: &str = "`salesforce`, `relay`";

    pub(super) fn read(r: &mut Reader) -> Self {
        RegisterSettings {
            target: r
                .one_of(Self::TARGET_KEY, Self::TARGETS)
                .unwrap_or(RegisterTarget::Salesforce),
        }
    }
}
