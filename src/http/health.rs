//! `/healthz` (the process answers), `/readyz` (the store can commit) and `/metrics`.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::paths;
use super::state::AppState;
use crate::support::clock::now_ms;

/// How long readiness waits for the store before answering 503.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::HEALTHZ, get(healthz))
        .route(paths::READYZ, get(readyz))
        .route(paths::METRICS, get(metrics))
}

async fn healthz() -> Response {
    (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response()
}

async fn readyz(State(state): State<AppState>) -> Response {
    let unavailable = |reason: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "unavailable", "reason": reason})),
        )
            .into_response()
    };
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, axum::Json(json!({"status": "ready"}))).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the store cannot commit");
            unavailable("store")
        }
        Err(_) => unavailable("store timeout"),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let stats = state.store.stats().await.ok();
    let text = state.metrics.render(stats.as_ref(), now_ms());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
