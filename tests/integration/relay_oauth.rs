//! DR's OAuth transport against the relay: `/oauth2/token`, then events with the token.

use dr_sf_bridge::store::EventStatus;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

async fn token_request(relay: &TestRelay, form: &[(&str, &str)]) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = relay
        .http
        .post(format!("{}/oauth2/token", relay.address))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.json().await.unwrap(), headers)
}

async fn client_credentials_token(relay: &TestRelay) -> String {
    let (status, body, headers) = token_request(
        relay,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", INBOUND_CLIENT_ID),
            ("client_secret", RELAY_SECRET),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(headers["cache-control"], "no-store");
    body["access_token"].as_str().unwrap().to_owned()
}

fn jwt(key: &str, exp_offset_secs: i64) -> String {
    let now = unix_now();
    let claims = json!({"iss": "dr-sf-bridge", "aud": "dr-sf-bridge/webhooks", "sub": INBOUND_CLIENT_ID,
                        "iat": now, "exp": now + exp_offset_secs});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_token_from_the_relay_opens_the_webhook_endpoint() {
    let relay = spawn_app().await;
    let token = client_credentials_token(&relay).await;
    let body = event("order.accepted", "evt-oauth", "o-1");
    let response = relay
        .post_raw(&body, Some(&signed(&body)), Some(&format!("Bearer {token}")))
        .await;
    assert_eq!(response.status(), 202);
    relay.wait_for_status("evt-oauth", EventStatus::Delivered).await;
}

#[tokio::test]
async fn expired_and_forged_tokens_do_not_open_it() {
    let relay = spawn_app().await;
    let body = event("order.accepted", "evt-forged", "o-1");
    for token in [
        jwt(TOKEN_KEY, -60),
        jwt("another-key-0123456789-abcdefghijklmnopq", 600),
        "a.b.c".to_owned(),
    ] {
        let response = relay
            .post_raw(&body, Some(&signed(&body)), Some(&format!("Bearer {token}")))
            .await;
        assert_eq!(response.status(), 401);
    }
    let response = relay
        .post_raw(
            &body,
            Some(&signed(&body)),
            Some(&format!("Bearer {}", jwt(TOKEN_KEY, 600))),
        )
        .await;
    assert_eq!(response.status(), 202, "a token signed with the shared key is accepted");
}

#[tokio::test]
async fn a_token_is_accepted_by_another_relay_sharing_the_key() {
    let first = spawn_app().await;
    let token = client_credentials_token(&first).await;
    let second = spawn_app().await;
    let body = event("order.accepted", "evt-shared", "o-1");
    let response = second
        .post_raw(&body, Some(&signed(&body)), Some(&format!("Bearer {token}")))
        .await;
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn the_token_endpoint_answers_rfc_6749_errors() {
    let relay = spawn_app().await;
    let (status, body, headers) = token_request(
        &relay,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", INBOUND_CLIENT_ID),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert!(headers.contains_key("www-authenticate"));
    let (status, body, _) = token_request(
        &relay,
        &[
            ("grant_type", "password"),
            ("client_id", INBOUND_CLIENT_ID),
            ("client_secret", RELAY_SECRET),
            ("username", "u"),
            ("password", "p"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type")),
        "password grant is off by default"
    );
    let (status, body, _) = token_request(&relay, &[("client_id", INBOUND_CLIENT_ID)]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    let json_body = relay
        .http
        .post(format!("{}/oauth2/token", relay.address))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), 400);
    assert!(relay.metrics().await.contains("reason=\"token_invalid_client\""));
}

#[tokio::test]
async fn client_credentials_in_a_basic_header_are_accepted() {
    let relay = spawn_app().await;
    let response = relay
        .http
        .post(format!("{}/oauth2/token", relay.address))
        .basic_auth(INBOUND_CLIENT_ID, Some(RELAY_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let token = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_token_opens_the_webhook(&relay, &token, "evt-basic-client").await;
}

/// Posts an event with `token` as DR would: the relay must accept it.
async fn assert_token_opens_the_webhook(relay: &TestRelay, token: &str, id: &str) {
    let body = event("order.accepted", id, "o-token");
    let response = relay
        .post_raw(&body, Some(&signed(&body)), Some(&format!("Bearer {token}")))
        .await;
    assert_eq!(response.status(), 202, "the token opens the webhook");
}

#[tokio::test]
async fn the_password_grant_works_when_configured() {
    let sf = SalesforceStandIn::start().await;
    let relay = spawn_app_with(
        sf,
        &[
            ("relay.inbound_grant_type", "password"),
            ("relay.inbound_username", "dr-user"),
            ("relay.inbound_password", RELAY_PASSWORD),
        ],
    )
    .await;
    let base = [
        ("grant_type", "password"),
        ("client_id", INBOUND_CLIENT_ID),
        ("client_secret", RELAY_SECRET),
        ("username", "dr-user"),
    ];
    let mut good = base.to_vec();
    good.push(("password", RELAY_PASSWORD));
    let (status, body, _) = token_request(&relay, &good).await;
    assert_eq!(status, 200, "{body}");
    assert_token_opens_the_webhook(&relay, body["access_token"].as_str().unwrap(), "evt-password-grant").await;
    let mut bad = base.to_vec();
    bad.push(("password", "wrong"));
    let (status, body, _) = token_request(&relay, &bad).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
}
