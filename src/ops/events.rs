//! `events list | show | replay`: the on-call engineer's view of the store.
//!
//! These commands open the relay's store beside a running relay (SQLite allows one writer and
//! many readers; every write here is one short transaction), so a dead event can be found,
//! understood from its attempts, and sent again once the cause is fixed. The running relay picks
//! a replayed event up on its next poll.

use serde::Serialize;

use super::OpsError;
use crate::domain::EventId;
use crate::settings::Settings;
use crate::store::replay::{self, ReplayError, ReplayedBy};
use crate::store::{self, AttemptSummary, EventFilter, EventStatus, EventSummary, Role, Store};
use crate::support::clock::now_ms;
pub use crate::support::clock::parse_time;

async fn open(settings: &Settings) -> Result<std::sync::Arc<dyn Store>, OpsError> {
    Ok(store::open(&settings.storage, Role::Operations).await?)
}

fn parse_id(raw: &str) -> Result<EventId, OpsError> {
    EventId::parse(raw).map_err(|m| OpsError::Refused(format!("event id `{raw}` {m}")))
}

pub async fn list(settings: &Settings, filter: EventFilter) -> Result<Vec<EventSummary>, OpsError> {
    Ok(open(settings).await?.list(filter).await?)
}

/// Replays every event of `status` (dead or delivered) received since `since_ms`, in batches;
/// `progress(n)` after each batch with the running count. Answers how many.
pub async fn replay_all(
    settings: &Settings,
    status: EventStatus,
    since_ms: Option<i64>,
    progress: impl FnMut(u64),
) -> Result<u64, OpsError> {
    let store = open(settings).await?;
    replay::replay_all(&*store, status, since_ms, ReplayedBy::CommandLine, now_ms(), progress)
        .await
        .map_err(|e| refused("cannot replay", e))
}

/// A refused replay as the command line reports it: "cannot replay evt-1: ...".
fn refused(what: &str, error: ReplayError) -> OpsError {
    match error {
        ReplayError::Store(e) => OpsError::Store(e),
        refusal => OpsError::Refused(format!("{what}: {refusal}")),
    }
}

/// Deletes delivered events received before `before_ms`; answers how many.
pub async fn purge(settings: &Settings, before_ms: i64) -> Result<u64, OpsError> {
    Ok(open(settings).await?.purge_delivered(before_ms).await?)
}

/// Makes the pending event `id` (or every pending one) due now; answers how many.
pub async fn retry_now(settings: &Settings, id: Option<&str>) -> Result<u64, OpsError> {
    let id = id.map(parse_id).transpose()?;
    let store = open(settings).await?;
    let changed = store.retry_now(id.as_ref(), now_ms()).await?;
    if let Some(id) = &id
        && changed == 0
    {
        let status = store.get(id).await?.map(|(event, _)| event.status);
        return Err(OpsError::Refused(match status {
            None => format!("no stored event has the id {id}"),
            Some(EventStatus::Pending) => format!("{id} is already due: the relay takes it at its next poll"),
            Some(status) => format!(
                "{id} is {}, not pending: `events replay {id}` sends a finished event again",
                status.as_str()
            ),
        }));
    }
    Ok(changed)
}

/// How many delivered events a purge with this cut-off would delete.
pub async fn count_purgeable(settings: &Settings, before_ms: i64) -> Result<u64, OpsError> {
    Ok(open(settings).await?.count_delivered_before(before_ms).await?)
}

#[derive(Debug, Serialize)]
pub struct EventDetails {
    pub event: EventSummary,
    pub attempts: Vec<AttemptSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

pub async fn show(settings: &Settings, id: &str, with_body: bool) -> Result<EventDetails, OpsError> {
    let id = parse_id(id)?;
    let store = open(settings).await?;
    let (event, attempts) = store
        .get(&id)
        .await?
        .ok_or_else(|| OpsError::Refused(format!("no stored event has the id {id}")))?;
    let body = if with_body {
        store.body(&id).await?.and_then(|b| serde_json::from_slice(&b).ok())
    } else {
        None
    };
    Ok(EventDetails { event, attempts, body })
}

/// Makes a dead or delivered event pending again, with fresh attempts; answers what the admin
/// must know of the status it had ([`replay::note_before`]).
pub async fn replay(settings: &Settings, id: &str) -> Result<Option<&'static str>, OpsError> {
    let id = parse_id(id)?;
    let store = open(settings).await?;
    let was = store.get(&id).await?.map(|(event, _)| event.status);
    replay::replay_one(&*store, &id, ReplayedBy::CommandLine, now_ms())
        .await
        .map_err(|e| refused(&format!("cannot replay {id}"), e))?;
    Ok(was.and_then(replay::note_before))
}
