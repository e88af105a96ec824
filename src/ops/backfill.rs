//! `events backfill`: stores what Digital River created in a window and the store does not hold —
//! the events of a relay outage longer than DR's retries, or of a disabled webhook — from DR's
//! Events API, so that the relay delivers them as if the webhook had brought them.
//!
//! Each event goes in through the same insert as the webhook's (once per event id, so a second
//! run, or an event DR did deliver, stores nothing), marked `source = backfill`. The window is
//! walked an hour at a time, oldest first, and each hour is stored in `createdTime` order: one
//! order's events reach Salesforce oldest first, and no more than an hour of events is held in
//! memory. Events from the API carry no signature: they are trusted because they came from DR's
//! API over TLS with the secret key.

use std::collections::BTreeMap;

use serde::Serialize;

use super::OpsError;
use super::webhooks::client_for;
use crate::digital_river::events_api::RETENTION_DAYS;
use crate::domain::Mode;
use crate::settings::Settings;
use crate::store::{self, EventSource, EventStatus, InsertOutcome, NewEvent, Role};
use crate::support::clock::{now_ms, rfc3339};

/// The part of the window listed in one go.
const SLICE_MS: i64 = 3_600_000;
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
        let mut found = ModeBackfill {
            mode,
            listed: 0,
            already_stored: 0,
            stored: 0,
            skipped: BTreeMap::new(),
        };
        let mut from = since;
        while from < until {
            let to = (from + SLICE_MS).min(until);
            for event in client.list_events(subscribed, from, to).await? {
                found.listed += 1;
                let envelope = event.envelope;
                if !subscribed.contains(&envelope.event_type) || Mode::of_event(envelope.live_mode) != mode {
                    *found.skipped.entry(envelope.event_type.to_string()).or_default() += 1;
                    continue;
                }
                if options.dry_run {
                    match store.get(&envelope.id).await? {
                        Some(_) => found.already_stored += 1,
                        None => found.stored += 1,
                    }
                    continue;
                }
                let outcome = store
                    .insert(NewEvent {
                        id: envelope.id,
                        event_type: envelope.event_type,
                        live_mode: envelope.live_mode,
                        order_key: envelope.order_key,
                        body: event.body,
                        status: EventStatus::Pending,
                        reason: None,
                        received_at_ms: now_ms(),
                        source: EventSource::Backfill,
                    })
                    .await?;
                match outcome {
                    InsertOutcome::Inserted => found.stored += 1,
                    InsertOutcome::Duplicate => found.already_stored += 1,
                }
            }
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
        report.modes.push(found);
    }
    Ok(report)
}
