use serde_json::json;
use wiremock::ResponseTemplate;

use crate::helpers::*;

#[tokio::test]
async fn register_salesforce_password_sandbox_posts_the_exact_step_11_body() {
    let dr = DrStandIn::start().await;
    let out = cli(&["register", "--target", "salesforce"])
        .envs(&sandbox_password_env(&dr))
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("wh_1") && out.stdout.contains("created"),
        "{}",
        out.stdout
    );

    let posts = dr.bodies("POST").await;
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0],
        json!({
            "types": eight_types(),
            "apiVersion": "default",
            "enabled": true,
            "address": format!("{SANDBOX_DOMAIN}{APEX_PATH}"),
            "transportType": "OAUTH",
            "oauth": {
                "tokenEndPoint": "https://test.salesforce.com/services/oauth2/token",
                "clientID": "3MVG9consumerKey",
                "clientSecret": SF_CLIENT_SECRET,
                "userName": "integration@acme.com.uat",
                "password": SF_PASSWORD,
                "grantType": "password"
            }
        })
    );
}

#[tokio::test]
async fn register_salesforce_password_production_uses_the_login_token_host() {
    let dr = DrStandIn::start().await;
    let out = cli(&["register", "--env", "production"])
        .envs(&sandbox_password_env(&dr))
        .env("DRSF__SALESFORCE__ENVIRONMENT", "production")
        .env("DRSF__SALESFORCE__MY_DOMAIN_URL", PROD_DOMAIN)
        .env("DRSF__DIGITAL_RIVER__API_VERSION", "2021-12-13")
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let posts = dr.bodies("POST").await;
    assert_eq!(
        posts,
        vec![json!({
            "types": eight_types(),
            "apiVersion": "2021-12-13",
            "enabled": true,
            "address": format!("{PROD_DOMAIN}{APEX_PATH}"),
            "transportType": "OAUTH",
            "oauth": {
                "tokenEndPoint": "https://login.salesforce.com/services/oauth2/token",
                "clientID": "3MVG9consumerKey",
                "clientSecret": SF_CLIENT_SECRET,
                "userName": "integration@acme.com.uat",
                "password": SF_PASSWORD,
                "grantType": "password"
            }
        })]
    );
}

#[tokio::test]
async fn register_salesforce_client_credentials_uses_the_my_domain_token_url_and_no_user() {
    let dr = DrStandIn::start().await;
    let out = cli(&["register"])
        .envs(&sandbox_password_env(&dr))
        .env("DRSF__SALESFORCE__GRANT_TYPE", "client_credentials")
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        dr.bodies("POST").await,
        vec![json!({
            "types": eight_types(),
            "apiVersion": "default",
            "enabled": true,
            "address": format!("{SANDBOX_DOMAIN}{APEX_PATH}"),
            "transportType": "OAUTH",
            "oauth": {
                "tokenEndPoint": format!("{SANDBOX_DOMAIN}/services/oauth2/token"),
                "clientID": "3MVG9consumerKey",
                "clientSecret": SF_CLIENT_SECRET,
                "grantType": "client_credentials"
            }
        })]
    );
}

#[tokio::test]
async fn register_relay_points_dr_at_the_relay_and_its_token_endpoint() {
    let dr = DrStandIn::start().await;
    let out = cli(&["register", "--target", "relay"])
        .env("DRSF__DIGITAL_RIVER__API_BASE_URL", dr.uri())
        .env("DRSF__DIGITAL_RIVER__API_KEY", API_KEY)
        .env("DRSF__RELAY__PUBLIC_URL", "https://relay.acme.com")
        .env("DRSF__RELAY__INBOUND_CLIENT_ID", "digitalriver")
        .env("DRSF__RELAY__INBOUND_CLIENT_SECRET", RELAY_SECRET)
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        dr.bodies("POST").await,
        vec![json!({
            "types": eight_types(),
            "apiVersion": "default",
            "enabled": true,
            "address": "https://relay.acme.com/webhooks/digitalriver",
            "transportType": "OAUTH",
            "oauth": {
                "tokenEndPoint": "https://relay.acme.com/oauth2/token",
                "clientID": "digitalriver",
                "clientSecret": RELAY_SECRET,
                "grantType": "client_credentials"
            }
        })]
    );
}

#[tokio::test]
async fn register_relay_with_the_password_grant_sends_the_inbound_user() {
    let dr = DrStandIn::start().await;
    let out = cli(&["register", "--target", "relay"])
        .env("DRSF__DIGITAL_RIVER__API_BASE_URL", dr.uri())
        .env("DRSF__DIGITAL_RIVER__API_KEY", API_KEY)
        .env("DRSF__RELAY__PUBLIC_URL", "https://relay.acme.com/")
        .env("DRSF__RELAY__INBOUND_GRANT_TYPE", "password")
        .env("DRSF__RELAY__INBOUND_CLIENT_ID", "digitalriver")
        .env("DRSF__RELAY__INBOUND_CLIENT_SECRET", RELAY_SECRET)
        .env("DRSF__RELAY__INBOUND_USERNAME", "dr-user")
        .env("DRSF__RELAY__INBOUND_PASSWORD", RELAY_PASSWORD)
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let oauth = &dr.bodies("POST").await[0]["oauth"];
    assert_eq!(
        oauth,
        &json!({
            "tokenEndPoint": "https://relay.acme.com/oauth2/token",
            "clientID": "digitalriver",
            "clientSecret": RELAY_SECRET,
            "userName": "dr-user",
            "password": RELAY_PASSWORD,
            "grantType": "password"
        })
    );
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
async fn changing_one_event_type_makes_exactly_one_patch_with_the_full_body() {
    let dr = DrStandIn::start().await;
    assert_eq!(cli(&["register"]).envs(&sandbox_password_env(&dr)).run().await.code, 0);
    let seven = "order.accepted,order.cancelled,order.complete,order.pending_payment,order.review_opened,order.credit_memo.created,order.invoice.created";
    let out = cli(&["register"])
        .envs(&sandbox_password_env(&dr))
        .env("DRSF__DIGITAL_RIVER__EVENT_TYPES", seven)
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("updated"), "{}", out.stdout);
    assert!(
        out.stdout.contains("types: (none) -> remove order.blocked"),
        "{}",
        out.stdout
    );

    let patches = dr.requests("PATCH").await;
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].url.path(), "/webhooks/wh_1");
    assert_eq!(dr.requests("POST").await.len(), 1);
    let body: serde_json::Value = serde_json::from_slice(&patches[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "types": seven.split(',').collect::<Vec<_>>(),
            "apiVersion": "default",
            "enabled": true,
            "address": format!("{SANDBOX_DOMAIN}{APEX_PATH}"),
            "transportType": "OAUTH",
            "oauth": {
                "tokenEndPoint": "https://test.salesforce.com/services/oauth2/token",
                "clientID": "3MVG9consumerKey",
                "clientSecret": SF_CLIENT_SECRET,
                "userName": "integration@acme.com.uat",
                "password": SF_PASSWORD,
                "grantType": "password"
            }
        })
    );
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
