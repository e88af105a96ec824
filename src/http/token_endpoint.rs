//! `POST /oauth2/token`: the token endpoint DR's OAuth transport calls before posting events.
//!
//! It answers like an OAuth server (RFC 6749): form-encoded requests, `access_token`,
//! `token_type`, `expires_in`, `Cache-Control: no-store`, and error bodies with `error` and
//! `error_description`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use super::paths;
use super::state::AppState;
use super::throttle::{ClientIp, retry_after};

const FORM_LIMIT: usize = 16 * 1024;

/// The fields of a form-encoded body, in order (repeated names kept, as sent).
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub fn router() -> Router<AppState> {
    Router::new().route(paths::TOKEN, post(issue_token))
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, Json(json!({"error": error, "error_description": description}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"dr-sf-bridge\""),
        );
    }
    no_store(response)
}

#[tracing::instrument(skip_all)]
pub async fn issue_token(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(wait) = state.throttle.check(client) {
        state.metrics.rejected("throttled");
        let mut response = oauth_error(
            429,
            "too_many_requests",
            "too many failed authentications from this address; retry later",
        );
        response.headers_mut().insert(header::RETRY_AFTER, retry_after(wait));
        return response;
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        state.metrics.rejected("token_bad_request");
        return oauth_error(
            400,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        state.metrics.rejected("token_bad_request");
        return oauth_error(400, "invalid_request", "unreadable or oversized body");
    };
    let form = parse_form(&bytes);
    match state.inbound.issue(&form, &headers) {
        Ok(token) => {
            state.throttle.succeeded(client);
            tracing::info!("issued an access token to Digital River");
            no_store((StatusCode::OK, Json(token)).into_response())
        }
        Err(e) => {
            let blocked = matches!(e.error, "invalid_client" | "invalid_grant") && state.throttle.failed(client);
            state.metrics.rejected(match e.error {
                "invalid_client" => "token_invalid_client",
                "invalid_grant" => "token_invalid_grant",
                _ => "token_bad_request",
            });
            tracing::warn!(error = e.error, client = %crate::support::text::client_address(client), blocked, "refused a token request");
            oauth_error(e.status, e.error, e.description)
        }
    }
}
