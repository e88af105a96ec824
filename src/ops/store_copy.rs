//! `store copy`: how a team outgrows one machine (SQLite to PostgreSQL) — or goes back — without
//! losing its history or its pending events.
//!
//! The source is opened as a relay would open it where the engine allows (a SQLite file a relay
//! is using is refused: its pending events would be delivered from both stores); the target is
//! created when missing. The copy itself is [`store::copy_all`]: resumable and idempotent.

use serde::Serialize;

use super::OpsError;
use crate::settings::StorageSettings;
use crate::store::{self, CopyProgress, Role, Store};
use crate::support::text::redact_url;

#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    pub from: String,
    pub to: String,
    /// Events read from the source in this run.
    pub read: u64,
    /// Of those, new in the target.
    pub copied: u64,
    /// The source's events the target held before this run (an earlier run copied them).
    #[serde(rename = "alreadyThere")]
    pub already_there: u64,
}

fn storage(url: &str) -> StorageSettings {
    StorageSettings {
        url: url.trim().to_owned(),
        retention_days: 0,
        pool_size: 4,
    }
}

async fn open_source(url: &str) -> Result<std::sync::Arc<dyn Store>, OpsError> {
    let Some(path) = url.strip_prefix("sqlite://") else {
        return Ok(store::open(&storage(url), Role::Operations).await?);
    };
    if !std::path::Path::new(path).is_file() {
        return Err(
            store::StoreError::Unavailable(format!("no store at {path}: nothing to copy (check --from)")).into(),
        );
    }
    // Taking the file as a relay would: refused while a relay uses it.
    store::open(&storage(url), Role::Relay).await.map_err(|e| match e {
        store::StoreError::Unavailable(why) => {
            store::StoreError::Unavailable(format!("{why}: stop the relay that uses the source before copying it"))
                .into()
        }
        other => other.into(),
    })
}

/// Copies every event and attempt of `from` into `to`; `progress(done, total)` after each batch.
pub async fn copy(from: &str, to: &str, mut progress: impl FnMut(CopyProgress, u64)) -> Result<CopyReport, OpsError> {
    let (shown_from, shown_to) = (redact_url(from), redact_url(to));
    if from.trim() == to.trim() {
        return Err(OpsError::Refused(format!(
            "--from and --to are the same store ({shown_from})"
        )));
    }
    let source = open_source(from).await?;
    let target = store::open(&storage(to), Role::Relay).await?;
    let stats = source.stats().await?;
    let total = stats.total();
    let done = store::copy_all(source.as_ref(), target.as_ref(), &shown_from, |done| {
        progress(done, total)
    })
    .await?;
    Ok(CopyReport {
        from: shown_from,
        to: shown_to,
        read: done.read,
        copied: done.copied,
        // A run that resumes reads only what is new: the rest was copied before.
        already_there: total.max(done.read).saturating_sub(done.copied),
    })
}
