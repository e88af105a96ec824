use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::helpers::*;

/// One way to configure `register`, and the exact webhook body DR must receive for it.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    env: Vec<(&'static str, String)>,
    body: Value,
}

fn step_11_oauth(token_url: &str, user: bool, grant: &str) -> Value {
    let mut oauth = json!({"tokenEndPoint": token_url, "clientID": "3MVG9consumerKey", "clientSecret": SF_CLIENT_SECRET, "grantType": grant});
    if user {
        oauth["userName"] = json!("integration@acme.com.uat");
        oauth["password"] = json!(SF_PASSWORD);
    }
    oauth
}

fn webhook_body(address: String, oauth: Value, api_version: &str) -> Value {
    json!({
        "types": eight_types(),
        "apiVersion": api_version,
        "enabled": true,
        "address": address,
        "transportType": "OAUTH",
        "oauth": oauth,
    })
}

fn relay_env(dr: &DrStandIn) -> Vec<(&'static str, String)> {
    vec![
        ("DRSF__DIGITAL_RIVER__API_BASE_URL", dr.uri()),
        ("DRSF__DIGITAL_RIVER__API_KEY", API_KEY.to_owned()),
        ("DRSF__RELAY__PUBLIC_URL", "https://relay.acme.com/".to_owned()),
        ("DRSF__RELAY__INBOUND_CLIENT_ID", "digitalriver".to_owned()),
        ("DRSF__RELAY__INBOUND_CLIENT_SECRET", RELAY_SECRET.to_owned()),
    ]
}

fn cases(dr: &DrStandIn) -> Vec<Case> {
    let sandbox_address = format!("{SANDBOX_DOMAIN}{APEX_PATH}");
    let mut production = sandbox_password_env(dr);
    production.extend([
        ("DRSF__SALESFORCE__MY_DOMAIN_URL", PROD_DOMAIN.to_owned()),
        ("DRSF__SALESFORCE__ENVIRONMENT", "production".to_owned()),
        ("DRSF__DIGITAL_RIVER__API_VERSION", "2021-12-13".to_owned()),
    ]);
    let mut client_credentials = sandbox_password_env(dr);
    client_credentials.push(("DRSF__SALESFORCE__GRANT_TYPE", "client_credentials".to_owned()));
    let mut relay_password = relay_env(dr);
    relay_password.extend([
        ("DRSF__RELAY__INBOUND_GRANT_TYPE", "password".to_owned()),
        ("DRSF__RELAY__INBOUND_USERNAME", "dr-user".to_owned()),
        ("DRSF__RELAY__INBOUND_PASSWORD", RELAY_PASSWORD.to_owned()),
    ]);
    let relay_oauth = |user: bool, grant: &str| {
        let mut oauth = json!({"tokenEndPoint": "https://relay.acme.com/oauth2/token", "clientID": "digitalriver", "clientSecret": RELAY_SECRET, "grantType": grant});
        if user {
            oauth["userName"] = json!("dr-user");
            oauth["password"] = json!(RELAY_PASSWORD);
        }
        oauth
    };
    vec![
        Case {
            name: "salesforce target, password grant, sandbox token host",
            args: &["--target", "salesforce"],
            env: sandbox_password_env(dr),
            body: webhook_body(
                sandbox_address.clone(),
                step_11_oauth("https://test.salesforce.com/services/oauth2/token", true, "password"),
                "default",
            ),
        },
        Case {
            name: "salesforce target, password grant, production token host (--env production)",
            args: &["--env", "production"],
            env: production,
            body: webhook_body(
                format!("{PROD_DOMAIN}{APEX_PATH}"),
                step_11_oauth("https://login.salesforce.com/services/oauth2/token", true, "password"),
                "2021-12-13",
            ),
        },
        Case {
            name: "salesforce target, client credentials on the My Domain host",
            args: &[],
            env: client_credentials,
            body: webhook_body(
                sandbox_address,
                step_11_oauth(
                    &format!("{SANDBOX_DOMAIN}/services/oauth2/token"),
                    false,
                    "client_credentials",
                ),
                "default",
            ),
        },
        Case {
            name: "relay target, client credentials",
            args: &["--target", "relay"],
            env: relay_env(dr),
            body: webhook_body(
                "https://relay.acme.com/webhooks/digitalriver".to_owned(),
                relay_oauth(false, "client_credentials"),
                "default",
            ),
        },
        Case {
            name: "relay target, password grant",
            args: &["--target", "relay"],
            env: relay_password,
            body: webhook_body(
                "https://relay.acme.com/webhooks/digitalriver".to_owned(),
                relay_oauth(true, "password"),
                "default",
            ),
        },
    ]
}

async fn register(case: &Case) -> Output {
    let mut args = vec!["register"];
    args.extend_from_slice(case.args);
    cli(&args).envs(&case.env).run().await
}

#[tokio::test]
async fn each_target_and_grant_posts_its_exact_body() {
    let probe = DrStandIn::start().await;
    for index in 0..cases(&probe).len() {
        let dr = DrStandIn::start().await;
        let case = cases(&dr).remove(index);
        let out = register(&case).await;
        assert_eq!(out.code, 0, "{}: {}", case.name, out.stderr);
        assert!(
            out.stdout.contains("wh_1") && out.stdout.contains("created"),
            "{}: {}",
            case.name,
            out.stdout
        );
        assert_eq!(dr.bodies("POST").await, vec![case.body.clone()], "{}", case.name);
        assert_eq!(dr.writes().await, 1, "{}", case.name);
    }
}

#[tokio::test]
async fn each_target_and_grant_patches_with_its_exact_body() {
    let probe = DrStandIn::start().await;
    for index in 0..cases(&probe).len() {
        let dr = DrStandIn::start().await;
        let case = cases(&dr).remove(index);
        // DR has the webhook already, without order.blocked and disabled.
        let mut existing = case.body.clone();
        existing["id"] = json!("wh_7");
        existing["enabled"] = json!(false);
        existing["types"]
            .as_array_mut()
            .unwrap()
            .retain(|t| t != "order.blocked");
        dr.seed(existing);

        let out = register(&case).await;
        assert_eq!(out.code, 0, "{}: {}", case.name, out.stderr);
        assert!(out.stdout.contains("updated"), "{}: {}", case.name, out.stdout);
        assert!(
            out.stdout.contains("types: 7 types -> 8 types (add order.blocked)"),
            "{}: {}",
            case.name,
            out.stdout
        );
        assert!(
            out.stdout.contains("enabled: false -> true"),
            "{}: {}",
            case.name,
            out.stdout
        );
        let patches = dr.requests("PATCH").await;
        assert_eq!(patches.len(), 1, "{}", case.name);
        assert_eq!(patches[0].url.path(), "/webhooks/wh_7");
        assert_eq!(
            serde_json::from_slice::<Value>(&patches[0].body).unwrap(),
            case.body,
            "{}",
            case.name
        );
        assert_eq!(dr.writes().await, 1, "{}: only the PATCH", case.name);
    }
}

#[tokio::test]
async fn register_twice_writes_once_and_the_second_run_says_unchanged() {
    let dr = DrStandIn::start().await;
    let first = cli(&["register"]).envs(&sandbox_password_env(&dr)).run().await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let second = cli(&["register", "--output", "json"])
        .envs(&sandbox_password_env(&dr))
        .run()
        .await;
    assert_eq!(second.code, 0, "{}", second.stderr);

    assert_eq!(dr.writes().await, 1, "exactly one write over both runs");
    let report = second.json();
    assert_eq!(report["action"], "unchanged");
    assert_eq!(report["webhookId"], "wh_1");
    assert_eq!(report["changes"], json!([]));
}

#[tokio::test]
async fn changing_one_event_type_makes_exactly_one_patch() {
    let dr = DrStandIn::start().await;
    assert_eq!(cli(&["register"]).envs(&sandbox_password_env(&dr)).run().await.code, 0);
    let seven = "order.accepted,order.cancelled,order.complete,order.pending_payment,order.review_opened,order.credit_memo.created,order.invoice.created";
    let out = cli(&["register"])
        .envs(&sandbox_password_env(&dr))
        .env("DRSF__DIGITAL_RIVER__EVENT_TYPES", seven)
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("types: 8 types -> 7 types (remove order.blocked)"),
        "{}",
        out.stdout
    );
    let patches = dr.bodies("PATCH").await;
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0]["types"], json!(seven.split(',').collect::<Vec<_>>()));
    assert_eq!(dr.writes().await, 2, "one POST, then one PATCH");
}

#[tokio::test]
async fn a_changed_secret_that_dr_shows_is_reported_as_changed_without_its_value() {
    let dr = DrStandIn::start_with(ListShape::BareArray, true).await;
    dr.seed(json!({
        "id": "wh_9", "address": format!("{SANDBOX_DOMAIN}{APEX_PATH}"), "types": eight_types(),
        "apiVersion": "default", "enabled": true, "transportType": "OAUTH",
        "oauth": {"tokenEndPoint": "https://test.salesforce.com/services/oauth2/token", "clientID": "3MVG9consumerKey",
                  "clientSecret": "an-old-secret-value", "userName": "integration@acme.com.uat", "grantType": "password"}
    }));
    let out = cli(&["register", "--output", "json"])
        .envs(&sandbox_password_env(&dr))
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = out.json();
    assert_eq!(report["action"], "updated");
    assert_eq!(report["changes"], json!([{"field": "oauth.clientSecret"}]));
    assert!(!out.stdout.contains("an-old-secret-value"));
    assert_eq!(dr.requests("PATCH").await.len(), 1);
}

#[tokio::test]
async fn dry_run_prints_the_redacted_body_and_writes_nothing() {
    let dr = DrStandIn::start().await;
    let out = cli(&["register", "--dry-run"])
        .envs(&sandbox_password_env(&dr))
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(dr.writes().await, 0);
    assert!(out.stdout.contains("would create"), "{}", out.stdout);
    assert!(out.stdout.contains("\"clientSecret\": \"***\""), "{}", out.stdout);
    assert!(out.stdout.contains("\"password\": \"***\""), "{}", out.stdout);

    let json_out = cli(&["register", "--dry-run", "--output", "json"])
        .envs(&sandbox_password_env(&dr))
        .run()
        .await;
    let report = json_out.json();
    assert_eq!(report["action"], "would_create");
    assert_eq!(report["body"]["oauth"]["clientSecret"], "***");
    assert_eq!(
        report["body"]["oauth"]["tokenEndPoint"],
        "https://test.salesforce.com/services/oauth2/token"
    );
    assert_eq!(dr.writes().await, 0);
}

#[tokio::test]
async fn dry_run_of_an_update_writes_nothing() {
    let dr = DrStandIn::start().await;
    assert_eq!(cli(&["register"]).envs(&sandbox_password_env(&dr)).run().await.code, 0);
    let out = cli(&["register", "--dry-run"])
        .envs(&sandbox_password_env(&dr))
        .env("DRSF__DIGITAL_RIVER__EVENT_TYPES", "order.accepted")
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("would update") && out.stdout.contains("PATCH /webhooks/wh_1"),
        "{}",
        out.stdout
    );
    assert_eq!(dr.writes().await, 1, "only the first, real run wrote");
}

#[tokio::test]
async fn a_dr_400_names_each_parameter_and_exits_3() {
    let dr = DrStandIn::always(ResponseTemplate::new(400).set_body_json(json!({
        "type": "bad_request",
        "errors": [
            {"code": "invalid_parameter", "parameter": "address", "message": "The address must be reachable."},
            {"code": "invalid_parameter", "parameter": "oauth.tokenEndPoint", "message": "Unsupported token endpoint."}
        ]
    })))
    .await;
    let out = cli(&["register"]).envs(&sandbox_password_env(&dr)).run().await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("parameter `address`: The address must be reachable."),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("parameter `oauth.tokenEndPoint`"), "{}", out.stderr);
}

#[tokio::test]
async fn a_wrong_api_key_is_explained_and_exits_3() {
    let dr = DrStandIn::start().await;
    let out = cli(&["register"])
        .envs(&sandbox_password_env(&dr))
        .env("DRSF__DIGITAL_RIVER__API_KEY", "sk_test_wrong")
        .run()
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("digital_river.api_key") && out.stderr.contains("test key"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn server_errors_are_retried_then_exit_4() {
    let dr = DrStandIn::always(ResponseTemplate::new(503).set_body_string("<html>maintenance</html>")).await;
    let out = cli(&["register"])
        .envs(&sandbox_password_env(&dr))
        .env("DRSF__DIGITAL_RIVER__MAX_RETRIES", "2")
        .run()
        .await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert_eq!(dr.requests("GET").await.len(), 3, "one try and two retries");
    assert!(out.stderr.contains("503"), "{}", out.stderr);
}

#[tokio::test]
async fn an_unreachable_dr_exits_4() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let dr = DrStandIn::start().await;
    let out = cli(&["register"])
        .envs(&sandbox_password_env(&dr))
        .env("DRSF__DIGITAL_RIVER__API_BASE_URL", closed)
        .env("DRSF__DIGITAL_RIVER__MAX_RETRIES", "1")
        .run()
        .await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(out.stderr.contains("could not reach Digital River"), "{}", out.stderr);
}

#[tokio::test]
async fn a_paged_list_answer_is_understood() {
    let dr = DrStandIn::start_with(ListShape::Paged, false).await;
    assert_eq!(cli(&["register"]).envs(&sandbox_password_env(&dr)).run().await.code, 0);
    let out = cli(&["register"]).envs(&sandbox_password_env(&dr)).run().await;
    assert!(out.stdout.contains("unchanged"), "{}", out.stdout);
    assert_eq!(dr.writes().await, 1);
}

#[tokio::test]
async fn secrets_can_come_from_files() {
    let dr = DrStandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dr_api_key");
    std::fs::write(&key_file, format!("{API_KEY}\n")).unwrap();
    let out = cli(&["register"])
        .envs(&sandbox_password_env(&dr))
        .env("DRSF__DIGITAL_RIVER__API_KEY", "")
        .env("DRSF__DIGITAL_RIVER__API_KEY_FILE", key_file.to_str().unwrap())
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(dr.writes().await, 1);
}

#[tokio::test]
async fn unregister_deletes_the_managed_webhook_only() {
    let dr = DrStandIn::start().await;
    dr.seed(json!({"id": "wh_other", "address": "https://elsewhere.example.com/hook", "types": ["order.accepted"]}));
    assert_eq!(cli(&["register"]).envs(&sandbox_password_env(&dr)).run().await.code, 0);
    let out = cli(&["unregister"]).envs(&sandbox_password_env(&dr)).run().await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("deleted"), "{}", out.stdout);
    let deletes = dr.requests("DELETE").await;
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].url.path(), "/webhooks/wh_2");
    let remaining = dr.webhooks.lock().unwrap().clone();
    assert_eq!(remaining.len(), 1);
    assert_eq!(remaining[0]["id"], "wh_other");
}
