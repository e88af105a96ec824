//! `events backfill`: stores what Digital River created in a window and the store does not hold —
//! the events of a relay outage longer than DR's retries, or of a disabled webhook — from DR's
//! Events API, so that the relay delivers them as if the webhook had brought them.
//!
//! The window is walked an hour at a time, oldest first, through the same
//! [`crate::reconcile::store_window`] as the relay's own sweeps: each event through the webhook's
//! insert (once per event id, so a second run, or an event DR did deliver, stores nothing), in
//! `createdTime` order, marked `source = backfill`. Events from the API carry no signature: they are trusted because they came from DR's
//! API over TLS with the secret key.

use std::collections::BTreeMap;

use serde::Serialize;

use super::OpsError;
use super::webhooks::client_for;
use crate::digital_river::events_api::RETENTION_DAYS;
use crate::domain::Mode;
use crate::reconcile::{ReconcileError, SLICE_MS, WindowCount, store_window};
use crate::settings::Settings;
use crate::store::{self, Role};
use crate::support::clock::{now_ms, rfc3339};

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// The window's start, in milliseconds since the epoch.
    pub since_ms: i64,
    /// Its end (not included); now when `None`.
    pub until_ms: Option<i64>,
    /// The DR modes to list; every Salesforce target's when empty.
    pub modes: Vec<Mode>,
    /// List and compare, store nothing.
    pub dry_run: bool,
}

/// What one mode's backfill found and did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ModeBackfill {
    pub mode: Mode,
    /// Events DR listed in the window.
    pub listed: u64,
    /// Of those, already in the store (the webhook brought them, or an earlier backfill).
    pub already_stored: u64,
    /// Stored now (with `--dry-run`: that would be stored).
    pub stored: u64,
    /// Listed but not stored, by type: outside `digital_river.event_types`, or of the other mode.
    pub skipped: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillReport {
    pub since: String,
    pub until: String,
    pub dry_run: bool,
    pub modes: Vec<ModeBackfill>,
}

/// Lists the window on DR for each mode and stores what is missing; `progress(mode, listed)` after
/// each hour of the window.
pub async fn backfill(
    settings: &Settings,
    options: BackfillOptions,
    mut progress: impl FnMut(Mode, u64),
) -> Result<BackfillReport, OpsError> {
    let now = now_ms();
    let until = options.until_ms.unwrap_or(now).min(now);
    let since = options.since_ms;
    if since < now - RETENTION_DAYS * DAY_MS {
        return Err(OpsError::Refused(format!(
            "--since reaches back {} days: Digital River keeps events for {RETENTION_DAYS} days only; \
             give a time within the last {RETENTION_DAYS} days",
            (now - since) / DAY_MS
        )));
    }
    if since >= until {
        return Err(OpsError::Refused(format!(
            "the window is empty: --since {} is not before --until {}",
            rfc3339(since),
            rfc3339(until)
        )));
    }
    let modes = if options.modes.is_empty() {
        settings.salesforce.modes()
    } else {
        options.modes.clone()
    };
    let subscribed = &settings.digital_river.event_types;
    let store = store::open(&settings.storage, Role::Operations).await?;
    let mut report = BackfillReport {
        since: rfc3339(since),
        until: rfc3339(until),
        dry_run: options.dry_run,
        modes: Vec::new(),
    };
    for mode in modes {
        let client = client_for(settings, mode)?;
        let mut found = WindowCount::default();
        let mut from = since;
        while from < until {
            let to = (from + SLICE_MS).min(until);
            let slice = store_window(&client, &*store, subscribed, mode, from, to, now_ms(), !options.dry_run)
                .await
                .map_err(|e| match e {
                    ReconcileError::DigitalRiver(e) => OpsError::DigitalRiver(e),
                    ReconcileError::Store(e) => OpsError::Store(e),
                })?;
            found.add(slice);
            progress(mode, found.listed);
            from = to;
        }
        if found.stored > 0 && !options.dry_run {
            tracing::info!(
                mode = mode.as_str(),
                stored = found.stored,
                "events Digital River created and the store did not hold are stored: the relay delivers them"
            );
        }
        report.modes.push(ModeBackfill {
            mode,
            listed: found.listed,
            already_stored: found.already_stored,
            stored: found.stored,
            skipped: found.skipped,
        });
    }
    Ok(report)
}
