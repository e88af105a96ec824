//! The stand-ins the benchmark measures against: a Salesforce org (token endpoint and Apex
//! resource, with a latency, a capacity and an off switch) and the no-op HTTP server that gives
//! the machine's ceiling.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;

/// A Salesforce org on loopback.
#[derive(Default)]
pub struct Org {
    /// How long each Apex request takes.
    pub latency_us: AtomicU64,
    /// Requests beyond this many at once are refused with `ConcurrentPerOrgLongTxn` (0: no limit).
    pub capacity: AtomicUsize,
    /// Answers 503 to every Apex request (an outage).
    pub down: AtomicBool,
    pub in_flight: AtomicUsize,
    pub delivered: AtomicUsize,
    pub refused: AtomicUsize,
    pub token_grants: AtomicUsize,
}

impl Org {
    pub fn delivered(&self) -> usize {
        self.delivered.load(Ordering::Relaxed)
    }
}

async fn apex(org: Arc<Org>) -> axum::response::Response {
    if org.down.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "maintenance").into_response();
    }
    let now = org.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let capacity = org.capacity.load(Ordering::Relaxed);
    if capacity > 0 && now > capacity {
        org.in_flight.fetch_sub(1, Ordering::SeqCst);
        org.refused.fetch_add(1, Ordering::Relaxed);
        let body = r#"[{"message":"ConcurrentPerOrgLongTxn Limit exceeded","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        return (StatusCode::FORBIDDEN, body).into_response();
    }
    let latency = org.latency_us.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_micros(latency)).await;
    }
    org.in_flight.fetch_sub(1, Ordering::SeqCst);
    org.delivered.fetch_add(1, Ordering::Relaxed);
    (StatusCode::OK, "").into_response()
}

/// Serves `org`; answers its base URL.
pub async fn serve_org(org: Arc<Org>) -> String {
    let grants = org.clone();
    let app = axum::Router::new()
        .route(
            "/services/oauth2/token",
            post(move || {
                grants.token_grants.fetch_add(1, Ordering::Relaxed);
                async {
                    axum::Json(
                        serde_json::json!({"access_token": "00Dbench!token", "token_type": "Bearer",
                        "instance_url": "http://127.0.0.1", "issued_at": "1700000000000"}),
                    )
                }
            }),
        )
        .route(
            "/services/apexrest/digitalriverv3/webhooks/",
            post(move || apex(org.clone())),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The yardstick: an axum handler that answers 202 and does nothing, on `port` (run in a process
/// of its own, like the relay).
pub async fn serve_noop(port: u16) {
    let app = axum::Router::new().route("/webhooks/digitalriver", post(|| async { StatusCode::ACCEPTED }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
