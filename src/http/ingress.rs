//! `POST /webhooks/digitalriver`: DR's events in.
//!
//! The checks run cheapest first — credentials (headers only), size, signature, envelope — and
//! the answer comes only after the store has committed the event: 202 for a new event, 200 for a
//! redelivery or an event type outside the subscription (so DR never disables the webhook over
//! it), 503 when the store cannot commit (DR retries). Rejections carry a short JSON reason and
//! nothing that would help a forger.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use tracing::Instrument;

use super::paths;
use super::state::AppState;
use super::throttle::{ClientIp, retry_after};
use crate::digital_river::signature::HEADER as SIGNATURE_HEADER;
use crate::digital_river::{Envelope, EnvelopeError};
use crate::domain::Mode;
use crate::store::{EventSource, EventStatus, InsertOutcome, NewEvent, StoreError};
use crate::support::clock::now_ms;

pub fn router() -> Router<AppState> {
    Router::new().route(paths::WEBHOOK, post(receive_event))
}

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("unauthorized")]
    Unauthorized,
    #[error("too many failed authentications")]
    Throttled(std::time::Duration),
    #[error("invalid signature")]
    BadSignature,
    #[error("body larger than {0} bytes")]
    TooLarge(usize),
    #[error("unreadable body")]
    Unreadable,
    #[error("{1}")]
    Unsupported(&'static str, String),
    #[error("invalid event: {0}")]
    Invalid(EnvelopeError),
    #[error("the event could not be stored")]
    StoreUnavailable(StoreError),
}

impl IntoResponse for IngressError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, json!({"error": "unauthorized"})),
            Self::Throttled(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": "too_many_failures", "message": "too many failed authentications from this address; retry later"}),
            ),
            Self::BadSignature => (StatusCode::UNAUTHORIZED, json!({"error": "invalid_signature"})),
            Self::TooLarge(limit) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "payload_too_large", "message": format!("the body exceeds {limit} bytes")}),
            ),
            Self::Unreadable => (StatusCode::BAD_REQUEST, json!({"error": "unreadable_body"})),
            Self::Unsupported(code, message) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"error": code, "message": message}),
            ),
            Self::Invalid(e) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_event", "field": e.field, "message": e.to_string()}),
            ),
            Self::StoreUnavailable(e) if e.is_transient() || matches!(e, StoreError::Closed) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "store_unavailable", "message": "the event was not stored; retry later"}),
            ),
            Self::StoreUnavailable(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "store_error", "message": "the event was not stored"}),
            ),
        };
        let mut response = (status, Json(body)).into_response();
        match self {
            Self::Unauthorized | Self::BadSignature => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::StoreUnavailable(_) => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Self::Throttled(wait) => {
                response.headers_mut().insert(header::RETRY_AFTER, retry_after(wait));
            }
            _ => {}
        }
        response
    }
}

/// DR posts plain JSON. A compressed or non-JSON body is refused rather than stored as bytes the
/// relay cannot read (or forwarded to Salesforce as something else than it checked).
fn check_representation(headers: &HeaderMap) -> Result<(), IngressError> {
    let text = |name| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("(not text)").trim().to_ascii_lowercase())
    };
    if let Some(encoding) = text(header::CONTENT_ENCODING)
        && encoding != "identity"
    {
        return Err(IngressError::Unsupported(
            "unsupported_encoding",
            format!("Content-Encoding `{encoding}` is not accepted; send the JSON body uncompressed"),
        ));
    }
    if let Some(content_type) = text(header::CONTENT_TYPE) {
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_owned();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(IngressError::Unsupported(
                "unsupported_media_type",
                format!("Content-Type `{essence}` is not accepted; send application/json"),
            ));
        }
    }
    Ok(())
}

/// DR's POST, in a span of its own that continues a proxy's `traceparent` (set before the span is
/// entered: a started span's parent cannot change).
pub async fn receive_event(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let span = tracing::info_span!(
        "receive_event",
        otel.kind = "server",
        event_id = tracing::field::Empty,
        event_type = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    );
    crate::telemetry::continue_trace(&span, &headers);
    let answer = receive(state, client, headers, body)
        .instrument(span.clone())
        .await
        .into_response();
    // No line follows in this span: only the trace reads the status.
    crate::telemetry::record_for_trace(&span, "http.response.status_code", answer.status().as_u16());
    answer
}

async fn receive(
    state: AppState,
    client: Option<std::net::IpAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, IngressError> {
    if let Err(wait) = state.throttle.check(client) {
        state.metrics.rejected("throttled");
        return Err(IngressError::Throttled(wait));
    }
    if let Err(failure) = state.inbound.authenticate(&headers) {
        state.metrics.rejected(failure.reason());
        let blocked = state.throttle.failed(client);
        tracing::warn!(reason = failure.reason(), client = %crate::support::text::client_address(client), blocked, "refused an unauthenticated request");
        return Err(IngressError::Unauthorized);
    }
    state.throttle.succeeded(client);

    check_representation(&headers).inspect_err(|_| state.metrics.rejected("unsupported_media_type"))?;

    let limit = state.body_limit;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        state.metrics.rejected("too_large");
        return Err(IngressError::TooLarge(limit));
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let too_large = std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if too_large {
                state.metrics.rejected("too_large");
                return Err(IngressError::TooLarge(limit));
            }
            state.metrics.rejected("unreadable");
            return Err(IngressError::Unreadable);
        }
    };

    let signed_for = if state.signatures.is_enabled() {
        let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        match state.signatures.verify(header, &bytes, now_ms() / 1000) {
            Ok(signed_for) => Some(signed_for),
            Err(e) => {
                state.metrics.rejected(e.reason());
                tracing::warn!(reason = e.reason(), "refused a request with an invalid signature");
                return Err(IngressError::BadSignature);
            }
        }
    } else {
        None
    };

    let envelope = Envelope::parse(&bytes).map_err(|e| {
        state.metrics.rejected("invalid_event");
        tracing::warn!(field = e.field, error = %e, "refused an unusable event");
        IngressError::Invalid(e)
    })?;
    let span = tracing::Span::current();
    span.record("event_id", envelope.id.as_str());
    span.record("event_type", envelope.event_type.as_str());
    let event_mode = Mode::of_event(envelope.live_mode);
    if signed_for.is_some_and(|signed| !signed.accepts(event_mode)) {
        state.metrics.rejected("signature_other_mode");
        tracing::warn!(
            mode = event_mode.as_str(),
            "refused an event whose signature is not its mode's: a {event_mode} event must be signed with the {event_mode} webhook's secret"
        );
        return Err(IngressError::BadSignature);
    }

    let subscribed = state.subscription.contains(&envelope.event_type);
    if subscribed && envelope.order_key.is_none() {
        state.metrics.rejected("invalid_event");
        return Err(IngressError::Invalid(EnvelopeError {
            field: "data.object.id",
            message: "is missing (an order event needs the order id)".into(),
        }));
    }
    let type_label = if subscribed {
        envelope.event_type.as_str().to_owned()
    } else {
        "other".to_owned()
    };
    // An event of the other mode is acknowledged (DR must not disable the webhook over it) and
    // kept with its reason, but never delivered: test orders stay out of production and live
    // orders out of the sandbox.
    let wrong_mode = subscribed && !state.modes.contains(&event_mode);
    let reason = wrong_mode.then(|| {
        let bound: Vec<&str> = state.modes.iter().map(|m| m.as_str()).collect();
        format!(
            "a {event_mode} event at a relay bound to {} mode: not delivered; DR's {event_mode} webhook probably points at this relay — \
             give this relay a [salesforce.{event_mode}] target, or register the {event_mode} webhook with the {event_mode} key to its own relay",
            bound.join(" and ")
        )
    });
    let status = match (subscribed, wrong_mode) {
        (false, _) => EventStatus::Ignored,
        (true, true) => EventStatus::RejectedMode,
        (true, false) => EventStatus::Pending,
    };
    let new_event = NewEvent {
        id: envelope.id.clone(),
        event_type: envelope.event_type.clone(),
        live_mode: envelope.live_mode,
        order_key: envelope.order_key.clone(),
        body: bytes,
        status,
        reason: reason.clone(),
        received_at_ms: now_ms(),
        source: EventSource::Webhook,
        trace_parent: crate::telemetry::trace_parent(&span),
    };
    let commit = crate::telemetry::trace_only(|| tracing::info_span!("store_commit", event_id = envelope.id.as_str()));
    let outcome = state.store.insert(new_event).instrument(commit).await.map_err(|e| {
        state.metrics.received(&type_label, "store_error");
        match &e {
            StoreError::Busy(_) => tracing::warn!(error = %e, "the store is busy; answering 503 so that DR retries"),
            _ => tracing::error!(error = %e, "could not store an event; DR will retry"),
        }
        IngressError::StoreUnavailable(e)
    })?;

    let id = envelope.id.as_str();
    Ok(match (outcome, subscribed) {
        (InsertOutcome::Inserted, true) if wrong_mode => {
            state.metrics.received(&type_label, "rejected_mode");
            let reason = reason.unwrap_or_default();
            tracing::error!(%reason, "an event of the other mode: stored as rejected_mode, never delivered");
            (
                StatusCode::OK,
                Json(json!({"status": "rejected_mode", "id": id, "reason": reason})),
            )
                .into_response()
        }
        (InsertOutcome::Duplicate, _) => {
            state.metrics.received(&type_label, "duplicate");
            state.last_received.note(event_mode);
            tracing::info!("duplicate event acknowledged");
            (StatusCode::OK, Json(json!({"status": "duplicate", "id": id}))).into_response()
        }
        (InsertOutcome::Inserted, false) => {
            state.metrics.received(&type_label, "ignored");
            tracing::info!("event type outside the subscription: stored as ignored");
            (StatusCode::OK, Json(json!({"status": "ignored", "id": id}))).into_response()
        }
        (InsertOutcome::Inserted, true) => {
            state.metrics.received(&type_label, "accepted");
            state.last_received.note(event_mode);
            state.wake.notify_one();
            tracing::debug!("event stored");
            (StatusCode::ACCEPTED, Json(json!({"status": "accepted", "id": id}))).into_response()
        }
    })
}
