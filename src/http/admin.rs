//! `/admin/...`: the stored events over HTTP, for dashboards and runbooks — list, show, replay.
//!
//! Off unless `relay.admin_token` is set (the routes do not exist then), and every request must
//! carry that token as a bearer token: one middleware checks it before any handler runs, so a
//! new admin route cannot forget to. Replaying here wakes the worker at once.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::inbound_auth::{bearer, same_secret};
use super::paths;
use super::state::AppState;
use super::throttle::{AuthThrottle, ClientIp, retry_after};
use crate::domain::{EventId, EventType, OrderKey};
use crate::store::replay::{self, ReplayError, ReplayedBy};
use crate::store::{EventFilter, EventStatus, StoreError};
use crate::support::clock::{now_ms, parse_time};

/// The admin routes behind the token check, or none without a token.
pub fn router(state: &AppState) -> Router<AppState> {
    let Some(token) = state.admin_token.clone() else {
        return Router::new();
    };
    let guard = AdminGuard {
        token: Arc::new(token),
        metrics: state.metrics.clone(),
        throttle: state.throttle.clone(),
    };
    Router::new()
        .route(paths::ADMIN_EVENTS, get(list))
        .route(paths::ADMIN_EVENTS_REPLAY, post(replay_all))
        .route(paths::ADMIN_EVENT, get(show))
        .route(paths::ADMIN_EVENT_REPLAY, post(replay))
        .route_layer(middleware::from_fn_with_state(guard, require_admin_token))
}

#[derive(Clone)]
struct AdminGuard {
    token: Arc<SecretString>,
    metrics: Arc<crate::metrics::Metrics>,
    throttle: Arc<AuthThrottle>,
}

async fn require_admin_token(
    State(guard): State<AdminGuard>,
    ClientIp(client): ClientIp,
    request: Request,
    next: Next,
) -> Response {
    if let Err(wait) = guard.throttle.check(client) {
        guard.metrics.rejected("throttled");
        let mut response = AdminError::Throttled.into_response();
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, retry_after(wait));
        return response;
    }
    match bearer(request.headers()) {
        Some(given) if same_secret(given, guard.token.expose_secret()) => {
            guard.throttle.succeeded(client);
            next.run(request).await
        }
        _ => {
            guard.metrics.rejected("admin_unauthorized");
            let blocked = guard.throttle.failed(client);
            tracing::warn!(client = %crate::support::text::client_address(client), blocked, "refused an admin request without the admin token");
            AdminError::Unauthorized.into_response()
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum AdminError {
    #[error("the admin API needs the admin bearer token")]
    Unauthorized,
    #[error("too many failed authentications from this address; retry later")]
    Throttled,
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("no stored event has this id")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("the store did not answer")]
    Store(#[from] StoreError),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Throttled => (StatusCode::TOO_MANY_REQUESTS, "too_many_failures"),
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

fn event_id(raw: &str) -> Result<EventId, AdminError> {
    EventId::parse(raw).map_err(|m| AdminError::BadRequest("invalid_id", format!("event id {m}")))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    order: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
}

fn status(raw: Option<&str>) -> Result<Option<EventStatus>, AdminError> {
    raw.map(|raw| {
        EventStatus::parse(raw).ok_or_else(|| {
            AdminError::BadRequest(
                "invalid_status",
                format!("`{raw}` is not one of {}", EventStatus::names()),
            )
        })
    })
    .transpose()
}

fn since(raw: Option<&str>) -> Result<Option<i64>, AdminError> {
    raw.map(|raw| parse_time(raw).map_err(|m| AdminError::BadRequest("invalid_since", m)))
        .transpose()
}

async fn list(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Result<Json<Value>, AdminError> {
    let filter = EventFilter {
        status: status(query.status.as_deref())?,
        event_type: query
            .event_type
            .as_deref()
            .map(EventType::parse)
            .transpose()
            .map_err(|m| AdminError::BadRequest("invalid_type", m))?,
        order_key: query.order.map(OrderKey::from_stored),
        since_ms: since(query.since.as_deref())?,
        limit: query.limit.unwrap_or(50).clamp(1, 1000),
        ..Default::default()
    };
    let events = state.store.list(filter).await?;
    Ok(Json(json!({"events": events})))
}

#[derive(Deserialize)]
struct BulkReplayQuery {
    status: Option<String>,
    since: Option<String>,
}

/// `POST /admin/events/replay?status=dead&since=2h`: every matching event delivered again.
async fn replay_all(
    State(state): State<AppState>,
    Query(query): Query<BulkReplayQuery>,
) -> Result<Json<Value>, AdminError> {
    let status = status(query.status.as_deref())?.ok_or_else(|| {
        AdminError::BadRequest("invalid_status", "status=dead or status=delivered is required".into())
    })?;
    let replayed = replay::replay_all(
        &*state.store,
        status,
        since(query.since.as_deref())?,
        ReplayedBy::AdminApi,
        now_ms(),
        |_| {},
    )
    .await
    .map_err(|e| match e {
        ReplayError::NotReplayable(_) => AdminError::BadRequest("not_replayable", e.to_string()),
        e => e.into(),
    })?;
    tracing::info!(
        replayed,
        status = status.as_str(),
        "events replayed in bulk through the admin API"
    );
    state.wake.notify_one();
    Ok(Json(json!({"replayed": replayed, "status": status.as_str()})))
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, AdminError> {
    let (event, attempts) = state.store.get(&event_id(&id)?).await?.ok_or(AdminError::NotFound)?;
    Ok(Json(json!({"event": event, "attempts": attempts})))
}

#[tracing::instrument(skip_all, fields(event_id = %id))]
async fn replay(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, AdminError> {
    let id = event_id(&id)?;
    replay::replay_one(&*state.store, &id, ReplayedBy::AdminApi, now_ms()).await?;
    tracing::info!("event replayed through the admin API");
    state.wake.notify_one();
    Ok(Json(json!({"replayed": id.as_str()})))
}

impl From<ReplayError> for AdminError {
    fn from(error: ReplayError) -> Self {
        match error {
            ReplayError::NotFound => Self::NotFound,
            ReplayError::NotReplayable(_) => Self::Conflict(error.to_string()),
            ReplayError::Store(e) => Self::Store(e),
        }
    }
}
