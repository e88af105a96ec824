//! Connecting to PostgreSQL: the pool, the schema's migrations, and what the server's errors mean
//! to the relay.
//!
//! Migrations run in one transaction under an advisory lock keyed by the schema, so two relays
//! starting at the same moment apply them once: the second waits, then finds them applied.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::store::StoreError;
use crate::support::text::{error_chain, redact_url};

/// The schema's versions, applied in order; `schema_migrations` records which ran.
const MIGRATIONS: [(i32, &str); 1] = [(1, include_str!("../migrations/postgres/0001_events_and_attempts.sql"))];

/// How long a request waits for a free connection, or for a new one to open: well under DR's
/// answer limit, so an unreachable database answers DR 503 rather than a timeout.
const POOL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an unanswered connection attempt or unacknowledged write may hang before the
/// connection is given up (a database host that vanished without closing the socket).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(10);

/// The parsed `storage.url`, with the relay's timeouts where the URL sets none.
pub(super) fn config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        StoreError::Unavailable(format!("storage.url `{}`: {}", redact_url(url), error_chain(&e)))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("dr-sf-bridge");
    }
    config.tcp_user_timeout(TCP_USER_TIMEOUT);
    Ok(config)
}

/// `config` for connections whose commits do not wait for the disk flush.
pub(super) fn without_flush_wait(mut config: tokio_postgres::Config) -> tokio_postgres::Config {
    let options = match config.get_options() {
        Some(given) => format!("{given} -c synchronous_commit=off"),
        None => "-c synchronous_commit=off".to_owned(),
    };
    config.options(options);
    config
}

pub(super) fn pool(config: tokio_postgres::Config, size: usize) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
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
    let applied = applied.unwrap_or(0);
    let known = MIGRATIONS.len() as i32;
    if applied > known {
        return Err(StoreError::Conflict(format!(
            "the database is at schema version {applied}, newer than this build's {known}: run the newer dr-sf-bridge"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        tx.batch_execute(sql).await.map_err(classify)?;
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version])
            .await
            .map_err(classify)?;
        tracing::info!(version, "applied a PostgreSQL schema migration");
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
