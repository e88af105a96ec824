//! A Salesforce org on loopback — the token endpoint, the DR package's Apex REST resource and
//! `/limits`, answering as the real ones do (`../shared/reference/salesforce.md`) — for `demo`,
//! the pacing tests and the benchmark alike.
//!
//! What the org does is set in [`Org`]'s fields, which the caller may change while it runs: a
//! latency, a capacity past which Apex requests are refused with `ConcurrentPerOrgLongTxn`, an
//! outage (503), a spent daily allocation (`TotalRequests`), the API usage it reports in
//! `Sforce-Limit-Info` and at `/limits`, and the demo's script (a maintenance page for the first
//! delivery, an expired session at the fourth). Tests that check the requests themselves (headers,
//! bodies, `.expect(n)`) use wiremock mocks instead; this org is for behaviour over many events.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::salesforce::TOKEN_PATH;

/// The Apex REST resource of the DR package.
pub const APEX_PATH: &str = "/services/apexrest/digitalriverv3/webhooks/";
/// Where the org reports its limits.
pub const LIMITS_PATH: &str = "/services/data/v60.0/limits";
/// In the demo's script, the delivery (counting from 1) that meets the expired session.
const EXPIRES_AT_DELIVERY: usize = 4;

/// How the org behaves, and what it saw.
#[derive(Default)]
pub struct Org {
    /// How long each Apex request takes, in microseconds.
    pub latency_us: AtomicU64,
    /// Apex requests beyond this many at once are refused with `ConcurrentPerOrgLongTxn` (0: no
    /// limit).
    pub capacity: AtomicUsize,
    /// Every Apex request is answered 503 (an outage).
    pub down: AtomicBool,
    /// The day's allocation is spent: every Apex request is refused with `TotalRequests`.
    pub spent: AtomicBool,
    /// The daily API usage reported with every answer and at `/limits` (`max` 0: not reported).
    pub used: AtomicU64,
    pub max: AtomicU64,
    /// The demo's script: a maintenance page for the first delivery, an expired session at the
    /// fourth.
    pub demo_script: AtomicBool,
    /// Apex requests being answered now.
    pub in_flight: AtomicUsize,
    /// Apex requests answered 200.
    pub delivered: AtomicUsize,
    /// Apex requests refused for a limit (concurrency or the daily allocation).
    pub refused: AtomicUsize,
    /// Every Apex request, answered or not.
    pub requests: AtomicUsize,
    pub token_grants: AtomicUsize,
    pub limits_asked: AtomicUsize,
    /// Tokens numbered up to this one no longer work.
    expired_through: AtomicUsize,
}

impl Org {
    pub fn delivered(&self) -> usize {
        self.delivered.load(Ordering::SeqCst)
    }

    fn usage_header(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let max = self.max.load(Ordering::SeqCst);
        if max > 0 {
            let value = format!("api-usage={}/{max}", self.used.load(Ordering::SeqCst));
            headers.insert("sforce-limit-info", HeaderValue::from_str(&value).expect("digits"));
        }
        headers
    }

    fn limit_error(&self, message: &str) -> Response {
        self.refused.fetch_add(1, Ordering::SeqCst);
        let body = json!([{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}]);
        (StatusCode::FORBIDDEN, self.usage_header(), Json(body)).into_response()
    }
}

/// A running org; dropping it stops the server.
pub struct OrgStandIn {
    pub url: String,
    pub org: Arc<Org>,
    server: tokio::task::JoinHandle<()>,
}

impl OrgStandIn {
    /// Serves `org` on a loopback port of its own.
    pub async fn start(org: Arc<Org>) -> std::io::Result<Self> {
        let router = Router::new()
            .route(TOKEN_PATH, post(token))
            .route(APEX_PATH, post(apex))
            .route(LIMITS_PATH, get(limits))
            .with_state(org.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { url, org, server })
    }

    /// The org of `demo`: its script on, no limits.
    pub async fn demo() -> std::io::Result<Self> {
        let org = Org::default();
        org.demo_script.store(true, Ordering::SeqCst);
        Self::start(Arc::new(org)).await
    }

    /// Serves `org` until the runtime ends; answers its base URL.
    pub async fn detached(org: Arc<Org>) -> std::io::Result<String> {
        let stand_in = Self::start(org).await?;
        let url = stand_in.url.clone();
        std::mem::forget(stand_in);
        Ok(url)
    }

    /// Grants the token endpoint gave.
    pub fn grants(&self) -> usize {
        self.org.token_grants.load(Ordering::SeqCst)
    }
}

impl Drop for OrgStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn token(State(org): State<Arc<Org>>) -> Response {
    let n = org.token_grants.fetch_add(1, Ordering::SeqCst) + 1;
    Json(json!({
        "access_token": format!("00DDEMO!demo-session-{n}"),
        "instance_url": "https://demo.my.salesforce.com",
        "id": "https://test.salesforce.com/id/00DDEMO/005DEMO",
        "token_type": "Bearer",
        "issued_at": crate::support::clock::now_ms().to_string(),
    }))
    .into_response()
}

async fn apex(State(org): State<Arc<Org>>, headers: HeaderMap) -> Response {
    let request = org.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let token: usize = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if org.demo_script.load(Ordering::SeqCst) {
        if request == 1 {
            return maintenance();
        }
        if request == EXPIRES_AT_DELIVERY {
            org.expired_through.fetch_max(token, Ordering::SeqCst);
        }
    }
    if token <= org.expired_through.load(Ordering::SeqCst) {
        let body = json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]);
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    if org.down.load(Ordering::SeqCst) {
        return maintenance();
    }
    if org.spent.load(Ordering::SeqCst) {
        return org.limit_error("TotalRequests Limit exceeded.");
    }
    let now = org.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let capacity = org.capacity.load(Ordering::SeqCst);
    if capacity > 0 && now > capacity {
        org.in_flight.fetch_sub(1, Ordering::SeqCst);
        return org.limit_error("ConcurrentPerOrgLongTxn Limit exceeded");
    }
    let latency = org.latency_us.load(Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(Duration::from_micros(latency)).await;
    }
    org.in_flight.fetch_sub(1, Ordering::SeqCst);
    org.delivered.fetch_add(1, Ordering::SeqCst);
    org.used.fetch_add(1, Ordering::SeqCst);
    (StatusCode::OK, org.usage_header(), "").into_response()
}

fn maintenance() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("content-type", "text/html")],
        "<html><body>Salesforce is down for maintenance.</body></html>",
    )
        .into_response()
}

async fn limits(State(org): State<Arc<Org>>) -> Response {
    org.limits_asked.fetch_add(1, Ordering::SeqCst);
    let (used, max) = (org.used.load(Ordering::SeqCst), org.max.load(Ordering::SeqCst));
    let body = json!({"DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)}});
    (StatusCode::OK, org.usage_header(), Json(body)).into_response()
}
