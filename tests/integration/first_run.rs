//! Day one: `demo` with nothing configured, `trigger` against a running relay, `healthcheck`.

use dr_sf_bridge::store::EventStatus;

use crate::helpers::*;
use crate::relay_helpers::*;

#[tokio::test]
async fn demo_delivers_the_eight_events_shows_a_retry_and_one_event_the_org_refuses() {
    // Nothing configured: no DRSF__ variables at all (cli() starts from an empty environment).
    let out = cli(&["demo"]).run().await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for event_type in dr_sf_bridge::domain::EventType::SUPPORTED {
        assert!(out.stdout.contains(event_type), "{event_type} missing:\n{}", out.stdout);
    }
    assert!(out.stdout.contains("acknowledged (202)"), "{}", out.stdout);
    assert!(out.stdout.contains("will retry"), "a retry is shown:\n{}", out.stdout);
    assert!(out.stdout.contains("8 of 9 events delivered"), "{}", out.stdout);
    assert!(
        out.stdout.contains("refused (400) → dead") && out.stdout.contains("1 dead, as planned"),
        "the refused event is shown dying, with what to do:\n{}",
        out.stdout
    );

    let json = cli(&["demo", "--output", "json"]).run().await;
    assert_eq!(json.code, 0, "{}", json.stderr);
    let report = json.json();
    assert_eq!(report["delivered"], 8);
    assert_eq!(report["dead"], 1);
    assert!(report["retried"].as_u64().unwrap() >= 1, "{report}");
    assert!(
        report["tokenGrants"].as_u64().unwrap() >= 2,
        "the expired session was signed in again: {report}"
    );
}

fn trigger_env(relay: &TestRelay) -> Vec<(&'static str, String)> {
    vec![
        ("DRSF__RELAY__INBOUND_CLIENT_ID", INBOUND_CLIENT_ID.to_owned()),
        ("DRSF__RELAY__INBOUND_CLIENT_SECRET", RELAY_SECRET.to_owned()),
        ("DRSF__RELAY__INBOUND_TOKEN_KEY", TOKEN_KEY.to_owned()),
        ("DRSF__DIGITAL_RIVER__SIGNING_SECRETS", SIGNING_SECRET.to_owned()),
        ("DRSF__RELAY__PUBLIC_URL", relay.address.clone()),
    ]
}

#[tokio::test]
async fn trigger_sends_signed_events_with_an_oauth_token_that_the_relay_accepts() {
    let relay = spawn_app().await;
    let out = cli(&["trigger", "order.complete", "--count", "5", "--order", "o-trigger"])
        .envs(&trigger_env(&relay))
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("5 acknowledged"), "{}", out.stdout);
    let listed = relay
        .store
        .list(dr_sf_bridge::store::EventFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 5);
    assert!(
        listed
            .iter()
            .all(|e| e.event_type == "order.complete" && e.order_key.as_deref() == Some("o-trigger"))
    );
    wait_until("delivered", || async {
        relay.status_of(&listed[0].id).await == Some(EventStatus::Delivered)
    })
    .await;
}

#[tokio::test]
async fn trigger_with_a_wrong_secret_reports_the_401_and_fails() {
    let relay = spawn_app().await;
    let mut env = trigger_env(&relay);
    env.retain(|(k, _)| *k != "DRSF__DIGITAL_RIVER__SIGNING_SECRETS");
    env.push((
        "DRSF__DIGITAL_RIVER__SIGNING_SECRETS",
        "whsec_not_the_relays_secret".to_owned(),
    ));
    let out = cli(&["trigger", "order.accepted"]).envs(&env).run().await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("401") && out.stderr.contains("invalid_signature"),
        "{}",
        out.stderr
    );

    env.retain(|(k, _)| *k != "DRSF__RELAY__INBOUND_CLIENT_SECRET");
    env.push((
        "DRSF__RELAY__INBOUND_CLIENT_SECRET",
        "a-wrong-client-secret-123".to_owned(),
    ));
    let out = cli(&["trigger", "order.accepted"]).envs(&env).run().await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("401") && out.stderr.contains("invalid_client"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn healthcheck_passes_against_a_ready_relay_and_fails_against_a_stopped_one() {
    let relay = spawn_app().await;
    let address = relay.address.clone();
    let ready = cli(&["healthcheck", &address]).run().await;
    assert_eq!(ready.code, 0, "{}", ready.stderr);
    let host_port = address.trim_start_matches("http://");
    let bare = cli(&["healthcheck", host_port]).run().await;
    assert_eq!(bare.code, 0, "host:port, as relay.listen is written: {}", bare.stderr);
    relay.stop().await;
    let stopped = cli(&["healthcheck", &address]).run().await;
    assert_ne!(stopped.code, 0);
    assert!(stopped.stderr.contains("readyz"), "{}", stopped.stderr);
}

#[tokio::test]
async fn a_misspelt_variable_fails_validation_naming_the_nearest_key() {
    let dr = DrStandIn::start().await;
    let out = cli(&["register", "--dry-run"])
        .envs(&sandbox_password_env(&dr))
        .env("DRSF__SALESFORCE__CLIENT_SECRTE", "typo")
        .run()
        .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("salesforce.client_secrte")
            && out.stderr.contains("the variable DRSF__SALESFORCE__CLIENT_SECRTE")
            && out
                .stderr
                .contains("did you mean `salesforce.client_secret` (DRSF__SALESFORCE__CLIENT_SECRET)?"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_host_name_listen_address_works() {
    let relay = spawn_app_with(
        crate::salesforce_standin::SalesforceStandIn::start().await,
        &[("relay.listen", "localhost:0")],
    )
    .await;
    let port = relay.address.rsplit(':').next().unwrap().to_owned();
    let answer = reqwest::get(format!("http://localhost:{port}/healthz")).await.unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn logs_written_to_a_file_carry_no_colour_codes() {
    let dr = DrStandIn::always(wiremock::ResponseTemplate::new(503)).await;
    let out = cli(&["webhooks", "list"]).envs(&sandbox_password_env(&dr)).run().await;
    assert_eq!(out.code, 4);
    assert!(out.stderr.contains("WARN"), "the retries were logged:\n{}", out.stderr);
    assert!(
        !out.stderr.contains('\u{1b}'),
        "escape codes in a file:\n{:?}",
        out.stderr
    );
}

#[tokio::test]
async fn a_drsf_variable_with_one_underscore_or_a_typo_is_named_with_the_one_meant() {
    let dr = DrStandIn::start().await;
    let out = cli(&["register", "--dry-run"])
        .envs(&sandbox_password_env(&dr))
        .env("DRSF_STORAGE__URL", "sqlite:///tmp/x.db")
        .env("DRSF_ENVIROMENT", "production")
        .run()
        .await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("DRSF_STORAGE__URL") && out.stderr.contains("did you mean `DRSF__STORAGE__URL`?"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("DRSF_ENVIROMENT") && out.stderr.contains("did you mean `DRSF_ENV`?"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn the_start_up_line_names_the_address_the_store_each_org_and_what_runs() {
    let relay =
        crate::relay_helpers::spawn_stepped_app_with(crate::salesforce_standin::SalesforceStandIn::start().await, &[])
            .await;
    crate::relay_helpers::wait_until("the start-up line", || async {
        relay.logs.text().contains("relay listening")
    })
    .await;
    let logs = relay.logs.text();
    let line = logs.lines().find(|l| l.contains("relay listening")).unwrap();
    for expected in [
        "listen=127.0.0.1:",
        "store=sqlite://",
        "test events → 127.0.0.1 (password grant)",
        "status_page=off",
        "reconcile=off",
        "confirm_in_salesforce=true",
        "notify_channels=0",
    ] {
        assert!(line.contains(expected), "{expected:?} in {line}");
    }
}

#[tokio::test]
async fn the_demo_turns_the_status_page_on_and_shows_full_event_ids() {
    use secrecy::ExposeSecret;
    let mut lines = Vec::new();
    let demo = dr_sf_bridge::ops::demo::run(|line| lines.push(line)).await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let signed_in = http
        .post(format!("{}/ui/sign-in", demo.report.relay_url))
        .form(&[
            ("token", demo.credentials.admin_token.expose_secret()),
            ("next", "/ui/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303, "the demo's status page takes its admin token");
    let listed = lines
        .iter()
        .find(|l| l.starts_with("order.accepted"))
        .expect("a line per event");
    let id = listed.split_whitespace().nth(1).unwrap();
    assert!(!id.ends_with('…') && id.len() > 8, "a full id: {listed}");
    demo.stop().await.unwrap();
}
