//! The door's routes: each area brings its own router, merged here under the layers every route
//! shares (the status page's routes come in through [`with_layers`] too).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::{Extension, Router};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use super::state::AppState;
use super::throttle::ClientIpHeader;
use super::{admin, health, ingress, token_endpoint};

/// The door's own routes, before the shared layers.
pub fn areas(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(ingress::router())
        .merge(token_endpoint::router())
        .merge(health::router())
        .merge(admin::router(state))
}

/// The door's areas under its shared layers. The relay also serves the status page:
/// [`crate::app::router`].
pub fn router(state: AppState) -> Router {
    let routes = areas(&state);
    with_layers(routes, state)
}

/// What every route shares, whichever room it comes from: the request timeout, JSON refusals,
/// the client address header and request tracing.
pub fn with_layers(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            state.request_timeout,
        ))
        .layer(middleware::from_fn(json_error_bodies))
        .layer(Extension(ClientIpHeader(state.client_ip_header.clone())))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Every refusal carries a short JSON reason, also those the framework answers itself (404, 405,
/// 408): `{"error": "method_not_allowed"}`, with the original status and headers (`Allow`, ...).
async fn json_error_bodies(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let code = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace([' ', '-'], "_");
    let (mut parts, _) = response.into_parts();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(serde_json::json!({ "error": code }).to_string()))
}
