//! Delivery to the Apex REST resource: one test per row of DESIGN.md's classification table.

use std::time::Duration;

use bytes::Bytes;
use dr_sf_bridge::salesforce::{ApiUsage, DeliveryAttempt, DeliveryOutcome};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::salesforce_standin::*;

/// A transient failure: retried by the schedule, no minimum delay.
const RETRY_BY_SCHEDULE: DeliveryOutcome = DeliveryOutcome::Retry {
    min_delay: Duration::ZERO,
};

fn fixture(name: &str) -> Bytes {
    let path = format!("{}/../shared/fixtures/events/{name}.json", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

async fn deliver_against(response: ResponseTemplate) -> (SalesforceStandIn, DeliveryAttempt) {
    let logs = capture_logs();
    let sf = SalesforceStandIn::start().await;
    apex(response).mount(&sf.server).await;
    let attempt = sf
        .apex_client(Duration::from_secs(5))
        .deliver(fixture("order.accepted"))
        .await;
    logs.assert_no_secret();
    (sf, attempt)
}

#[tokio::test]
async fn a_2xx_is_delivered_with_the_exact_bytes_and_headers() {
    let body = fixture("order.invoice.created");
    let sf = SalesforceStandIn::start().await;
    Mock::given(method("POST"))
        .and(path(APEX_PATH))
        .and(header("authorization", format!("Bearer {}", token(1)).as_str()))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).insert_header("sforce-limit-info", "api-usage=41/15000"))
        .expect(1)
        .mount(&sf.server)
        .await;
    let attempt = sf.apex_client(Duration::from_secs(5)).deliver(body.clone()).await;
    assert_eq!(attempt.outcome, DeliveryOutcome::Delivered);
    assert_eq!(attempt.status, Some(200));
    assert_eq!(attempt.api_usage, Some(ApiUsage { used: 41, max: 15000 }));
    assert_eq!(sf.apex_requests().await[0].body, body.to_vec(), "byte-identical body");
}

#[tokio::test]
async fn a_204_counts_as_delivered() {
    let (_, attempt) = deliver_against(ResponseTemplate::new(204)).await;
    assert_eq!(attempt.outcome, DeliveryOutcome::Delivered);
}

#[tokio::test]
async fn an_expired_session_gets_one_new_grant_and_one_replay() {
    let sf = SalesforceStandIn::start().await;
    // Like Salesforce: the first token has expired, the second one works.
    sf.expire_the_first_session().await;
    let client = sf.apex_client(Duration::from_secs(5));
    let attempt = client.deliver(fixture("order.accepted")).await;
    assert_eq!(attempt.outcome, DeliveryOutcome::Delivered);
    assert!(attempt.reauthenticated);
    assert_eq!(sf.token_requests().await.len(), 2);
    assert_eq!(client.tokens().grants(), 2);
}

#[tokio::test]
async fn a_second_401_with_a_fresh_token_pauses_like_a_refused_sign_in() {
    let sf = SalesforceStandIn::start().await;
    apex(sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid"))
        .expect(2)
        .mount(&sf.server)
        .await;
    let attempt = sf
        .apex_client(Duration::from_secs(5))
        .deliver(fixture("order.accepted"))
        .await;
    assert_eq!(
        attempt.outcome,
        DeliveryOutcome::AuthRejected {
            min_delay: Duration::from_secs(300)
        },
        "the token cache's cool-down, not another grant on the next attempt"
    );
    assert_eq!(attempt.status, Some(401));
    assert!(attempt.error.unwrap().contains("freshly granted token"));
    assert_eq!(sf.token_requests().await.len(), 2);
}

#[tokio::test]
async fn hundred_concurrent_deliveries_with_an_empty_cache_make_one_token_request() {
    let sf = SalesforceStandIn::start_with_token_delay(Duration::from_millis(200)).await;
    apex(ResponseTemplate::new(200)).expect(100).mount(&sf.server).await;
    let client = sf.apex_client(Duration::from_secs(10));
    let deliveries = (0..100).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.deliver(fixture("order.complete")).await })
    });
    for handle in deliveries.collect::<Vec<_>>() {
        assert_eq!(handle.await.unwrap().outcome, DeliveryOutcome::Delivered);
    }
    assert_eq!(sf.token_requests().await.len(), 1);
}

#[tokio::test]
async fn the_two_request_limits_are_told_apart() {
    let (_, attempt) = deliver_against(sf_error(
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "ConcurrentPerOrgLongTxn Limit exceeded",
    ))
    .await;
    assert_eq!(attempt.outcome, DeliveryOutcome::Congested, "clears in seconds");
    assert!(attempt.error.unwrap().contains("ConcurrentPerOrgLongTxn"));
    let (_, attempt) = deliver_against(sf_error(
        403,
        "REQUEST_LIMIT_EXCEEDED",
        "ConcurrentRequests Limit exceeded",
    ))
    .await;
    assert_eq!(attempt.outcome, DeliveryOutcome::Congested);
    let (_, attempt) = deliver_against(sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")).await;
    assert_eq!(
        attempt.outcome,
        DeliveryOutcome::DailyLimitReached {
            min_delay: Duration::from_secs(300)
        },
        "the day's allocation is spent"
    );
    assert!(attempt.error.unwrap().contains("REQUEST_LIMIT_EXCEEDED"));
}

#[tokio::test]
async fn a_400_from_the_package_is_a_limited_retry() {
    let (_, attempt) = deliver_against(sf_error(400, "JSON_PARSER_ERROR", "Order 240001 not found")).await;
    assert_eq!(attempt.outcome, DeliveryOutcome::RetryLimited);
    assert!(attempt.excerpt.unwrap().contains("Order 240001 not found"));
}

#[tokio::test]
async fn a_404_not_found_is_dead_at_once_naming_the_url() {
    let (sf, attempt) = deliver_against(sf_error(
        404,
        "NOT_FOUND",
        "Could not find a match for URL /digitalriverv3/webhooks/",
    ))
    .await;
    assert_eq!(attempt.outcome, DeliveryOutcome::Dead);
    let error = attempt.error.unwrap();
    assert!(
        error.contains(&sf.webhook_url()) && error.contains("digitalriverv3"),
        "{error}"
    );
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_is_retried() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let (_, attempt) =
        deliver_against(ResponseTemplate::new(302).insert_header("location", format!("{}/login", elsewhere.uri())))
            .await;
    assert_eq!(attempt.outcome, RETRY_BY_SCHEDULE);
    assert!(attempt.error.unwrap().contains("not followed"));
}

#[tokio::test]
async fn an_apex_500_is_retried() {
    let (_, attempt) = deliver_against(sf_error(500, "APEX_ERROR", "System.NullPointerException")).await;
    assert_eq!(attempt.outcome, RETRY_BY_SCHEDULE);
    assert!(attempt.error.unwrap().contains("APEX_ERROR"));
}

#[tokio::test]
async fn a_503_maintenance_page_in_html_is_retried_and_excerpted() {
    let html =
        "<html><head><title>Maintenance</title></head>\n<body>  Salesforce is down for maintenance  </body></html>";
    let (_, attempt) = deliver_against(ResponseTemplate::new(503).set_body_string(html)).await;
    assert_eq!(attempt.outcome, RETRY_BY_SCHEDULE);
    assert_eq!(attempt.status, Some(503));
    assert!(attempt.excerpt.unwrap().contains("Salesforce is down for maintenance"));
}

#[tokio::test]
async fn too_many_requests_and_request_timeout_statuses_are_retried() {
    for status in [408, 429] {
        let (_, attempt) = deliver_against(ResponseTemplate::new(status)).await;
        assert_eq!(attempt.outcome, RETRY_BY_SCHEDULE, "{status}");
    }
}

#[tokio::test]
async fn a_timeout_is_retried() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&sf.server)
        .await;
    let attempt = sf
        .apex_client(Duration::from_millis(300))
        .deliver(fixture("order.accepted"))
        .await;
    assert_eq!(attempt.outcome, RETRY_BY_SCHEDULE);
    assert!(attempt.error.unwrap().contains("timeout"));
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    let sf = SalesforceStandIn::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{APEX_PATH}", closed.local_addr().unwrap());
    drop(closed);
    let client = dr_sf_bridge::salesforce::ApexClient::new(
        url,
        sf.token_cache(SalesforceStandIn::password_grant()),
        Duration::from_secs(5),
        Duration::from_secs(300),
    )
    .unwrap();
    let attempt = client.deliver(fixture("order.accepted")).await;
    assert_eq!(attempt.outcome, RETRY_BY_SCHEDULE);
    assert_eq!(attempt.status, None);
    assert!(attempt.error.unwrap().contains("cannot reach Salesforce"));
}

#[tokio::test]
async fn a_refused_sign_in_pauses_delivery_without_calling_apex() {
    let sf = SalesforceStandIn::bare().await;
    token_endpoint(oauth_error("invalid_grant", "authentication failure"))
        .mount(&sf.server)
        .await;
    apex(ResponseTemplate::new(200)).expect(0).mount(&sf.server).await;
    let attempt = sf
        .apex_client(Duration::from_secs(5))
        .deliver(fixture("order.accepted"))
        .await;
    assert!(
        matches!(attempt.outcome, DeliveryOutcome::AuthRejected { .. }),
        "{:?}",
        attempt.outcome
    );
    assert!(attempt.error.unwrap().contains("security token"));
}
