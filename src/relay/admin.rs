//! `/admin/...`: the stored events over HTTP, for dashboards and runbooks — list, show, replay.
//!
//! Off unless `relay.admin_token` is set (the routes do not exist then), and every request must
//! carry that token as a bearer token. Replaying here wakes the worker at once.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::app::AppState;
use crate::domain::EventId;
use crate::store::{EventFilter, EventStatus, now_ms};

#[derive(Clone)]
struct AdminState {
    app: AppState,
    token: Arc<SecretString>,
}

/// The admin routes, or none without a token.
pub fn router(app: AppState, token: Option<SecretString>) -> Router {
    let Some(token) = token else { return Router::new() };
    Router::new()
        .route("/admin/events", get(list))
        .route("/admin/events/{id}", get(show))
        .route("/admin/events/{id}/replay", post(replay))
        .with_state(AdminState {
            app,
            token: Arc::new(token),
        })
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": code, "message": message}))).into_response()
}

fn authorized(state: &AdminState, headers: &HeaderMap) -> Result<(), Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let matches: bool = Sha256::digest(given.as_bytes())
        .ct_eq(&Sha256::digest(state.token.expose_secret().as_bytes()))
        .into();
    if given.is_empty() || !matches {
        state.app.metrics.rejected("admin_unauthorized");
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the admin API needs the admin bearer token",
        ));
    }
    Ok(())
}

fn event_id(raw: &str) -> Result<EventId, Response> {
    EventId::parse(raw).map_err(|m| error(StatusCode::BAD_REQUEST, "invalid_id", &format!("event id {m}")))
}

fn store_failed(e: crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "admin request: the store failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        "the store did not answer",
    )
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<u32>,
}

async fn list(State(state): State<AdminState>, headers: HeaderMap, Query(query): Query<ListQuery>) -> Response {
    if let Err(denied) = authorized(&state, &headers) {
        return denied;
    }
    let status = match query.status.as_deref().map(|s| (s, EventStatus::parse(s))) {
        None => None,
        Some((_, Some(status))) => Some(status),
        Some((raw, None)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_status",
                &format!("`{raw}` is not one of pending, delivered, dead, ignored"),
            );
        }
    };
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    match state.app.store.list(EventFilter { status, limit }).await {
        Ok(events) => Json(json!({"events": events})).into_response(),
        Err(e) => store_failed(e),
    }
}

async fn show(State(state): State<AdminState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(denied) = authorized(&state, &headers) {
        return denied;
    }
    let id = match event_id(&id) {
        Ok(id) => id,
        Err(bad) => return bad,
    };
    match state.app.store.get(&id).await {
        Ok(Some((event, attempts))) => Json(json!({"event": event, "attempts": attempts})).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "not_found", "no stored event has this id"),
        Err(e) => store_failed(e),
    }
}

#[tracing::instrument(skip_all, fields(event_id = %id))]
async fn replay(State(state): State<AdminState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(denied) = authorized(&state, &headers) {
        return denied;
    }
    let id = match event_id(&id) {
        Ok(id) => id,
        Err(bad) => return bad,
    };
    match state.app.store.replay(&id, now_ms()).await {
        Ok(true) => {
            tracing::info!("event replayed through the admin API");
            state.app.wake.notify_one();
            Json(json!({"replayed": id.as_str()})).into_response()
        }
        Ok(false) => match state.app.store.get(&id).await {
            Ok(None) => error(StatusCode::NOT_FOUND, "not_found", "no stored event has this id"),
            Ok(Some((event, _))) => error(
                StatusCode::CONFLICT,
                "not_replayable",
                &format!(
                    "the event is {}; only dead or delivered events are replayed",
                    event.status.as_str()
                ),
            ),
            Err(e) => store_failed(e),
        },
        Err(e) => store_failed(e),
    }
}
