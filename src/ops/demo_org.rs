//! The Salesforce org of `demo`: an in-process stand-in on a loopback port with the token
//! endpoint and the DR package's Apex REST resource, answering as the real ones do — including a
//! maintenance page for the first delivery and an expired session a little later, so that the
//! demo shows the relay retrying and signing in again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::salesforce::TOKEN_PATH;

/// The Apex REST resource of the DR package.
pub const APEX_PATH: &str = "/services/apexrest/digitalriverv3/webhooks/";
/// The delivery (counting from 1) that meets the expired session.
const EXPIRES_AT_DELIVERY: u64 = 4;

#[derive(Default)]
struct Org {
    grants: AtomicU64,
    deliveries: AtomicU64,
    /// Tokens numbered up to this one no longer work.
    expired_through: AtomicU64,
}

/// A running stand-in; dropping it stops the server.
pub struct DemoOrg {
    pub url: String,
    org: Arc<Org>,
    _server: tokio::task::JoinHandle<()>,
}

impl DemoOrg {
    pub async fn start() -> std::io::Result<Self> {
        let org = Arc::new(Org::default());
        let router = Router::new()
            .route(TOKEN_PATH, post(token))
            .route(APEX_PATH, post(apex))
            .with_state(org.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self {
            url,
            org,
            _server: server,
        })
    }

    /// Grants the token endpoint gave.
    pub fn grants(&self) -> u64 {
        self.org.grants.load(Ordering::Relaxed)
    }
}

async fn token(State(org): State<Arc<Org>>) -> Response {
    let n = org.grants.fetch_add(1, Ordering::SeqCst) + 1;
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
    let delivery = org.deliveries.fetch_add(1, Ordering::SeqCst) + 1;
    let token: u64 = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if delivery == 1 {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [("content-type", "text/html")],
            "<html><body>Salesforce is down for maintenance.</body></html>",
        )
            .into_response();
    }
    if delivery == EXPIRES_AT_DELIVERY {
        org.expired_through.fetch_max(token, Ordering::SeqCst);
    }
    if token <= org.expired_through.load(Ordering::SeqCst) {
        let body = json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]);
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    StatusCode::OK.into_response()
}
