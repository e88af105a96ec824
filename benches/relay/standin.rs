//! The benchmark's yardstick: the no-op HTTP server that gives the machine's ceiling. The
//! Salesforce org it measures against is the project's one stand-in org
//! (`dr_sf_bridge::ops::org_standin`), served in the benchmark's own process.

use axum::http::StatusCode;
use axum::routing::post;

pub use dr_sf_bridge::ops::org_standin::Org;

/// Serves `org`; answers its base URL.
pub async fn serve_org(org: std::sync::Arc<Org>) -> String {
    dr_sf_bridge::ops::org_standin::OrgStandIn::detached(org)
        .await
        .expect("a loopback port for the org")
}

/// The yardstick: an axum handler that answers 202 and does nothing, on `port` (run in a process
/// of its own, like the relay).
pub async fn serve_noop(port: u16) {
    let app = axum::Router::new().route("/webhooks/digitalriver", post(|| async { StatusCode::ACCEPTED }));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
