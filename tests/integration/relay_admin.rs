//! The admin API: off without a token, closed without the right one, and a replay that delivers.

use dr_sf_bridge::store::EventStatus;
use serde_json::Value;
use wiremock::ResponseTemplate;

use crate::relay_helpers::*;
use crate::salesforce_standin::*;

const ADMIN_TOKEN: &str = "admin-token-0123456789-abcdefgh";
/// DR's own credentials do not open the admin API.
const RELAY_BASIC_AS_ADMIN: &str = crate::helpers::RELAY_PASSWORD;

async fn admin(relay: &TestRelay, method: reqwest::Method, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = relay.http.request(method, format!("{}{path}", relay.address));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /admin/events/{id}/replay` with the admin token.
async fn replay(relay: &TestRelay, id: &str) -> (u16, Value) {
    let path = format!("/admin/events/{id}/replay");
    admin(relay, reqwest::Method::POST, &path, Some(ADMIN_TOKEN)).await
}

#[tokio::test]
async fn the_admin_api_is_off_without_a_token() {
    let relay = spawn_app().await;
    let (status, _) = admin(&relay, reqwest::Method::GET, "/admin/events", Some("anything")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_admin_api_needs_its_token() {
    let sf = SalesforceStandIn::start().await;
    let relay = spawn_app_with(sf, &[("relay.admin_token", ADMIN_TOKEN)]).await;
    for token in [None, Some("wrong-token"), Some(RELAY_BASIC_AS_ADMIN)] {
        let (status, body) = admin(&relay, reqwest::Method::GET, "/admin/events", token).await;
        assert_eq!(status, 401, "{token:?}");
        assert_eq!(body["error"], "unauthorized");
    }
}

#[tokio::test]
async fn a_dead_event_is_listed_shown_and_replayed_through_the_admin_api() {
    let sf = SalesforceStandIn::start().await;
    let missing = apex(sf_error(404, "NOT_FOUND", "Could not find a match for URL"))
        .mount_as_scoped(&sf.server)
        .await;
    let relay = spawn_app_with(sf, &[("relay.admin_token", ADMIN_TOKEN)]).await;
    relay.accept(&event("order.accepted", "evt-admin", "o-admin")).await;
    relay.wait_for_status("evt-admin", EventStatus::Dead).await;
    let get = reqwest::Method::GET;

    let (status, body) = admin(&relay, get.clone(), "/admin/events?status=dead", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["events"][0]["id"], "evt-admin");
    let (status, body) = admin(&relay, get.clone(), "/admin/events/evt-admin", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(body["attempts"][0]["statusCode"], 404);
    let (status, _) = admin(&relay, get.clone(), "/admin/events?status=lost", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 400);
    let (status, _) = admin(&relay, get, "/admin/events/evt-nope", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 404);

    drop(missing);
    apex(ResponseTemplate::new(200)).mount(&relay.sf.server).await;
    let (status, body) = replay(&relay, "evt-admin").await;
    assert_eq!((status, body["replayed"].as_str()), (200, Some("evt-admin")));
    relay.wait_for_status("evt-admin", EventStatus::Delivered).await;
    let (status, body) = replay(&relay, "evt-admin").await;
    assert_eq!(status, 200, "a delivered event may be sent again: {body}");
    let (status, _) = replay(&relay, "evt-nope").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_admin_api_filters_and_replays_dead_events_in_bulk() {
    let sf = SalesforceStandIn::start().await;
    let missing = apex(sf_error(404, "NOT_FOUND", "Could not find a match for URL"))
        .mount_as_scoped(&sf.server)
        .await;
    let relay = spawn_app_with(sf, &[("relay.admin_token", ADMIN_TOKEN)]).await;
    for n in 0..3 {
        relay
            .accept(&event("order.accepted", &format!("evt-a{n}"), &format!("o-a{n}")))
            .await;
        relay.wait_for_status(&format!("evt-a{n}"), EventStatus::Dead).await;
    }
    let get = reqwest::Method::GET;
    let (status, body) = admin(
        &relay,
        get,
        "/admin/events?status=dead&order=o-a1&type=order.accepted&since=1h",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["events"].as_array().unwrap().len(), 1, "{body}");
    drop(missing);
    apex(ResponseTemplate::new(200)).mount(&relay.sf.server).await;
    let (status, body) = admin(
        &relay,
        reqwest::Method::POST,
        "/admin/events/replay?status=dead",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replayed"], 3);
    for n in 0..3 {
        relay
            .wait_for_status(&format!("evt-a{n}"), EventStatus::Delivered)
            .await;
    }
    let (status, _) = admin(
        &relay,
        reqwest::Method::POST,
        "/admin/events/replay?status=pending",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_replay_of_an_event_that_is_not_finished_is_refused_in_the_words_every_door_uses() {
    let sf = SalesforceStandIn::start().await;
    let relay = spawn_stepped_app_with(sf, &[("relay.admin_token", ADMIN_TOKEN)]).await;
    relay.accept(&event("order.accepted", "evt-waiting", "o-waiting")).await;
    let refusal = "pending events are not replayed (only dead, delivered, failed_in_salesforce or recovered ones are)";

    let (status, body) = replay(&relay, "evt-waiting").await;
    assert_eq!((status, body["error"].as_str()), (409, Some("not_replayable")));
    assert_eq!(body["message"], refusal);
    let (status, body) = admin(
        &relay,
        reqwest::Method::POST,
        "/admin/events/replay?status=pending",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("not_replayable")));
    assert_eq!(body["message"], refusal);
    assert_eq!(relay.status_of("evt-waiting").await, Some(EventStatus::Pending));

    let (status, body) = admin(
        &relay,
        reqwest::Method::GET,
        "/admin/events?status=rejected_mode",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 200, "every status can be listed: {body}");
    let (_, body) = admin(
        &relay,
        reqwest::Method::GET,
        "/admin/events?status=lost",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(
        body["message"],
        "`lost` is not one of pending, delivered, dead, ignored, rejected_mode, failed_in_salesforce, recovered"
    );
}
