//! `[storage]` and `[register]`: where events are kept, and what `register` points DR at.

use serde::Deserialize;

use super::problems::Reader;
use crate::support::text::redact_url;

/// Why a SQLite path would not keep events across a restart, if it would not.
fn not_durable(path: &str) -> Option<&'static str> {
    let path = path.trim();
    if path.is_empty() {
        return Some("names no file (an unset variable in sqlite://$DB_PATH?)");
    }
    let lower = path.to_ascii_lowercase();
    if lower == ":memory:" || lower.starts_with("file::memory:") || lower.contains("mode=memory") {
        return Some("is an in-memory database");
    }
    if path.ends_with('/') {
        return Some("names a folder, not a file");
    }
    None
}

#[derive(Clone)]
pub struct StorageSettings {
    /// `sqlite://path` (one relay) or `postgres://user@host:port/db` (one or more relays).
    pub url: String,
    /// Delivered and ignored events are pruned after this many days.
    pub retention_days: u32,
    /// PostgreSQL only: connections each relay keeps open at most.
    pub pool_size: usize,
}

/// The URL may carry the database's password: shown without it.
impl std::fmt::Debug for StorageSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSettings")
            .field("url", &redact_url(&self.url))
            .field("retention_days", &self.retention_days)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl StorageSettings {
    pub(super) fn read(r: &mut Reader) -> Self {
        let mut url = r.text("storage.url").trim().to_owned();
        let password = r.secret("storage.password");
        let retention_days = r.get("storage.retention_days");
        let pool_size: usize = r.get("storage.pool_size");
        let c = &mut r.problems;
        let shown = redact_url(&url);
        if let Some(password) = password {
            match with_password(&url, &password) {
                Ok(joined) => url = joined,
                Err(why) => c.push("storage.password", why),
            }
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if let Some(why) = not_durable(path) {
                c.push("storage.url", format!("`{shown}` {why}: acknowledged events would be lost on restart; give a file path such as sqlite:///var/lib/dr-sf-bridge/relay.db"));
            }
        } else if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            c.push(
                "storage.url",
                format!("`{shown}` must start with sqlite:// or postgres://"),
            );
        }
        c.positive("storage.pool_size", pool_size as u64);
        StorageSettings {
            url,
            retention_days,
            pool_size,
        }
    }
}

/// A PostgreSQL URL with `storage.password` (or `storage.password_file`, a mounted secret) as
/// its password, so that the URL itself can sit in a manifest or a compose file.
fn with_password(url: &str, password: &secrecy::SecretString) -> Result<String, String> {
    use secrecy::ExposeSecret;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("is for a PostgreSQL store only: storage.url is not postgres://".into());
    }
    let mut parsed = url::Url::parse(url).map_err(|e| format!("storage.url cannot take it: {e}"))?;
    if parsed.password().is_some() {
        return Err("storage.url has a password already; keep one of the two".into());
    }
    parsed
        .set_password(Some(password.expose_secret()))
        .map_err(|()| "storage.url has no user name to give the password to (postgres://user@host/db)".to_owned())?;
    Ok(parsed.into())
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

#[cfg(test)]
mod tests {
    use crate::settings::{LoadOptions, Purpose, load};

    #[test]
    fn a_database_password_may_come_from_a_file_and_joins_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pg_password");
        std::fs::write(&file, "S3cret/with@signs\n").unwrap();
        let options = |url: &str| LoadOptions {
            config_dir: Some(dir.path().to_owned()),
            overrides: vec![
                ("storage.url".into(), url.into()),
                ("storage.password_file".into(), file.to_str().unwrap().into()),
            ],
            ignore_environment: true,
            ..Default::default()
        };
        let settings = load(&options("postgres://relay@db:5432/relay"), Purpose::Store).unwrap();
        let config: tokio_postgres::Config = settings.storage.url.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"S3cret/with@signs"[..]));
        assert_eq!(config.get_hosts().len(), 1);
        assert!(!format!("{:?}", settings.storage).contains("S3cret"), "Debug hides it");

        for (url, says) in [
            ("postgres://relay:inline@db/relay", "has a password already"),
            ("sqlite:///var/lib/relay.db", "PostgreSQL store only"),
        ] {
            let found = load(&options(url), Purpose::Store).unwrap_err().0;
            assert!(
                found
                    .iter()
                    .any(|p| p.key == "storage.password" && p.message.contains(says)),
                "{url}: {found:?}"
            );
            assert!(!format!("{found:?}").contains("S3cret"), "{found:?}");
        }
    }
}
