//! `[storage]` and `[register]`: where events are kept, and what `register` points DR at.

use serde::Deserialize;

use super::parse_enum;
use super::problems::Collector;

/// The `[storage]` section as written.
#[derive(Debug, Deserialize)]
pub struct RawStorage {
    pub url: String,
    pub retention_days: u32,
}

#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// `sqlite://path` (or `postgres://...`, not in this build).
    pub url: String,
    /// Delivered and ignored events are pruned after this many days.
    pub retention_days: u32,
}

impl RawStorage {
    pub(super) fn validate(&self, c: &mut Collector) -> StorageSettings {
        let url = self.url.trim().to_owned();
        if !(url.starts_with("sqlite://") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            c.push(
                "storage.url",
                format!("`{url}` must start with sqlite:// or postgres://"),
            );
        }
        StorageSettings {
            url,
            retention_days: self.retention_days,
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

/// The `[register]` section as written.
#[derive(Debug, Deserialize)]
pub struct RawRegister {
    pub target: String,
}

#[derive(Debug, Clone)]
pub struct RegisterSettings {
    /// What `register` points DR at by default.
    pub target: RegisterTarget,
}

impl RawRegister {
    pub(super) fn target(&self) -> Result<RegisterTarget, String> {
        parse_enum(&self.target, "`salesforce`, `relay`")
    }

    pub(super) fn validate(&self, c: &mut Collector) -> RegisterSettings {
        RegisterSettings {
            target: c
                .parse("register.target", self.target())
                .unwrap_or(RegisterTarget::Salesforce),
        }
    }
}
