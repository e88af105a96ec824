//! `events list | show | replay`: the on-call engineer's view of the store.
//!
//! These commands open the relay's store beside a running relay (SQLite allows one writer and
//! many readers; every write here is one short transaction), so a dead event can be found,
//! understood from its attempts, and sent again once the cause is fixed. The running relay picks
//! a replayed event up on its next poll.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::command::CommandError;
use crate::domain::EventId;
use crate::settings::Settings;
use crate::store::{self, AttemptSummary, EventFilter, EventStatus, EventSummary, ReplayOutcome, Role, Store, now_ms};

async fn open(settings: &Settings) -> Result<std::sync::Arc<dyn Store>, CommandError> {
    Ok(store::open(&settings.storage.url, Role::Operations).await?)
}

fn parse_id(raw: &str) -> Result<EventId, CommandError> {
    EventId::parse(raw).map_err(|m| CommandError::Refused(format!("event id `{raw}` {m}")))
}

fn store_error(e: store::StoreError) -> CommandError {
    CommandError::Other(anyhow::Error::new(e))
}

pub async fn list(
    settings: &Settings,
    status: Option<EventStatus>,
    limit: u32,
) -> Result<Vec<EventSummary>, CommandError> {
    open(settings)
        .await?
        .list(EventFilter { status, limit })
        .await
        .map_err(store_error)
}

#[derive(Debug, Serialize)]
pub struct EventDetails {
    pub event: EventSummary,
    pub attempts: Vec<AttemptSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

pub async fn show(settings: &Settings, id: &str, with_body: bool) -> Result<EventDetails, CommandError> {
    let id = parse_id(id)?;
    let store = open(settings).await?;
    let (event, attempts) = store
        .get(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| CommandError::Refused(format!("no stored event has the id {id}")))?;
    let body = if with_body {
        store
            .body(&id)
            .await
            .map_err(store_error)?
            .and_then(|b| serde_json::from_slice(&b).ok())
    } else {
        None
    };
    Ok(EventDetails { event, attempts, body })
}

/// Makes a dead or delivered event pending again, with fresh attempts.
pub async fn replay(settings: &Settings, id: &str) -> Result<(), CommandError> {
    let id = parse_id(id)?;
    let store = open(settings).await?;
    let why = match store.replay(&id, now_ms()).await.map_err(store_error)? {
        ReplayOutcome::Replayed => return Ok(()),
        ReplayOutcome::NotFound => "no stored event has this id".to_owned(),
        ReplayOutcome::NotReplayable(status) => {
            format!("it is {} (only dead or delivered events are replayed)", status.as_str())
        }
    };
    Err(CommandError::Refused(format!("cannot replay {id}: {why}")))
}

fn time(ms: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)).to_string()
}

pub fn render_list(events: &[EventSummary]) -> String {
    if events.is_empty() {
        return "No events.\n".to_owned();
    }
    let rows: Vec<[String; 6]> = events
        .iter()
        .map(|e| {
            [
                e.id.clone(),
                e.event_type.clone(),
                e.status.as_str().to_owned(),
                e.attempts.to_string(),
                time(e.received_at_ms),
                e.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    crate::table::render(&["ID", "TYPE", "STATUS", "ATTEMPTS", "RECEIVED", "LAST ERROR"], &rows)
}

pub fn render_details(details: &EventDetails) -> String {
    let e = &details.event;
    let mut out = format!(
        "id: {}\ntype: {}\nstatus: {}\norder: {}\nlive mode: {}\nreceived: {}\nattempts: {}\n",
        e.id,
        e.event_type,
        e.status.as_str(),
        e.order_key.as_deref().unwrap_or("-"),
        e.live_mode,
        time(e.received_at_ms),
        e.attempts
    );
    if let Some(next) = e.next_attempt_at_ms {
        out.push_str(&format!("next attempt: {}\n", time(next)));
    }
    for (i, a) in details.attempts.iter().enumerate() {
        out.push_str(&format!(
            "attempt {}: {} {} {} ms {}\n",
            i + 1,
            time(a.at_ms),
            a.status_code.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            a.duration_ms,
            a.outcome
        ));
        if let Some(error) = &a.error {
            out.push_str(&format!("    error: {error}\n"));
        }
        if let Some(excerpt) = &a.excerpt {
            out.push_str(&format!("    answer: {excerpt}\n"));
        }
    }
    if let Some(body) = &details.body {
        out.push_str(&format!(
            "body:\n{}\n",
            serde_json::to_string_pretty(body).unwrap_or_default()
        ));
    }
    out
}
