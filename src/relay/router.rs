//! The relay's routes: each area brings its own router, merged here with request tracing.

use axum::Router;
use tower_http::trace::TraceLayer;

use super::state::AppState;
use super::{admin, health, ingress, token_endpoint};

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ingress::router())
        .merge(token_endpoint::router())
        .merge(health::router())
        .merge(admin::router(&state))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
