//! Sending events again from the status page — one event, or every dead event since a time —
//! each behind a confirmation page and the session's CSRF token, through the one replay every
//! door uses ([`crate::store::replay`]).

use axum::Extension;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::events::{non_empty, not_found, stored};
use super::layout::{badge, page, when};
use super::{SignedIn, paths, store_failed};
use crate::domain::EventId;
use crate::http::state::AppState;
use crate::store::replay::{self, ReplayError, ReplayedBy};
use crate::store::{EventFilter, EventStatus};
use crate::support::clock::{now_ms, parse_time};

/// Dead events a bulk replay's confirmation counts exactly; past this it says "more than".
const COUNT_UP_TO: u32 = 10_000;

pub(super) async fn confirm_replay(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Response {
    let event = match stored(&state, &signed_in, &id).await {
        Ok((_, event, _)) => event,
        Err(page) => return page,
    };
    let content = html! {
        h1 { "Send event " (event.id) " again?" }
        p { "It is " (badge(event.status.as_str())) ". Salesforce receives it once more, as if Digital River had sent it now; later events of order " (event.order_key.as_deref().unwrap_or("—")) " wait until it is delivered." }
        @if let Some(note) = replay::note_before(event.status) { p.notice id="replay-note" { (note) } }
        form #confirm-form method="post" action=(paths::ui_event(event.id.as_str(), "/replay")) {
            input type="hidden" name="csrf" value=(signed_in.csrf);
            button.primary type="submit" id="confirm" { "Yes, send it again" }
            " " a href=(paths::ui_event(event.id.as_str(), "")) { "Cancel" }
        }
    };
    Html(page("Send again?", Some(&signed_in.csrf), content).into_string()).into_response()
}

#[tracing::instrument(skip_all, fields(event_id = %id))]
pub(super) async fn replay(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = EventId::parse(&id) else {
        return not_found(&signed_in);
    };
    match replay::replay_one(&*state.store, &id, ReplayedBy::StatusPage, now_ms()).await {
        Ok(()) => {
            tracing::info!("event replayed from the status page");
            state.wake.notify_one();
            Redirect::to(&paths::ui_event(id.as_str(), "?replayed=true")).into_response()
        }
        Err(ReplayError::NotFound) => not_found(&signed_in),
        Err(ReplayError::Store(e)) => store_failed(&signed_in, &e),
        Err(refusal) => not_sent_again(&signed_in, &refusal, &paths::ui_event(id.as_str(), "")),
    }
}

/// Makes a pending event due now (its cause was fixed) and wakes the workers; attempts stay
/// counted. An event no longer waiting (delivered meanwhile, or due already) is left alone.
#[tracing::instrument(skip_all, fields(event_id = %id))]
pub(super) async fn retry_now(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = EventId::parse(&id) else {
        return not_found(&signed_in);
    };
    match state.store.retry_now(Some(&id), now_ms()).await {
        Ok(due) => {
            if due > 0 {
                tracing::info!("event made due now from the status page");
                state.wake.notify_one();
            }
            Redirect::to(&paths::ui_event(id.as_str(), &format!("?due_now={}", due > 0))).into_response()
        }
        Err(e) => store_failed(&signed_in, &e),
    }
}

/// 409: the replay was refused, in the words every door uses.
fn not_sent_again(signed_in: &SignedIn, refusal: &ReplayError, back: &str) -> Response {
    let content = html! {
        h1 { "Not sent again" }
        p.error role="alert" { "Not sent again: " (refusal) "." }
        p { a href=(back) { "Back" } }
    };
    (
        StatusCode::CONFLICT,
        Html(page("Not sent again", Some(&signed_in.csrf), content).into_string()),
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct SinceQuery {
    since: Option<String>,
}

pub(super) async fn confirm_replay_dead(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Query(query): Query<SinceQuery>,
) -> Response {
    let raw = non_empty(&query.since).unwrap_or("24h").to_owned();
    let since = parse_time(&raw);
    let count = match &since {
        Ok(since) => {
            let filter = EventFilter {
                status: Some(EventStatus::Dead),
                since_ms: Some(*since),
                limit: COUNT_UP_TO + 1,
                ..Default::default()
            };
            match state.store.list(filter).await {
                Ok(events) => Some(events.len() as u32),
                Err(e) => return store_failed(&signed_in, &e),
            }
        }
        Err(_) => None,
    };
    let content = html! {
        h1 { "Send dead events again" }
        form.filters method="get" action=(paths::UI_REPLAY_DEAD) {
            label { "Received since (a time such as 2026-11-23T03:00:00Z, or an age such as 6h)"
                input type="text" name="since" id="since" value=(raw);
            }
            button.primary type="submit" { "Count them" }
        }
        @match (&since, count) {
            (Err(problem), _) => p.error role="alert" { (problem) },
            (Ok(_), Some(0)) => p id="count" { "No dead event was received since then." },
            (Ok(since), Some(n)) => {
                p id="count" {
                    @if n > COUNT_UP_TO { "More than " (COUNT_UP_TO) } @else { (n) }
                    " dead event" @if n != 1 { "s" } " received since " (when(*since)) " will be sent to Salesforce again, each order's in order."
                }
                form #confirm-form method="post" action=(paths::UI_REPLAY_DEAD) {
                    input type="hidden" name="csrf" value=(signed_in.csrf);
                    input type="hidden" name="since" value=(since);
                    button.primary.danger type="submit" id="confirm" { "Yes, send them again" }
                }
            }
            _ => {}
        }
    };
    Html(page("Send dead events again", Some(&signed_in.csrf), content).into_string()).into_response()
}

/// The confirmation page's form (its CSRF token is checked before any handler runs).
#[derive(Deserialize)]
pub(super) struct ReplayDeadForm {
    /// Milliseconds since the epoch, as the confirmation page wrote it.
    since: i64,
}

#[tracing::instrument(skip_all)]
pub(super) async fn replay_dead(
    State(state): State<AppState>,
    Extension(signed_in): Extension<SignedIn>,
    Form(form): Form<ReplayDeadForm>,
) -> Response {
    match replay::replay_all(
        &*state.store,
        EventStatus::Dead,
        Some(form.since),
        ReplayedBy::StatusPage,
        now_ms(),
        |_| {},
    )
    .await
    {
        Ok(replayed) => {
            tracing::info!(
                replayed,
                since_ms = form.since,
                "dead events replayed from the status page"
            );
            state.wake.notify_one();
            Redirect::to(&format!("{}?status=pending&replayed={replayed}", paths::UI_EVENTS)).into_response()
        }
        Err(ReplayError::Store(e)) => store_failed(&signed_in, &e),
        Err(refusal) => not_sent_again(&signed_in, &refusal, paths::UI_EVENTS),
    }
}
