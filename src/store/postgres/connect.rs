//! Connecting to PostgreSQL: the pool, the schema's migrations, and what the server's errors mean
//! to the relay.
//!
//! Migrations run in one transaction under an advisory lock keyed by the schema, so two relays
//! starting at the same moment apply them once: the second waits, then finds them applied.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::{StoreError, migrations};
use crate::support::text::{error_chain, redact_url};

/// How long a request waits for a free connection, or for a new one to open: well under DR's
/// answer limit, so an unreachable database answers DR 503 rather than a timeout.
const POOL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an unanswered connection attempt or unacknowledged write may hang before the
/// connection is given up (a database host that vanished without closing the socket).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach the database: the parsed `storage.url` with the relay's timeouts where the URL
/// sets none, and TLS when the URL asks for it.
#[derive(Clone)]
pub(super) struct Target {
    pub(super) config: tokio_postgres::Config,
    /// `Some` with `sslmode=require` (or libpq's `verify-ca`/`verify-full`, which mean the same
    /// here): the server's certificate is always verified, against the public roots and the
    /// `sslrootcert` file when given. `None`: plain TCP.
    pub(super) tls: Option<MakeRustlsConnect>,
}

pub(super) fn target(url: &str) -> Result<Target, StoreError> {
    let invalid = |why: String| StoreError::Unavailable(format!("storage.url `{}`: {why}", redact_url(url)));
    let (url_for_driver, root_cert) = tls_parameters(url);
    let mut config: tokio_postgres::Config = url_for_driver
        .parse()
        .map_err(|e: tokio_postgres::Error| invalid(error_chain(&e)))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("dr-sf-bridge");
    }
    config.tcp_user_timeout(TCP_USER_TIMEOUT);
    let tls = match (config.get_ssl_mode(), root_cert) {
        (SslMode::Require, root_cert) => Some(rustls_connector(root_cert.as_deref()).map_err(invalid)?),
        (_, Some(_)) => return Err(invalid("sslrootcert needs sslmode=require (or verify-full)".into())),
        (_, None) => None,
    };
    Ok(Target { config, tls })
}

/// Takes out what the driver does not parse itself: libpq's `sslrootcert` (answered apart) and
/// `sslmode=verify-ca|verify-full` (the driver's `require`, since certificates are always
/// verified here).
fn tls_parameters(raw: &str) -> (String, Option<String>) {
    let Ok(mut url) = url::Url::parse(raw) else {
        return (raw.to_owned(), None);
    };
    let mut root_cert = None;
    let mut changed = false;
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter_map(|(key, value)| match (key.as_ref(), value.as_ref()) {
            ("sslrootcert", path) => {
                root_cert = Some(path.to_owned());
                changed = true;
                None
            }
            ("sslmode", "verify-ca" | "verify-full") => {
                changed = true;
                Some(("sslmode".to_owned(), "require".to_owned()))
            }
            _ => Some((key.into_owned(), value.into_owned())),
        })
        .collect();
    if !changed {
        return (raw.to_owned(), None);
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        // The driver reads `%20` as a space, not `+` (a literal `+` is `%2B` here).
        .replace('+', "%20");
    url.set_query(Some(&query).filter(|q| !q.is_empty()).map(String::as_str));
    (url.to_string(), root_cert)
}

fn rustls_connector(root_cert: Option<&str>) -> Result<MakeRustlsConnect, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = root_cert {
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| format!("sslrootcert {path}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
            roots.add(cert).map_err(|e| format!("sslrootcert {path}: {e}"))?;
        }
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// `target` for the claims' connections: their commits do not wait for the disk flush (a lease
/// lost in a crash runs out by itself), and each statement keeps the one plan it was first given.
/// The claims are written to plan the same on an empty table as on an analyzed one ("the first
/// pending event of its order" is one index probe per candidate), so a plan made when the relay
/// started before an outage still serves the backlog; planning each run afresh cost 0.3-0.4 ms a
/// claim, more than the claim itself.
pub(super) fn for_claims(mut target: Target) -> Target {
    const OPTIONS: &str = "-c synchronous_commit=off -c plan_cache_mode=force_generic_plan";
    let options = match target.config.get_options() {
        Some(given) => format!("{given} {OPTIONS}"),
        None => OPTIONS.to_owned(),
    };
    target.config.options(options);
    target
}

pub(super) fn pool(target: Target, size: usize) -> Result<Pool, StoreError> {
    let settings = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match target.tls {
        Some(tls) => Manager::from_config(target.config, tls, settings),
        None => Manager::from_config(target.config, NoTls, settings),
    };
    Pool::builder(manager)
        .max_size(size.max(1))
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Unavailable(format!("building the connection pool: {e}")))
}

/// Brings the schema to this build's version; refuses a schema a newer build has migrated.
pub(super) async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(classify)?;
    // "relation … already exists, skipping" at every start is no news to log.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await
        .map_err(classify)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('dr-sf-bridge migrations ' || coalesce(current_schema(), '')))",
        &[],
    )
    .await
    .map_err(classify)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(classify)?;
    let applied: Option<i32> = tx
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await
        .map_err(classify)?
        .get(0);
    let recorded = i64::from(applied.unwrap_or(0));
    let applied = migrations::aligned_postgres_version(recorded);
    let pending = migrations::pending(applied).map_err(StoreError::Conflict)?;
    if applied != recorded {
        // An earlier release's numbering: record the same schema in the shared one.
        tx.execute("DELETE FROM schema_migrations", &[])
            .await
            .map_err(classify)?;
        for version in 1..=applied as i32 {
            tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&version])
                .await
                .map_err(classify)?;
        }
        tracing::info!(
            recorded,
            applied,
            "renumbered the PostgreSQL schema's migrations as both engines count them"
        );
    }
    for migration in pending {
        tx.batch_execute(migration.postgres).await.map_err(classify)?;
        let version = migration.number as i32;
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&version])
            .await
            .map_err(classify)?;
        tracing::info!(version, name = migration.name, "applied a PostgreSQL schema migration");
    }
    tx.commit().await.map_err(classify)
}

/// Whether the schema exists (for operations commands, which never create it).
pub(super) async fn is_initialised(client: &tokio_postgres::Client) -> Result<bool, StoreError> {
    let row = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await
        .map_err(classify)?;
    Ok(row.get(0))
}

/// What PostgreSQL said, as the variant callers decide on.
pub(super) fn classify(e: tokio_postgres::Error) -> StoreError {
    let text = error_chain(&e);
    let Some(code) = e.code() else {
        // No SQL state: the connection failed or closed, or a value did not convert.
        return if e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()) {
            StoreError::Unavailable(text)
        } else if text.contains("error deserializing") || text.contains("error serializing") {
            StoreError::Corrupt(text)
        } else {
            StoreError::Unavailable(text)
        };
    };
    let class = &code.code()[..2];
    if code == &SqlState::T_R_SERIALIZATION_FAILURE
        || code == &SqlState::T_R_DEADLOCK_DETECTED
        || code == &SqlState::LOCK_NOT_AVAILABLE
        || code == &SqlState::TOO_MANY_CONNECTIONS
        || code == &SqlState::QUERY_CANCELED
    {
        StoreError::Busy(text)
    } else if class == "23" {
        StoreError::Conflict(text)
    } else if class == "22" || class == "XX" {
        StoreError::Corrupt(text)
    } else {
        // Read-only, disk full, shutting down, connection trouble, missing tables: someone must act.
        StoreError::Unavailable(text)
    }
}

/// What a failure to open the database at `url` means, from the driver's words `why`: the
/// usual first-day mistakes said plainly, anything else as the driver said it.
pub(super) fn explained(url: &str, why: &str) -> String {
    let parsed = url::Url::parse(url).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str())
        .unwrap_or("localhost")
        .to_owned();
    let port = parsed.as_ref().and_then(|u| u.port()).unwrap_or(5432);
    let database = parsed
        .as_ref()
        .map(|u| u.path().trim_start_matches('/').to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "(none)".into());
    let user = parsed.as_ref().map(|u| u.username().to_owned()).unwrap_or_default();
    let lower = why.to_ascii_lowercase();
    if lower.contains("connection refused") {
        format!("cannot connect to {host}:{port} (connection refused): is PostgreSQL running and listening there?")
    } else if lower.contains("timed out") || lower.contains("timeout") {
        format!("cannot connect to {host}:{port} (no answer in time): check the host, the port and any firewall")
    } else if lower.contains("failed to lookup address") || lower.contains("name or service not known") {
        format!("cannot connect to {host}:{port}: no such host name")
    } else if lower.contains("does not exist") && lower.contains("database") {
        format!(
            "database `{database}` does not exist on {host}:{port}: create it (createdb {database}) or fix the URL's path"
        )
    } else if lower.contains("password authentication failed") || lower.contains("no password supplied") {
        format!("{host}:{port} refused user `{user}`'s password")
    } else {
        why.to_owned()
    }
}

/// A connection could not be had from the pool.
pub(super) fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => classify(e),
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
            StoreError::Busy("every database connection is in use (storage.pool_size)".into())
        }
        PoolError::Closed => StoreError::Closed,
        other => StoreError::Unavailable(format!("cannot reach the database: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_parameters_are_taken_out_and_the_rest_kept_as_given() {
        let (url, root) = tls_parameters(
            "postgres://relay@db:5432/relay?options=-csearch_path%3Dq%20-cstatement_timeout%3D5s&sslmode=verify-full&sslrootcert=/etc/ca.pem",
        );
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(
            url,
            "postgres://relay@db:5432/relay?options=-csearch_path%3Dq%20-cstatement_timeout%3D5s&sslmode=require"
        );
        let config: tokio_postgres::Config = url.parse().unwrap();
        assert_eq!(config.get_options(), Some("-csearch_path=q -cstatement_timeout=5s"));
        assert_eq!(config.get_ssl_mode(), SslMode::Require);

        let plain = "postgres://relay@db:5432/relay?options=-csearch_path%3Dq%20-cx%3Dy";
        assert_eq!(tls_parameters(plain), (plain.to_owned(), None));
    }

    #[test]
    fn a_root_certificate_without_tls_is_refused() {
        let Err(error) = target("postgres://relay@db:5432/relay?sslrootcert=/etc/ca.pem") else {
            panic!("refused")
        };
        assert!(error.to_string().contains("sslmode=require"), "{error}");
    }
}
