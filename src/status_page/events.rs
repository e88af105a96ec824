//! The events: a list filtered by status, type, order or event id (newest first, paged by key),
//! and an event's page (its body, every attempt, and why it is where it is). Sending them again
//! is [`super::replay`]'s.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{age, badge, page, prose, when, wrapped};
use super::{SignedIn, paths, store_failed};
use crate::domain::{EventId, EventType, OrderKey};
use crate::http::state::AppState;
use crate::store::attempt_log::{self, Kind};
use crate::store::{AttemptSummary, EventFilter, EventSource, EventStatus, EventSummary};
use crate::support::clock::now_ms;

/// Events a page lists.
const PAGE_SIZE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// An order id or an event id.
    q: Option<String>,
    /// The key of the last event of the previous page.
    before: Option<i64>,
    /// How many events a bulk replay just made pending.
    replayed: Option<u64>,
}

pub(super) fn non_empty(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

pub(super) async fn list(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Query(query): Query<ListQuery>,
) -> Response {
    let mut problems = Vec::new();
    let status = non_empty(&query.status).and_then(|raw| {
        EventStatus::parse(raw).or_else(|| {
            problems.push(format!("`{raw}` is not a status"));
            None
        })
    });
    let event_type = non_empty(&query.event_type).and_then(|raw| {
        EventType::parse(raw)
            .map_err(|m| problems.push(format!("type {m}")))
            .ok()
    });
    let mut filter = EventFilter {
        status,
        event_type,
        before_seq: query.before,
        limit: PAGE_SIZE,
        ..Default::default()
    };
    let store = &*state.store;
    let events = match non_empty(&query.q) {
        // One box for both: an event id if one has it, else an order id.
        Some(q) => {
            let by_id = match EventId::parse(q) {
                Ok(id) => store
                    .list(EventFilter {
                        event_id: Some(id),
                        ..filter.clone()
                    })
                    .await
                    .map(Some),
                Err(_) => Ok(None),
            };
            match by_id {
                Ok(Some(found)) if !found.is_empty() => Ok(found),
                Ok(_) => {
                    filter.order_key = Some(OrderKey::from_stored(q.to_owned()));
                    store.list(filter.clone()).await
                }
                Err(e) => Err(e),
            }
        }
        None => store.list(filter.clone()).await,
    };
    let events = match events {
        Ok(events) => events,
        Err(e) => return store_failed(&signed_in, &e),
    };
    let next = (events.len() == PAGE_SIZE as usize)
        .then(|| events.last().map(|e| older_link(&query, e.seq)))
        .flatten();
    let content = html! {
        h1 { "Events" }
        @if let Some(n) = query.replayed {
            p.notice role="status" id="notice" { (n) " dead event" @if n != 1 { "s" } " sent again: they are pending and will be delivered shortly." }
        }
        @for problem in &problems { p.error role="alert" { (problem) } }
        (filters(&query))
        @if events.is_empty() {
            p.muted id="no-events" { "No stored event matches." }
        } @else {
            div.scroll { table.rows id="events" {
                thead { tr { th { "Received" } th { "Event and type" } th { "Order" } th { "Status" } th.num { "Attempts" } th { "Last answer" } } }
                tbody { @for event in &events { (row(event)) } }
            } }
        }
        @if let Some(next) = next { p { a.button href=(next) id="older" { "Older events →" } } }
    };
    Html(page("Events", Some(&signed_in.csrf), content).into_string()).into_response()
}

fn older_link(query: &ListQuery, before: i64) -> String {
    let mut link = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in [("status", &query.status), ("type", &query.event_type), ("q", &query.q)] {
        if let Some(value) = non_empty(value) {
            link.append_pair(key, value);
        }
    }
    link.append_pair("before", &before.to_string());
    format!("{}?{}", paths::UI_EVENTS, link.finish())
}

fn filters(query: &ListQuery) -> Markup {
    let status = non_empty(&query.status).unwrap_or("");
    let event_type = non_empty(&query.event_type).unwrap_or("");
    html! {
        form.filters method="get" action=(paths::UI_EVENTS) {
            label { "Status"
                select name="status" id="filter-status" {
                    option value="" selected[status.is_empty()] { "any" }
                    @for s in EventStatus::ALL { option value=(s.as_str()) selected[status == s.as_str()] { (s.as_str().replace('_', " ")) } }
                }
            }
            label { "Type"
                select name="type" id="filter-type" {
                    option value="" selected[event_type.is_empty()] { "any" }
                    @for t in EventType::SUPPORTED { option value=(t) selected[event_type == t] { (t) } }
                }
            }
            label { "Order or event id"
                input type="search" name="q" id="filter-q" value=(non_empty(&query.q).unwrap_or("")) placeholder="e.g. 240010330336";
            }
            button.primary type="submit" id="filter" { "Show" }
        }
    }
}

/// How much of the last answer a row of the list shows (the event's page has all of it).
const LAST_ANSWER_CHARS: usize = 140;

fn row(event: &EventSummary) -> Markup {
    let last = match (event.last_status, &event.last_error) {
        (Some(status), Some(error)) if error.contains(&status.to_string()) => error.clone(),
        (Some(status), Some(error)) => format!("{status}: {error}"),
        (Some(status), None) => status.to_string(),
        (None, Some(error)) => error.clone(),
        (None, None) => String::new(),
    };
    html! {
        tr {
            td data-label="Received" { (when(event.received_at_ms)) }
            td.event {
                a.id href=(paths::ui_event(&event.id, "")) { (event.id) }
                @if event.source == EventSource::Backfill { " " span.tag title="Fetched from DR's Events API: the webhook never brought it" { "backfilled" } }
                span.type { (event.event_type) }
            }
            td.nowrap data-label="Order" { (event.order_key.as_deref().unwrap_or("—")) }
            td data-label="Status" { (badge(event.status.as_str())) }
            td.num data-label="Attempts" { (event.attempts) }
            td.said data-label="Last answer" { (wrapped(&crate::support::text::one_line(&last, LAST_ANSWER_CHARS))) }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ShowQuery {
    replayed: Option<bool>,
    due_now: Option<bool>,
}

pub(super) async fn show(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
    Query(query): Query<ShowQuery>,
) -> Response {
    let (id, event, attempts) = match stored(&state, &signed_in, &id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let body = match state.store.body(&id).await {
        Ok(body) => body.map(|b| pretty(&b)).unwrap_or_default(),
        Err(e) => return store_failed(&signed_in, &e),
    };
    let org = state
        .targets
        .iter()
        .find(|t| t.mode() == event.target)
        .map(|t| t.webhook_url());
    let now = now_ms();
    let content = html! {
        p { a href=(paths::UI_EVENTS) { "← Events" } }
        h1 { "Event " (event.id) }
        @if query.replayed == Some(true) {
            p.notice role="status" id="notice" { "Sent again: the event is pending and will be delivered shortly. Reload to see the outcome." }
        }
        @match query.due_now {
            Some(true) => p.notice role="status" id="notice" { "Due now: the event is delivered shortly instead of at its next scheduled attempt. Reload to see the outcome." },
            Some(false) => p.notice role="status" id="notice" { "Not waiting any more: the event was delivered or tried meanwhile." },
            None => {},
        }
        div class={ "health " (level_of(event.status)) } id="why" { (prose(&explained(&event, &attempts, org.as_deref(), now))) }
        div.panel {
            dl {
                dt { "Status" } dd #status { (badge(event.status.as_str())) }
                dt { "Type" } dd { (event.event_type) }
                dt { "Order" } dd { (event.order_key.as_deref().unwrap_or("—")) }
                dt { "Mode" } dd { (event.target) }
                dt { "Received" } dd { (when(event.received_at_ms)) " (" (age(now - event.received_at_ms)) " ago)" }
                dt { "Came from" } dd #source {
                    @match event.source {
                        EventSource::Webhook => "Digital River's webhook",
                        EventSource::Backfill => "Digital River's Events API (backfilled: the webhook never brought it)",
                    }
                }
                dt { "Attempts" } dd #attempt-count { (attempt_log::counted(event.attempts, &attempts)) }
            }
            @if event.status.is_replayable() {
                p { a.button href=(paths::ui_event(&event.id, "/replay")) id="replay" { "Send again…" } }
            }
            @if event.status == EventStatus::Pending && event.next_attempt_at_ms.is_some_and(|next| next > now) {
                form #retry-now-form method="post" action=(paths::ui_event(&event.id, "/retry-now")) {
                    input type="hidden" name="csrf" value=(signed_in.csrf);
                    button type="submit" id="retry-now" { "Deliver now" }
                    " " span.muted { "instead of at its next attempt — once the cause is fixed" }
                }
            }
        }
        h2 { "Attempts" }
        @if attempts.is_empty() {
            p.muted { "None yet." }
        } @else {
            div.scroll { table.rows id="attempts" {
                thead { tr { th { "#" } th { "When" } th { "Answer" } th.num { "Took" } th { "Outcome" } th { "Salesforce said" } } }
                tbody { @for (kind, attempt) in attempt_log::lines(&attempts) { (attempt_row(kind, attempt)) } }
            } }
        }
        h2 { "Body" }
        pre id="body" { (body) }
    };
    Html(page(&format!("Event {}", event.id), Some(&signed_in.csrf), content).into_string()).into_response()
}

fn level_of(status: EventStatus) -> &'static str {
    match status {
        EventStatus::Delivered => "good",
        EventStatus::Dead | EventStatus::FailedInSalesforce => "bad",
        EventStatus::Recovered => "good",
        _ => "warn",
    }
}

/// [`why`], and for an event sent again that has not been tried since, when and by whom.
fn explained(event: &EventSummary, log: &[AttemptSummary], org: Option<&str>, now: i64) -> String {
    match attempt_log::last_replay(log) {
        Some(replay) if event.status == EventStatus::Pending && event.attempts == 0 => format!(
            "Pending: sent again {} ago {}; waiting for its first delivery since (or for an earlier event of the same order).",
            age(now - replay.at_ms),
            attempt_log::replayed_by(replay)
        ),
        _ => why(event, org, now),
    }
}

/// Why the event is where it is, in a sentence an admin can act on.
pub fn why(event: &EventSummary, org: Option<&str>, now: i64) -> String {
    let org = org.unwrap_or("the org");
    let said = event.last_error.as_deref().unwrap_or("no answer");
    match event.status {
        EventStatus::Delivered => "Delivered: Salesforce accepted it.".into(),
        EventStatus::Pending if event.attempts == 0 => {
            "Pending: waiting for its first delivery (or for an earlier event of the same order).".into()
        }
        EventStatus::Pending => match event.next_attempt_at_ms {
            Some(next) if next > now => format!(
                "Pending: {} attempt{} failed ({said}); the next is in {}.",
                event.attempts,
                if event.attempts == 1 { "" } else { "s" },
                age(next - now)
            ),
            _ => format!("Pending: due now after {} failed attempts ({said}).", event.attempts),
        },
        EventStatus::Dead => match event.last_status {
            Some(404) => format!(
                "Dead: Salesforce answered 404 — the DR package is not installed at {org}, or its Apex REST resource is not there. Install the package (or fix salesforce.webhook_path), then send it again."
            ),
            Some(400) => format!(
                "Dead: Salesforce refused the event as invalid (400) at every attempt: {said}. Fix the org's data or the DR app's setup, then send it again."
            ),
            Some(401 | 403) => format!(
                "Dead: Salesforce refused the relay's access ({said}). Check the integration user's permissions on the DR app, then send it again."
            ),
            Some(500) => format!(
                "Dead: Salesforce answered 500 at every attempt — an unhandled exception in the DR package's Apex code at {org}: {}. Open the Apex exception email or Setup → Debug Logs for the integration user, fix the data or the package's setup, then send it again.",
                without_status(said, 500)
            ),
            Some(status) => format!(
                "Dead: Salesforce answered {status} at every attempt: {}.",
                without_status(said, status)
            ),
            None => format!("Dead: no delivery attempt succeeded: {said}."),
        },
        EventStatus::Ignored => {
            format!("Ignored: kept, not delivered — its type is not one digital_river.event_types delivers ({said}).")
        }
        EventStatus::RejectedMode => format!("Kept, never delivered: {said}."),
        EventStatus::FailedInSalesforce => format!(
            "Failed in Salesforce: {said}. The DR package answered 2xx and kept the event as a DR Failed Event record at {org}, so the order was not updated. Fix the cause in the org (the record's Event Capture Reason), then send it again."
        ),
        EventStatus::Recovered => format!("Recovered: {said} (the DR Failed Event record is marked processed)."),
    }
}

/// Salesforce's words without the "Salesforce answered N" the sentence already says.
fn without_status(said: &str, status: u16) -> &str {
    said.strip_prefix(&format!("Salesforce answered {status}"))
        .map(|rest| rest.trim_start_matches([':', ' ']))
        .filter(|rest| !rest.is_empty())
        .unwrap_or(said)
}

fn attempt_row(kind: Kind, attempt: &AttemptSummary) -> Markup {
    let from_salesforce_record = kind == Kind::InSalesforce;
    if kind == Kind::Replayed {
        return html! {
            tr.replayed {
                td data-label="#" { "↻" }
                td data-label="When" { (when(attempt.at_ms)) }
                td colspan="4" { "Sent again " (attempt_log::replayed_by(attempt)) "; attempts are counted from here." }
            }
        };
    }
    let said = if from_salesforce_record {
        format!(
            "{} ({})",
            attempt.error.as_deref().unwrap_or(""),
            attempt.excerpt.as_deref().unwrap_or("")
        )
    } else {
        attempt
            .excerpt
            .as_deref()
            .or(attempt.error.as_deref())
            .unwrap_or("")
            .to_owned()
    };
    html! {
        tr {
            td data-label="#" {
                @match kind {
                    Kind::Counted(number) => (number),
                    _ if from_salesforce_record => "—",
                    _ => span.muted title="the org's limits turned it away: not counted against the retry schedule" { "not counted" },
                }
            }
            td data-label="When" { (when(attempt.at_ms)) }
            td data-label="Answer" {
                @match attempt.status_code {
                    Some(code) => (code),
                    None if from_salesforce_record => "read in Salesforce",
                    None => "no answer",
                }
            }
            td.num.nowrap data-label="Took" { (attempt.duration_ms) " ms" }
            td data-label="Outcome" { (attempt.outcome.replace('_', " ")) }
            td.said data-label="Salesforce said" { (wrapped(&said)) }
        }
    }
}

/// The body as indented JSON, or as text if it is not JSON.
fn pretty(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

/// The stored event a page's address names, or the page that says why there is none.
pub(super) async fn stored(
    state: &AppState,
    signed_in: &SignedIn,
    raw_id: &str,
) -> Result<(EventId, EventSummary, Vec<AttemptSummary>), Response> {
    let Ok(id) = EventId::parse(raw_id) else {
        return Err(not_found(signed_in));
    };
    match state.store.get(&id).await {
        Ok(Some((event, attempts))) => Ok((id, event, attempts)),
        Ok(None) => Err(not_found(signed_in)),
        Err(e) => Err(store_failed(signed_in, &e)),
    }
}

pub(super) fn not_found(signed_in: &SignedIn) -> Response {
    let content = html! {
        h1 { "No such event" }
        p { "No stored event has this id (delivered events are pruned after the retention)." }
        p { a href=(paths::UI_EVENTS) { "← Events" } }
    };
    (
        StatusCode::NOT_FOUND,
        Html(page("Not found", Some(&signed_in.csrf), content).into_string()),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
