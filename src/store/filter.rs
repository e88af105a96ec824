//! What the lists and the status page ask of a store: which events (a filter each engine turns
//! into a `WHERE` clause with only the conditions set, so each can use its index) and how many
//! per slice of time.

use serde::Serialize;

use super::EventStatus;
use crate::domain::{EventId, EventType, OrderKey};

/// Which stored events to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub status: Option<EventStatus>,
    pub event_type: Option<EventType>,
    pub order_key: Option<OrderKey>,
    /// Received at or after this time.
    pub since_ms: Option<i64>,
    /// Only the event with this id.
    pub event_id: Option<EventId>,
    /// Only events older than this one (by [`EventSummary::seq`]): the next page.
    pub before_seq: Option<i64>,
    /// At most this many (0: 100).
    pub limit: u32,
}

/// A value bound to one of [`EventFilter::conditions`]' placeholders.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Text(String),
    Number(i64),
}

impl EventFilter {
    /// How many events a page holds.
    pub fn page_size(&self) -> u32 {
        if self.limit == 0 { 100 } else { self.limit }
    }

    /// The `WHERE` clause of the conditions set (empty without any), its placeholders written by
    /// `placeholder(n)` (1-based), and the values to bind to them in order.
    pub fn conditions(&self, placeholder: impl Fn(usize) -> String) -> (String, Vec<FilterValue>) {
        let mut clauses = Vec::new();
        let mut values = Vec::new();
        let mut bind = |clause: &str, value: FilterValue| {
            values.push(value);
            clauses.push(format!("{clause} {}", placeholder(values.len())));
        };
        if let Some(status) = self.status {
            bind("status =", FilterValue::Text(status.as_str().to_owned()));
        }
        if let Some(event_type) = &self.event_type {
            bind("type =", FilterValue::Text(event_type.as_str().to_owned()));
        }
        if let Some(order) = &self.order_key {
            bind("order_key =", FilterValue::Text(order.as_str().to_owned()));
        }
        if let Some(id) = &self.event_id {
            bind("id =", FilterValue::Text(id.as_str().to_owned()));
        }
        if let Some(since) = self.since_ms {
            bind("received_at >=", FilterValue::Number(since));
        }
        if let Some(before) = self.before_seq {
            bind("seq <", FilterValue::Number(before));
        }
        if clauses.is_empty() {
            return (String::new(), values);
        }
        (format!("WHERE {}", clauses.join(" AND ")), values)
    }
}

/// Events received and delivered within one slice of time, for the status page's chart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ActivityBucket {
    /// The slice's start.
    #[serde(rename = "startMs")]
    pub start_ms: i64,
    pub received: u64,
    pub delivered: u64,
}

/// Sorts per-slice counts (by slice number from `since_ms` on) into `buckets` slices of
/// `bucket_ms` (slices without events count zero); counts outside the range are dropped.
pub fn activity_buckets(
    since_ms: i64,
    bucket_ms: i64,
    buckets: usize,
    received: impl IntoIterator<Item = (i64, u64)>,
    delivered: impl IntoIterator<Item = (i64, u64)>,
) -> Vec<ActivityBucket> {
    let mut out: Vec<ActivityBucket> = (0..buckets as i64)
        .map(|n| ActivityBucket {
            start_ms: since_ms + n * bucket_ms,
            ..Default::default()
        })
        .collect();
    let slot = |index: i64| usize::try_from(index).ok().filter(|i| *i < buckets);
    for (index, count) in received {
        if let Some(i) = slot(index) {
            out[i].received += count;
        }
    }
    for (index, count) in delivered {
        if let Some(i) = slot(index) {
            out[i].delivered += count;
        }
    }
    out
}
