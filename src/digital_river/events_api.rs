//! DR's Events API: what DR created, for 30 days (`GET /events`), the only record of an event the
//! webhook never brought — the relay was down past DR's retries, the webhook was disabled.
//!
//! One window is listed at a time, page by page (`limit=100`, `startingAfter`), one request at a
//! time with the client's retries on 429 and 5xx; each event is kept as the exact bytes DR
//! returned, so that what reaches Salesforce is what DR said. DR lists newest first: the caller
//! sorts a window by `createdTime` before storing it, so one order's events go in oldest first.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::api::{DigitalRiverClient, DigitalRiverError};
use super::event::Envelope;
use crate::domain::EventType;

/// How far back DR keeps events.
pub const RETENTION_DAYS: i64 = 30;
/// Events per page, DR's most.
const PAGE: u32 = 100;
/// Pages per window at the most: a server that keeps saying `hasMore` cannot loop us.
const MAX_PAGES: u32 = 10_000;

/// One event as DR's API returned it.
#[derive(Debug, Clone)]
pub struct ListedEvent {
    pub envelope: Envelope,
    /// `createdTime`, in milliseconds since the epoch.
    pub created_ms: i64,
    /// The event's JSON exactly as DR returned it.
    pub body: Bytes,
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(rename = "hasMore", default)]
    has_more: bool,
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "createdTime")]
    created_time: String,
}

impl DigitalRiverClient {
    /// Every event of `types` created in `[from_ms, until_ms)`, oldest first.
    #[tracing::instrument(skip_all, fields(from_ms, until_ms))]
    pub async fn list_events(
        &self,
        types: &[EventType],
        from_ms: i64,
        until_ms: i64,
    ) -> Result<Vec<ListedEvent>, DigitalRiverError> {
        let query = events_query(types, from_ms, until_ms, PAGE);
        let mut events = Vec::new();
        let mut starting_after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let path = match &starting_after {
                Some(id) => format!(
                    "{query}&startingAfter={}",
                    url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
                ),
                None => query.clone(),
            };
            let body = self.get_raw(&path).await?;
            let page: Page =
                serde_json::from_slice(&body).map_err(|e| DigitalRiverError::Unexpected(format!("event list: {e}")))?;
            for raw in &page.data {
                events.push(listed(raw.get())?);
            }
            match (page.has_more, events.last()) {
                (true, Some(last)) if !page.data.is_empty() => starting_after = Some(last.envelope.id.to_string()),
                _ => break,
            }
        }
        events.sort_by_key(|e| e.created_ms);
        Ok(events)
    }
}

impl DigitalRiverClient {
    /// Whether DR created any event of `types` in `[from_ms, until_ms)`: one request, one event.
    pub async fn any_event(&self, types: &[EventType], from_ms: i64, until_ms: i64) -> Result<bool, DigitalRiverError> {
        let path = events_query(types, from_ms, until_ms, 1);
        let body = self.get_raw(&path).await?;
        let page: Page =
            serde_json::from_slice(&body).map_err(|e| DigitalRiverError::Unexpected(format!("event list: {e}")))?;
        Ok(!page.data.is_empty())
    }
}

/// `GET /events` for `types` created in `[from_ms, until_ms)`, `limit` a page.
fn events_query(types: &[EventType], from_ms: i64, until_ms: i64, limit: u32) -> String {
    let mut query = format!(
        "/events?limit={limit}&createdTime%5Bgte%5D={}&createdTime%5Blt%5D={}",
        iso(from_ms),
        iso(until_ms)
    );
    for event_type in types {
        query.push_str("&types=");
        query.push_str(event_type.as_str());
    }
    query
}

fn listed(raw: &str) -> Result<ListedEvent, DigitalRiverError> {
    let envelope = Envelope::parse(raw.as_bytes())
        .map_err(|e| DigitalRiverError::Unexpected(format!("an event in the list: {e}")))?;
    let created: Created = serde_json::from_str(raw)
        .map_err(|e| DigitalRiverError::Unexpected(format!("event {}: createdTime: {e}", envelope.id)))?;
    let created_ms = humantime::parse_rfc3339_weak(&created.created_time)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .ok_or_else(|| {
            DigitalRiverError::Unexpected(format!(
                "event {}: createdTime `{}` is not an ISO-8601 time",
                envelope.id, created.created_time
            ))
        })?;
    Ok(ListedEvent {
        envelope,
        created_ms,
        body: Bytes::copy_from_slice(raw.as_bytes()),
    })
}

/// A time as DR's query parameters take it: `2026-11-30T12:00:00Z` (to the millisecond).
pub fn iso(ms: i64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_kept_as_the_exact_bytes_with_its_created_time() {
        let raw = r#"{"id":"evt-1","type":"order.accepted","liveMode":false,"createdTime":"2026-11-30T12:00:00.250Z","data":{"object":{"id":"o-1","b":1,  "a":2}}}"#;
        let event = listed(raw).unwrap();
        assert_eq!(event.body.as_ref(), raw.as_bytes(), "not re-serialized");
        assert_eq!(event.created_ms, 1_796_040_000_250);
        assert_eq!(event.envelope.order_key.unwrap().as_str(), "o-1");
        assert_eq!(iso(1_796_040_000_250), "2026-11-30T12:00:00.250Z");
        assert!(listed(r#"{"id":"e","type":"order.accepted","data":{"object":{}}}"#).is_err());
    }
}
