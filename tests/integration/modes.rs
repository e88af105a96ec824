//! Test and live modes never cross: one relay serving a sandbox for test events and production for
//! live ones, each mode signed with its own secret, each org on its own worker — and `register`
//! creating each mode's webhook with that mode's key.

use std::collections::BTreeSet;
use std::time::Duration;

use dr_sf_bridge::domain::EventId;
use dr_sf_bridge::store::EventStatus;
use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::helpers::*;
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

const TEST_SECRET: &str = "whsec_TEST_mode_signing_secret";
const LIVE_SECRET: &str = "whsec_LIVE_mode_signing_secret";
const ORG_KEYS: [&str; 6] = [
    "my_domain_url",
    "token_url",
    "client_id",
    "client_secret",
    "username",
    "password",
];

/// A relay with `[salesforce.test]` at `test` and `[salesforce.live]` at `live`, and each mode's
/// own signing secret.
async fn two_target_relay(test: SalesforceStandIn, live: &SalesforceStandIn, extra: &[(&str, &str)]) -> TestRelay {
    let dir = tempfile::tempdir().unwrap();
    let mut all = relay_overrides(&test, &dir.path().join("relay.db"), &[]);
    all.retain(|(k, _)| {
        k != "digital_river.signing_secrets" && !ORG_KEYS.iter().any(|name| *k == format!("salesforce.{name}"))
    });
    for (mode, sf) in [("test", &test), ("live", live)] {
        let user = if mode == "test" {
            "integration@acme.com.uat"
        } else {
            "integration@acme.com"
        };
        for (name, value) in [
            ("my_domain_url", sf.uri()),
            ("token_url", format!("{}{TOKEN_PATH}", sf.uri())),
            ("client_id", "3MVG9consumerKey".to_owned()),
            ("client_secret", SF_CLIENT_SECRET.to_owned()),
            ("username", user.to_owned()),
            ("password", SF_PASSWORD.to_owned()),
        ] {
            all.push((format!("salesforce.{mode}.{name}"), value));
        }
    }
    all.push(("digital_river.test.signing_secrets".into(), TEST_SECRET.into()));
    all.push(("digital_river.live.signing_secrets".into(), LIVE_SECRET.into()));
    all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    spawn_configured(test, dir, all).await
}

/// A fixture event of the given mode.
fn mode_event(id: &str, order: &str, live: bool) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(&event("order.accepted", id, order)).unwrap();
    value["liveMode"] = Value::Bool(live);
    serde_json::to_vec(&value).unwrap()
}

async fn post_signed(relay: &TestRelay, body: &[u8], secret: &str) -> reqwest::Response {
    let signature = dr_sf_bridge::digital_river::signature::sign(secret, unix_now(), body);
    relay.post_raw(body, Some(&signature), Some(&basic_header())).await
}

async fn accepting_org() -> SalesforceStandIn {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    sf
}

#[tokio::test]
async fn two_hundred_events_of_mixed_modes_each_reach_only_the_org_of_their_mode() {
    let live_org = accepting_org().await;
    let relay = two_target_relay(accepting_org().await, &live_org, &[]).await;
    let (mut test_ids, mut live_ids) = (BTreeSet::new(), BTreeSet::new());
    for n in 0..200 {
        let live = n % 3 == 0;
        let mode = if live { "live" } else { "test" };
        let id = format!("evt-{mode}-{n}");
        let body = mode_event(&id, &format!("o-{mode}-{}", n % 25), live);
        let response = post_signed(&relay, &body, if live { LIVE_SECRET } else { TEST_SECRET }).await;
        assert_eq!(response.status(), 202, "{id}: {}", response.text().await.unwrap());
        if live { &mut live_ids } else { &mut test_ids }.insert(id);
    }
    poll_until(
        "every event delivered",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async { relay.sf.delivered_ids().await.len() + live_org.delivered_ids().await.len() >= 200 },
    )
    .await;
    let at_sandbox: BTreeSet<String> = relay.sf.delivered_ids().await.into_iter().collect();
    let at_production: BTreeSet<String> = live_org.delivered_ids().await.into_iter().collect();
    assert_eq!(at_sandbox, test_ids, "the sandbox got exactly the test events");
    assert_eq!(at_production, live_ids, "production got exactly the live events");
    assert_eq!(relay.sf.delivered_ids().await.len(), test_ids.len(), "each once");
    assert_eq!(live_org.delivered_ids().await.len(), live_ids.len(), "each once");

    let (summary, _) = relay.stored("evt-live-0").await;
    assert_eq!(summary.target.as_str(), "live");
    let metrics = relay.metrics().await;
    for line in [
        format!(
            "drsf_deliveries_total{{target=\"test\",outcome=\"delivered\"}} {}",
            test_ids.len()
        ),
        format!(
            "drsf_deliveries_total{{target=\"live\",outcome=\"delivered\"}} {}",
            live_ids.len()
        ),
        "drsf_salesforce_token_grants_total{target=\"test\"} 1".to_owned(),
        "drsf_salesforce_token_grants_total{target=\"live\"} 1".to_owned(),
        format!(
            "drsf_delivery_duration_seconds_count{{target=\"live\"}} {}",
            live_ids.len()
        ),
    ] {
        assert!(metrics.contains(&line), "{line} missing from:\n{metrics}");
    }
}

#[tokio::test]
async fn each_mode_is_signed_with_its_own_secret() {
    let live_org = accepting_org().await;
    let relay = two_target_relay(accepting_org().await, &live_org, &[]).await;
    let test_event = mode_event("evt-t", "o-t", false);
    let live_event = mode_event("evt-l", "o-l", true);

    for (body, secret, what) in [
        (&test_event, LIVE_SECRET, "a test event signed with the live secret"),
        (&live_event, TEST_SECRET, "a live event signed with the test secret"),
    ] {
        let response = post_signed(&relay, body, secret).await;
        assert_eq!(response.status(), 401, "{what}");
        let json: Value = response.json().await.unwrap();
        assert_eq!(json["error"], "invalid_signature", "{what}");
    }
    assert_eq!(relay.status_of("evt-t").await, None, "nothing stored");
    assert_eq!(relay.status_of("evt-l").await, None, "nothing stored");
    assert!(
        relay
            .metrics()
            .await
            .contains("drsf_inbound_rejections_total{reason=\"signature_other_mode\"} 2")
    );

    assert_eq!(post_signed(&relay, &test_event, TEST_SECRET).await.status(), 202);
    assert_eq!(post_signed(&relay, &live_event, LIVE_SECRET).await.status(), 202);
    relay.wait_for_status("evt-t", EventStatus::Delivered).await;
    relay.wait_for_status("evt-l", EventStatus::Delivered).await;
}

#[tokio::test]
async fn a_sandbox_that_hangs_does_not_hold_back_live_events() {
    // The sandbox takes every request and answers none within its 30 s timeout: all its delivery
    // slots stay busy. With one worker for both orgs, live events would wait behind them.
    let sandbox = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .mount(&sandbox.server)
        .await;
    let live_org = accepting_org().await;
    let relay = two_target_relay(
        sandbox,
        &live_org,
        &[
            ("salesforce.test.request_timeout_secs", "30"),
            ("salesforce.max_in_flight", "4"),
        ],
    )
    .await;
    for n in 0..12 {
        let body = mode_event(&format!("evt-test-{n}"), &format!("o-test-{n}"), false);
        assert_eq!(post_signed(&relay, &body, TEST_SECRET).await.status(), 202);
    }
    poll_until(
        "the sandbox's slots are all busy",
        Duration::from_secs(60),
        Duration::from_millis(20),
        || async { relay.sf.apex_requests().await.len() >= 4 },
    )
    .await;

    let mut live_ids = BTreeSet::new();
    for n in 0..200 {
        let id = format!("evt-live-{n}");
        let body = mode_event(&id, &format!("o-live-{}", n % 40), true);
        assert_eq!(post_signed(&relay, &body, LIVE_SECRET).await.status(), 202);
        live_ids.insert(id);
    }
    poll_until(
        "every live event delivered while the sandbox hangs",
        Duration::from_secs(60),
        Duration::from_millis(20),
        || async { live_org.delivered_ids().await.len() >= 200 },
    )
    .await;
    let delivered: BTreeSet<String> = live_org.delivered_ids().await.into_iter().collect();
    assert_eq!(delivered, live_ids);
    for id in &live_ids {
        let (summary, attempts) = relay.stored(id).await;
        assert_eq!(summary.status, EventStatus::Delivered);
        assert_eq!(attempts.len(), 1, "{id} went through at its first attempt");
    }
    let stuck = relay.store.get(&EventId::parse("evt-test-0").unwrap()).await.unwrap();
    assert_eq!(
        stuck.unwrap().0.status,
        EventStatus::Pending,
        "the sandbox's events wait"
    );
    assert_eq!(
        relay.sf.apex_requests().await.len(),
        4,
        "the sandbox keeps its own limit of 4"
    );
    assert!(
        relay
            .metrics()
            .await
            .contains("drsf_delivery_breaker_open{target=\"live\"} 0")
    );
}

fn two_org_env(dr: &DrStandIn) -> Vec<(&'static str, String)> {
    vec![
        ("DRSF__DIGITAL_RIVER__API_BASE_URL", dr.uri()),
        ("DRSF__DIGITAL_RIVER__RETRY_BASE_DELAY_MS", "10".to_owned()),
        ("DRSF__DIGITAL_RIVER__TEST__API_KEY", API_KEY.to_owned()),
        ("DRSF__DIGITAL_RIVER__LIVE__API_KEY", LIVE_API_KEY.to_owned()),
        ("DRSF__SALESFORCE__TEST__MY_DOMAIN_URL", SANDBOX_DOMAIN.to_owned()),
        ("DRSF__SALESFORCE__TEST__CLIENT_ID", "3MVG9sandboxKey".to_owned()),
        ("DRSF__SALESFORCE__TEST__CLIENT_SECRET", SF_CLIENT_SECRET.to_owned()),
        (
            "DRSF__SALESFORCE__TEST__USERNAME",
            "integration@acme.com.uat".to_owned(),
        ),
        ("DRSF__SALESFORCE__TEST__PASSWORD", SF_PASSWORD.to_owned()),
        ("DRSF__SALESFORCE__LIVE__MY_DOMAIN_URL", PROD_DOMAIN.to_owned()),
        ("DRSF__SALESFORCE__LIVE__CLIENT_ID", "3MVG9productionKey".to_owned()),
        ("DRSF__SALESFORCE__LIVE__CLIENT_SECRET", SF_CLIENT_SECRET.to_owned()),
        ("DRSF__SALESFORCE__LIVE__USERNAME", "integration@acme.com".to_owned()),
        ("DRSF__SALESFORCE__LIVE__PASSWORD", SF_PASSWORD.to_owned()),
    ]
}

#[tokio::test]
async fn register_mode_both_creates_each_modes_webhook_with_its_key_and_org() {
    let dr = DrStandIn::start().await;
    let out = cli(&[
        "--output",
        "json",
        "register",
        "--target",
        "salesforce",
        "--mode",
        "both",
    ])
    .envs(&two_org_env(&dr))
    .run()
    .await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let reports = out.json();
    assert_eq!(reports.as_array().map(Vec::len), Some(2), "{reports}");
    assert_eq!(reports[0]["mode"], "test");
    assert_eq!(reports[1]["mode"], "live");
    assert!(reports.as_array().unwrap().iter().all(|r| r["action"] == "created"));

    let posts = dr.requests("POST").await;
    assert_eq!(posts.len(), 2);
    let expected = [
        (
            API_KEY,
            SANDBOX_DOMAIN,
            "https://test.salesforce.com",
            "3MVG9sandboxKey",
        ),
        (
            LIVE_API_KEY,
            PROD_DOMAIN,
            "https://login.salesforce.com",
            "3MVG9productionKey",
        ),
    ];
    for (post, (key, domain, token_host, client_id)) in posts.iter().zip(expected) {
        assert_eq!(
            post.headers.get("authorization").unwrap().to_str().unwrap(),
            format!("Bearer {key}")
        );
        let body: Value = serde_json::from_slice(&post.body).unwrap();
        assert_eq!(body["address"], json!(format!("{domain}{APEX_PATH}")));
        assert_eq!(
            body["oauth"]["tokenEndPoint"],
            json!(format!("{token_host}/services/oauth2/token"))
        );
        assert_eq!(body["oauth"]["clientID"], json!(client_id));
    }

    // Run again: each mode's webhook is found with its own key, and left alone.
    let again = cli(&["--output", "json", "register", "--target", "salesforce"])
        .envs(&two_org_env(&dr))
        .run()
        .await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    let reports = again.json();
    assert!(
        reports.as_array().unwrap().iter().all(|r| r["action"] == "unchanged"),
        "{reports}"
    );
    assert_eq!(dr.requests("POST").await.len(), 2, "nothing created twice");
}

#[tokio::test]
async fn register_refuses_a_mode_no_org_takes() {
    let dr = DrStandIn::start().await;
    let out = cli(&["register", "--mode", "live"])
        .envs(&sandbox_password_env(&dr))
        .run()
        .await;
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("no Salesforce target takes live events"),
        "{}",
        out.stderr
    );
    assert_eq!(dr.writes().await, 0);
}
