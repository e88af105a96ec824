//! Sending stored events again: one by id, or every dead (or delivered) event since a time.
//!
//! The command line, the admin API and the status page all replay through here, so they refuse
//! alike and in the same words; each caller only wakes its workers and words its answer.

use super::{EventStatus, ReplayOutcome, Store, StoreError};
use crate::domain::EventId;

/// How many events a bulk replay makes pending in one transaction.
const REPLAY_BATCH: u32 = 500;

/// Who sends events again: the attempt log's replay line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayedBy {
    CommandLine,
    AdminApi,
    StatusPage,
}

impl ReplayedBy {
    /// The replay line's words: "replayed … by the status page".
    pub fn words(self) -> &'static str {
        match self {
            Self::CommandLine => "by the command line (events replay)",
            Self::AdminApi => "by the admin API",
            Self::StatusPage => "by the status page",
        }
    }
}

/// Why nothing was replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("no stored event has this id")]
    NotFound,
    #[error(
        "{} events are not replayed (only dead, delivered, failed_in_salesforce or recovered ones are)",
        .0.as_str()
    )]
    NotReplayable(EventStatus),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an admin must know before sending an event of `status` again, if anything.
pub fn note_before(status: EventStatus) -> Option<&'static str> {
    match status {
        EventStatus::FailedInSalesforce => Some(
            "The DR package already holds a DR Failed Event record of this event: fix its cause in the org first \
             (the record's Event Capture Reason), or the package keeps it as a failure again. Once it is delivered, \
             delete the old record or mark it processed.",
        ),
        EventStatus::Recovered => Some(
            "Salesforce already processed this event after its failure (its DR Failed Event record is marked \
             processed): sending it again applies it a second time.",
        ),
        _ => None,
    }
}

/// Makes one dead or delivered event pending again, with fresh attempts.
pub async fn replay_one(store: &dyn Store, id: &EventId, by: ReplayedBy, now_ms: i64) -> Result<(), ReplayError> {
    match store.replay(id, by, now_ms).await? {
        ReplayOutcome::Replayed => Ok(()),
        ReplayOutcome::NotFound => Err(ReplayError::NotFound),
        ReplayOutcome::NotReplayable(status) => Err(ReplayError::NotReplayable(status)),
    }
}

/// Makes every event of `status` (dead or delivered) that finished at or after `since_ms` pending
/// again, in batches; `progress` hears the running total. Answers how many.
pub async fn replay_all(
    store: &dyn Store,
    status: EventStatus,
    since_ms: Option<i64>,
    by: ReplayedBy,
    now_ms: i64,
    mut progress: impl FnMut(u64),
) -> Result<u64, ReplayError> {
    if !status.is_replayable() {
        return Err(ReplayError::NotReplayable(status));
    }
    let mut replayed = 0;
    loop {
        let batch = store.replay_batch(status, since_ms, REPLAY_BATCH, by, now_ms).await?;
        if batch == 0 {
            return Ok(replayed);
        }
        replayed += batch;
        progress(replayed);
    }
}
