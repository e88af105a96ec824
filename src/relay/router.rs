//! The relay's routes: each area brings its own router, merged here with request tracing.

use axum::{Extension, Router};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::state::AppState;
use super::throttle::ClientIpHeader;
use super::{admin, health, ingress, token_endpoint};

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ingress::router())
        .merge(token_endpoint::router())
        .merge(health::router())
        .merge(admin::router(&state))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            state.request_timeout,
        ))
        .layer(Extension(ClientIpHeader(state.client_ip_header.clone())))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
