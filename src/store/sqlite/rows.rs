//! A stored event's row as the lists, `get` and `store copy` read it.

use crate::domain::Mode;
use crate::store::{EventSource, EventStatus, EventSummary};

pub(super) fn corrupt(e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(e.to_string().into())
}

pub(super) const SUMMARY_COLUMNS: &str = "id, type, status, live_mode, order_key, received_at, attempts, next_attempt_at, last_status, last_error, seq, source";

pub(super) fn summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<EventSummary> {
    let status: String = row.get(2)?;
    let status = EventStatus::parse(&status).ok_or_else(|| corrupt(format!("unknown status {status}")))?;
    Ok(EventSummary {
        id: row.get(0)?,
        event_type: row.get(1)?,
        status,
        live_mode: row.get(3)?,
        target: Mode::of_event(row.get(3)?),
        order_key: row.get(4)?,
        received_at_ms: row.get(5)?,
        attempts: row.get(6)?,
        next_attempt_at_ms: (status == EventStatus::Pending).then(|| row.get(7)).transpose()?,
        last_status: row.get(8)?,
        last_error: row.get(9)?,
        seq: row.get(10)?,
        source: EventSource::parse(&row.get::<_, String>(11)?),
    })
}
