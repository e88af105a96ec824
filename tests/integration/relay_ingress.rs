//! What the relay answers DR, for good and bad requests.

use dr_sf_bridge::store::EventStatus;
use serde_json::Value;
use wiremock::ResponseTemplate;

use crate::relay_helpers::*;
use crate::salesforce_standin::*;

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_signed_authenticated_event_is_accepted_with_202() {
    let relay = spawn_app().await;
    let (status, body) = json_of(relay.post_event(&event("order.accepted", "evt-1", "o-1")).await).await;
    assert_eq!(status, 202);
    assert_eq!(body, serde_json::json!({"status": "accepted", "id": "evt-1"}));
    assert!(relay.status_of("evt-1").await.is_some(), "stored before the answer");
}

#[tokio::test]
async fn requests_without_valid_credentials_get_401() {
    let relay = spawn_app().await;
    let body = event("order.accepted", "evt-auth", "o-1");
    let sig = signed(&body);
    let wrong_basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{BASIC_USER}:wrong")
        )
    );
    for authorization in [
        None,
        Some(wrong_basic.as_str()),
        Some("Bearer not-a-token"),
        Some("Digest abc"),
    ] {
        let (status, json) = json_of(relay.post_raw(&body, Some(&sig), authorization).await).await;
        assert_eq!(status, 401, "{authorization:?}");
        assert_eq!(json["error"], "unauthorized");
    }
    assert_eq!(relay.status_of("evt-auth").await, None, "nothing stored");
    assert!(
        relay
            .metrics()
            .await
            .contains("drsf_inbound_rejections_total{reason=\"auth_missing\"} 1")
    );
    let logs = relay.logs.text();
    let refused = logs
        .lines()
        .find(|l| l.contains("refused an unauthenticated request"))
        .unwrap_or_else(|| panic!("the refusal is logged:\n{logs}"));
    assert!(
        refused.contains("client=127.0.0.1") && !refused.contains("Some("),
        "the client's address as an address: {refused}"
    );
}

#[tokio::test]
async fn bad_signatures_get_401_and_the_previous_secret_is_accepted() {
    let relay = spawn_app().await;
    let body = event("order.accepted", "evt-sig", "o-1");
    let now = unix_now();
    let sign = dr_sf_bridge::digital_river::signature::sign;
    let mut tampered = body.clone();
    let last = tampered.len() - 2;
    tampered[last] = b' ';
    let cases: Vec<(&str, Vec<u8>, Option<String>)> = vec![
        ("unsigned", body.clone(), None),
        (
            "wrong secret",
            body.clone(),
            Some(sign("whsec_someone_else", now, &body)),
        ),
        (
            "stale timestamp",
            body.clone(),
            Some(sign(SIGNING_SECRET, now - 301, &body)),
        ),
        (
            "tampered body",
            tampered.clone(),
            Some(sign(SIGNING_SECRET, now, &body)),
        ),
        ("garbage header", body.clone(), Some("nonsense".to_owned())),
    ];
    for (what, payload, signature) in cases {
        let (status, json) = json_of(
            relay
                .post_raw(&payload, signature.as_deref(), Some(&basic_header()))
                .await,
        )
        .await;
        assert_eq!(status, 401, "{what}");
        assert_eq!(json["error"], "invalid_signature", "{what}");
    }
    assert_eq!(relay.status_of("evt-sig").await, None);

    let rotated = sign(PREVIOUS_SIGNING_SECRET, now, &body);
    assert_eq!(
        relay
            .post_raw(&body, Some(&rotated), Some(&basic_header()))
            .await
            .status(),
        202
    );
    let metrics = relay.metrics().await;
    for reason in [
        "signature_missing",
        "signature_mismatch",
        "signature_stale",
        "signature_malformed",
    ] {
        assert!(metrics.contains(&format!("reason=\"{reason}\"")), "{reason}");
    }
}

#[tokio::test]
async fn an_oversized_body_gets_413() {
    let sf = SalesforceStandIn::start().await;
    let relay = spawn_app_with(sf, &[("relay.body_limit_bytes", "4096")]).await;
    let mut value: Value = serde_json::from_slice(&event("order.accepted", "evt-big", "o-1")).unwrap();
    value["data"]["object"]["padding"] = Value::String("x".repeat(5000));
    let body = serde_json::to_vec(&value).unwrap();
    let (status, json) = json_of(relay.post_event(&body).await).await;
    assert_eq!(status, 413);
    assert_eq!(json["error"], "payload_too_large");

    // Without a Content-Length (chunked) the limit still holds.
    let status = post_chunked(&relay, &body).await;
    assert_eq!(status, 413);
    assert_eq!(relay.status_of("evt-big").await, None);
}

/// Posts `body` with `Transfer-Encoding: chunked` over a raw connection; answers the status code.
async fn post_chunked(relay: &TestRelay, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = relay.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST /webhooks/digitalriver HTTP/1.1\r\nHost: {host}\r\nAuthorization: {}\r\nDigitalRiver-Signature: {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        basic_header(),
        signed(body)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(1024) {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn malformed_json_and_each_missing_field_get_400_naming_it() {
    let relay = spawn_app().await;
    let good: Value = serde_json::from_slice(&event("order.accepted", "evt-400", "o-1")).unwrap();
    let (status, json) = json_of(relay.post_event(b"{\"id\": \"x\", ").await).await;
    assert_eq!((status, json["field"].as_str()), (400, Some("body")));

    for (field, pointer) in [
        ("id", "/id"),
        ("type", "/type"),
        ("data", "/data"),
        ("data.object", "/data/object"),
        ("liveMode", "/liveMode"),
    ] {
        let mut broken = good.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() {
            &mut broken
        } else {
            broken.pointer_mut(parent).unwrap()
        };
        parent.as_object_mut().unwrap().remove(key);
        let (status, json) = json_of(relay.post_event(&serde_json::to_vec(&broken).unwrap()).await).await;
        assert_eq!(status, 400, "{field}");
        assert_eq!(json["error"], "invalid_event");
        assert_eq!(json["field"], field, "{json}");
    }
    assert_eq!(relay.status_of("evt-400").await, None);
    assert_eq!(relay.get("/healthz").await.status(), 200, "the server is still up");
}

#[tokio::test]
async fn an_unknown_event_type_is_acknowledged_with_200_and_never_delivered() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).expect(1).mount(&sf.server).await;
    let relay = spawn_app_with(sf, &[]).await;
    let mut value: Value = serde_json::from_slice(&event("order.accepted", "evt-refund", "o-1")).unwrap();
    value["type"] = Value::String("refund.pending".into());
    let (status, json) = json_of(relay.post_event(&serde_json::to_vec(&value).unwrap()).await).await;
    assert_eq!(status, 200);
    assert_eq!(json["status"], "ignored");
    assert_eq!(relay.status_of("evt-refund").await, Some(EventStatus::Ignored));

    // A subscribed event posted after it is delivered, and the ignored one never is.
    relay.accept(&event("order.accepted", "evt-after", "o-2")).await;
    relay.wait_for_status("evt-after", EventStatus::Delivered).await;
    let delivered: Vec<Value> = relay
        .sf
        .apex_requests()
        .await
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert!(delivered.iter().all(|e| e["id"] != "evt-refund"));
}

#[tokio::test]
async fn a_redelivered_event_is_acknowledged_and_not_stored_again() {
    let relay = spawn_app().await;
    let body = event("order.accepted", "evt-dup", "o-1");
    assert_eq!(relay.post_event(&body).await.status(), 202);
    let (status, json) = json_of(relay.post_event(&body).await).await;
    assert_eq!(status, 200);
    assert_eq!(json["status"], "duplicate");
}

#[tokio::test]
async fn a_store_that_cannot_commit_answers_503_and_stores_nothing() {
    let relay = spawn_app().await;
    let db = relay.dir.path().join("relay.db");
    // Another process holds the database's write lock.
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let response = relay.post_event(&event("order.accepted", "evt-locked", "o-1")).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "store_unavailable");
    assert_eq!(relay.get("/readyz").await.status(), 503);

    locker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(relay.get("/readyz").await.status(), 200);
    assert_eq!(
        relay.status_of("evt-locked").await,
        None,
        "the refused event was not kept"
    );
    relay.accept(&event("order.accepted", "evt-locked", "o-1")).await;
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let relay = spawn_app().await;
    assert_eq!(relay.get("/healthz").await.status(), 200);
    assert_eq!(relay.get("/readyz").await.status(), 200);
    relay.accept(&event("order.accepted", "evt-m", "o-m")).await;
    relay.wait_for_status("evt-m", EventStatus::Delivered).await;
    let metrics = relay.metrics().await;
    for line in [
        "drsf_events_received_total{event_type=\"order.accepted\",outcome=\"accepted\"} 1",
        "drsf_deliveries_total{target=\"test\",outcome=\"delivered\"} 1",
        "drsf_events{status=\"delivered\"} 1",
        "drsf_salesforce_token_grants_total{target=\"test\"} 1",
        "drsf_delivery_duration_seconds_count{target=\"test\"} 1",
        "drsf_oldest_pending_event_age_seconds 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    relay.logs.assert_no_secret();
}

#[tokio::test]
async fn a_second_relay_on_the_same_sqlite_file_does_not_start() {
    let relay = spawn_app().await;
    let second_sf = SalesforceStandIn::start().await;
    let options = dr_sf_bridge::settings::LoadOptions {
        config_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/config").into()),
        overrides: relay_overrides(&second_sf, &relay.dir.path().join("relay.db"), &[]),
        ..Default::default()
    };
    let settings = dr_sf_bridge::settings::load(&options, dr_sf_bridge::settings::Purpose::Relay).unwrap();
    let error = dr_sf_bridge::app::Application::build(settings)
        .await
        .err()
        .expect("refused while the first relay runs");
    assert!(format!("{error:#}").contains("another relay"), "{error:#}");
    relay
        .accept(&event("order.accepted", "evt-first-still-serves", "o-1"))
        .await;
}

#[tokio::test]
async fn an_event_whose_commit_fails_is_never_acknowledged() {
    let relay = spawn_app().await;
    // A deferred foreign key, broken by a trigger for one event id: every statement succeeds and
    // only the COMMIT fails, as on a disk that fills at the last write.
    let db = rusqlite::Connection::open(relay.dir.path().join("relay.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE guard_parent (id INTEGER PRIMARY KEY);
         CREATE TABLE guard_child (parent INTEGER REFERENCES guard_parent (id) DEFERRABLE INITIALLY DEFERRED);
         CREATE TRIGGER fail_the_commit AFTER INSERT ON events WHEN NEW.id = 'evt-commit-fails'
         BEGIN INSERT INTO guard_child VALUES (42); END;",
    )
    .unwrap();
    drop(db);

    let response = relay
        .post_event(&event("order.accepted", "evt-commit-fails", "o-1"))
        .await;
    assert!(
        !response.status().is_success(),
        "acknowledged an event that was not committed: {}",
        response.status()
    );
    let (status, json) = json_of(response).await;
    assert!(status >= 500, "{status}");
    assert!(
        json["error"].as_str().unwrap_or_default().starts_with("store"),
        "{json}"
    );
    assert_eq!(relay.status_of("evt-commit-fails").await, None, "nothing kept");
    relay.accept(&event("order.accepted", "evt-commit-works", "o-2")).await;
}

fn in_mode(body: &[u8], live: bool) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(body).unwrap();
    value["liveMode"] = Value::Bool(live);
    serde_json::to_vec(&value).unwrap()
}

#[tokio::test]
async fn a_live_event_at_a_sandbox_relay_is_acknowledged_kept_and_never_delivered() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).expect(1).mount(&sf.server).await;
    let relay = spawn_app_with(sf, &[]).await;
    let live = in_mode(&event("order.accepted", "evt-live", "o-live"), true);
    let (status, json) = json_of(relay.post_event(&live).await).await;
    assert_eq!(
        status, 200,
        "acknowledged, so that DR does not disable the webhook: {json}"
    );
    assert_eq!(json["status"], "rejected_mode");
    let (summary, attempts) = relay.stored("evt-live").await;
    assert_eq!(summary.status, EventStatus::RejectedMode);
    assert!(
        summary
            .last_error
            .unwrap_or_default()
            .contains("live event at a relay bound to test mode")
    );
    assert!(attempts.is_empty());
    assert!(
        relay
            .metrics()
            .await
            .contains("drsf_events_received_total{event_type=\"order.accepted\",outcome=\"rejected_mode\"} 1")
    );
    let logs = relay.logs.text();
    assert!(
        logs.lines()
            .any(|l| l.contains("ERROR") && l.contains("DR's live webhook probably points at this relay")),
        "logged as an error naming the likely misconfiguration:\n{logs}"
    );
    // A test event goes through as always (the one delivery the org expects).
    relay.accept(&event("order.accepted", "evt-test", "o-test")).await;
    relay.wait_for_status("evt-test", EventStatus::Delivered).await;
    assert_eq!(
        relay.status_of("evt-live").await,
        Some(EventStatus::RejectedMode),
        "still not delivered"
    );
}

#[tokio::test]
async fn a_relay_bound_to_live_mode_keeps_test_events_out() {
    let relay = spawn_app_with(
        {
            let sf = SalesforceStandIn::start().await;
            apex(ResponseTemplate::new(200)).mount(&sf.server).await;
            sf
        },
        &[("salesforce.mode", "live")],
    )
    .await;
    let (_, json) = json_of(relay.post_event(&event("order.accepted", "evt-t", "o-t")).await).await;
    assert_eq!(json["status"], "rejected_mode");
    let live = in_mode(&event("order.accepted", "evt-l", "o-l"), true);
    relay.accept(&live).await;
    relay.wait_for_status("evt-l", EventStatus::Delivered).await;
}
