//! The relay's routes: each area brings its own router, merged here with request tracing.

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
use super::{admin, health, ingress, token_endpoint, ui};

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ingress::router())
        .merge(token_endpoint::router())
        .merge(health::router())
        .merge(admin::router(&state))
        .merge(ui::router(&state))
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
