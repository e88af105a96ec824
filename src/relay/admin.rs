//! `/admin/...`: the stored events over HTTP, for dashboards and runbooks — list, show, replay.
//!
//! Off unless `relay.admin_token` is set (the routes do not exist then), and every request must
//! carry that token as a bearer token. Replaying here wakes the worker at once.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::AppState;
use super::inbound_auth::{bearer, same_secret};
use crate::domain::EventId;
use crate::store::{EventFilter, EventStatus, ReplayOutcome, now_ms};

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

#[derive(Debug, thiserror::Error)]
enum AdminError {
    #[error("the admin API needs the admin bearer token")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(&'static str, String),
    #[error("no stored event has this id")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("the store did not answer")]
    Store(#[from] crate::store::StoreError),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::BadRequest(code, _) => (StatusCode::BAD_REQUEST, *code),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "not_replayable"),
            Self::Store(e) => {
                tracing::error!(error = %e, "admin request: the store failed");
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
        };
        (status, Json(json!({"error": code, "message": self.to_string()}))).into_response()
    }
}

fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<(), AdminError> {
    match bearer(headers) {
        Some(given) if same_secret(given, state.token.expose_secret()) => Ok(()),
        _ => {
            state.app.metrics.rejected("admin_unauthorized");
            Err(AdminError::Unauthorized)
        }
    }
}

fn event_id(raw: &str) -> Result<EventId, AdminError> {
    EventId::parse(raw).map_err(|m| AdminError::BadRequest("invalid_id", format!("event id {m}")))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, AdminError> {
    authorize(&state, &headers)?;
    let status = match query.status.as_deref() {
        None => None,
        Some(raw) => Some(EventStatus::parse(raw).ok_or_else(|| {
            AdminError::BadRequest(
                "invalid_status",
                format!("`{raw}` is not one of pending, delivered, dead, ignored"),
            )
        })?),
    };
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let events = state.app.store.list(EventFilter { status, limit }).await?;
    Ok(Json(json!({"events": events})))
}

async fn show(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    authorize(&state, &headers)?;
    let (event, attempts) = state
        .app
        .store
        .get(&event_id(&id)?)
        .await?
        .ok_or(AdminError::NotFound)?;
    Ok(Json(json!({"event": event, "attempts": attempts})))
}

#[tracing::instrument(skip_all, fields(event_id = %id))]
async fn replay(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, AdminError> {
    authorize(&state, &headers)?;
    let id = event_id(&id)?;
    match state.app.store.replay(&id, now_ms()).await? {
        ReplayOutcome::Replayed => {
            tracing::info!("event replayed through the admin API");
            state.app.wake.notify_one();
            Ok(Json(json!({"replayed": id.as_str()})))
        }
        ReplayOutcome::NotFound => Err(AdminError::NotFound),
        ReplayOutcome::NotReplayable(status) => Err(AdminError::Conflict(format!(
            "the event is {}; only dead or delivered events are replayed",
            status.as_str()
        ))),
    }
}
