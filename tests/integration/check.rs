//! `check` against stand-ins for DR and Salesforce, run as the real binary.

use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::salesforce_standin::*;

async fn org_with_package(sf: &SalesforceStandIn) {
    apex_resource_exists(sf).await;
    failure_records_answer(
        sf,
        ResponseTemplate::new(200).set_body_json(json!({"totalSize": 0, "done": true, "records": []})),
    )
    .await;
}

/// The DR package's Apex resource, answering a GET as it does: 405, it takes only POST.
async fn apex_resource_exists(sf: &SalesforceStandIn) {
    Mock::given(method("GET"))
        .and(path(APEX_PATH))
        .respond_with(sf_error(
            405,
            "METHOD_NOT_ALLOWED",
            "HTTP Method 'GET' not allowed. Allowed are POST",
        ))
        .mount(&sf.server)
        .await;
}

/// The org's answer to `check`'s one query of the DR package's failure records.
async fn failure_records_answer(sf: &SalesforceStandIn, answer: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path("/services/data/v60.0/query"))
        .and(query_param(
            "q",
            "SELECT Id FROM digitalriverv3__DR_Failed_Event__c LIMIT 1",
        ))
        .respond_with(answer)
        .mount(&sf.server)
        .await;
}

fn env(dr: &DrStandIn, sf: &SalesforceStandIn) -> Vec<(&'static str, String)> {
    let mut env = sandbox_password_env(dr);
    env.retain(|(k, _)| *k != "DRSF__SALESFORCE__MY_DOMAIN_URL");
    env.push(("DRSF__SALESFORCE__MY_DOMAIN_URL", sf.uri()));
    env.push(("DRSF__SALESFORCE__TOKEN_URL", format!("{}{TOKEN_PATH}", sf.uri())));
    env.push(("DRSF__SALESFORCE__TOKEN_RETRY_BASE_DELAY_MS", "10".to_owned()));
    env.push(("DRSF__DIGITAL_RIVER__SIGNING_SECRETS", "whsec_signing".to_owned()));
    env
}

#[tokio::test]
async fn check_passes_when_everything_is_in_place() {
    let dr = DrStandIn::start().await;
    let sf = SalesforceStandIn::start().await;
    org_with_package(&sf).await;
    assert_eq!(cli(&["register"]).envs(&env(&dr, &sf)).run().await.code, 0);

    let out = cli(&["check"]).envs(&env(&dr, &sf)).run().await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    for name in [
        "configuration",
        "Digital River API key",
        "webhook",
        "Salesforce token",
        "Apex REST resource",
        "DR failure records",
        "signing secret",
    ] {
        assert!(out.stdout.contains(&format!("✓ {name}")), "{name}:\n{}", out.stdout);
    }
    assert!(out.stdout.contains("password grant at 127.0.0.1"), "{}", out.stdout);
    let warning = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("! password flow"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        warning.contains("Winter '27") && warning.contains("client_credentials") && warning.contains("jwt_bearer"),
        "the password grant's end and both ways out:\n{}",
        out.stdout
    );

    let json_out = cli(&["check", "--output", "json"]).envs(&env(&dr, &sf)).run().await;
    let report = json_out.json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["checks"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn check_names_the_permission_when_the_failure_records_are_not_readable() {
    let dr = DrStandIn::start().await;
    let sf = SalesforceStandIn::start().await;
    apex_resource_exists(&sf).await;
    failure_records_answer(
        &sf,
        sf_error(
            400,
            "INVALID_TYPE",
            "\nSELECT Id FROM digitalriverv3__DR_Failed_Event__c LIMIT 1\n ^\nERROR at Row:1:Column:16\nsObject type 'digitalriverv3__DR_Failed_Event__c' is not supported.",
        ),
    )
    .await;
    assert_eq!(cli(&["register"]).envs(&env(&dr, &sf)).run().await.code, 0);
    let out = cli(&["check"]).envs(&env(&dr, &sf)).run().await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    let line = out
        .stdout
        .lines()
        .skip_while(|l| !l.contains("✗ DR failure records"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        line.contains("INVALID_TYPE") && line.contains("is not supported"),
        "{}",
        out.stdout
    );
    assert!(line.contains("permission set"), "{}", out.stdout);
    assert!(
        out.stdout.contains("✓ Apex REST resource"),
        "the rest still checked:\n{}",
        out.stdout
    );
}

#[tokio::test]
async fn check_reports_a_missing_package_with_the_fix() {
    let dr = DrStandIn::start().await;
    let sf = SalesforceStandIn::start().await;
    Mock::given(method("GET"))
        .and(path(APEX_PATH))
        .respond_with(sf_error(404, "NOT_FOUND", "Could not find a match for URL"))
        .mount(&sf.server)
        .await;
    assert_eq!(cli(&["register"]).envs(&env(&dr, &sf)).run().await.code, 0);
    let out = cli(&["check"]).envs(&env(&dr, &sf)).run().await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("✗ Apex REST resource"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("install the Digital River app (namespace digitalriverv3)"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn check_reports_a_wrong_password_with_its_likely_causes() {
    let dr = DrStandIn::start().await;
    let sf = SalesforceStandIn::bare().await;
    token_endpoint(oauth_error("invalid_grant", "authentication failure"))
        .expect(1)
        .mount(&sf.server)
        .await;
    let out = cli(&["check", "--output", "json"]).envs(&env(&dr, &sf)).run().await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    let report = out.json();
    let token = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Salesforce token")
        .unwrap();
    assert_eq!(token["status"], "fail");
    assert!(token["fix"].as_str().unwrap().contains("security token"), "{token}");
    assert!(
        token["fix"]
            .as_str()
            .unwrap()
            .contains("Allow OAuth Username-Password Flows"),
        "{token}"
    );
}

#[tokio::test]
async fn check_names_missing_event_types_and_warns_without_a_signing_secret() {
    let dr = DrStandIn::start().await;
    let sf = SalesforceStandIn::start().await;
    org_with_package(&sf).await;
    dr.seed(json!({
        "id": "wh_7", "address": format!("{}{APEX_PATH}", sf.uri()), "types": ["order.accepted", "order.complete"],
        "enabled": true, "transportType": "OAUTH"
    }));
    let out = cli(&["check"])
        .envs(&env(&dr, &sf))
        .env("DRSF__DIGITAL_RIVER__SIGNING_SECRETS", "")
        .run()
        .await;
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("✗ webhook: wh_7: missing event types: order.cancelled, order.pending_payment"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("fix: run `dr-sf-bridge register --target salesforce --mode test`"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("! signing secret"), "{}", out.stdout);
}

#[tokio::test]
async fn check_with_an_invalid_configuration_exits_2_and_lists_the_keys() {
    let out = cli(&["check"])
        .env("DRSF__SALESFORCE__MY_DOMAIN_URL", "https://acme.lightning.force.com")
        .run()
        .await;
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stdout.contains("✗ configuration") && out.stdout.contains("salesforce.my_domain_url"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("- Salesforce token: not checked"), "{}", out.stdout);
}

#[tokio::test]
async fn check_reports_a_refused_dr_api_key() {
    let dr = DrStandIn::always(ResponseTemplate::new(401).set_body_json(json!({"type": "unauthorized", "errors": []})))
        .await;
    let sf = SalesforceStandIn::start().await;
    org_with_package(&sf).await;
    let out = cli(&["check"]).envs(&env(&dr, &sf)).run().await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("✗ Digital River API key"), "{}", out.stdout);
    assert!(out.stdout.contains("✓ Salesforce token"), "{}", out.stdout);
}

#[tokio::test]
async fn check_reports_an_unreachable_dr() {
    let dr = DrStandIn::start().await;
    let sf = SalesforceStandIn::start().await;
    org_with_package(&sf).await;
    // A port nothing listens on: DR cannot be reached at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut env = env(&dr, &sf);
    env.retain(|(k, _)| *k != "DRSF__DIGITAL_RIVER__API_BASE_URL");
    env.push(("DRSF__DIGITAL_RIVER__API_BASE_URL", nowhere.clone()));
    env.push(("DRSF__DIGITAL_RIVER__MAX_RETRIES", "1".to_owned()));
    let out = cli(&["check"]).envs(&env).run().await;
    assert_eq!(out.code, 1);
    assert!(out.stdout.contains("✗ Digital River API key"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&nowhere) || out.stdout.contains("connect"),
        "names the unreachable service: {}",
        out.stdout
    );
    assert!(out.stdout.contains("✓ Salesforce token"), "{}", out.stdout);
    assert!(
        out.stdout.contains("check the network path") && !out.stdout.contains("set DRSF__DIGITAL_RIVER__API_KEY"),
        "unreachable is not a wrong key: {}",
        out.stdout
    );
}

#[tokio::test]
async fn check_warns_when_the_dr_key_and_the_org_are_of_different_modes() {
    let dr = DrStandIn::start().await;
    let sf = SalesforceStandIn::start().await;
    org_with_package(&sf).await;
    let mut env = env(&dr, &sf);
    env.push(("DRSF__SALESFORCE__MODE", "live".to_owned()));
    let out = cli(&["check"]).envs(&env).run().await;
    assert!(
        out.stdout
            .contains("! mode: the DR key is a test key but the Salesforce sandbox takes live events"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn check_notes_what_it_saw_of_the_webhook_for_the_status_page() {
    use dr_sf_bridge::domain::Mode;
    use dr_sf_bridge::store::facts::WebhookSeen;

    let dr = DrStandIn::start().await;
    let sf = SalesforceStandIn::start().await;
    org_with_package(&sf).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relay.db");
    drop(dr_sf_bridge::store::sqlite::SqliteStore::open(&db).unwrap());
    let mut env = env(&dr, &sf);
    env.push(("DRSF__STORAGE__URL", format!("sqlite://{}", db.display())));
    let seen = || async {
        let store = dr_sf_bridge::store::sqlite::SqliteStore::open_existing(&db).unwrap();
        WebhookSeen::recall(&store, Mode::Test).await.unwrap()
    };

    let out = cli(&["check"]).envs(&env).run().await;
    assert_eq!(out.code, 1, "no webhook yet");
    let missing = seen().await.expect("noted in the store");
    assert!(!missing.ok && missing.detail.contains("no webhook for"), "{missing:?}");

    assert_eq!(cli(&["register"]).envs(&env).run().await.code, 0);
    assert_eq!(cli(&["check"]).envs(&env).run().await.code, 0);
    let registered = seen().await.expect("noted again");
    assert!(
        registered.ok && registered.detail.contains("with all 8 types"),
        "{registered:?}"
    );
    assert!(registered.checked_at_ms >= missing.checked_at_ms);
}

#[tokio::test]
async fn check_finds_the_relays_webhook_and_never_advises_a_second_one() {
    let dr = DrStandIn::start().await;
    let sf = SalesforceStandIn::start().await;
    org_with_package(&sf).await;
    let mut relay_env = env(&dr, &sf);
    relay_env.extend([
        ("DRSF__RELAY__PUBLIC_URL", "https://relay.acme.com/".to_owned()),
        ("DRSF__RELAY__INBOUND_CLIENT_ID", "digitalriver".to_owned()),
        ("DRSF__RELAY__INBOUND_CLIENT_SECRET", RELAY_SECRET.to_owned()),
    ]);
    let registered = cli(&["register", "--target", "relay"]).envs(&relay_env).run().await;
    assert_eq!(registered.code, 0, "{}", registered.stderr);
    // register.target left at its default (salesforce): check looks for the org's address.
    let out = cli(&["check"]).envs(&relay_env).run().await;
    let webhook = out
        .stdout
        .lines()
        .skip_while(|l| !l.contains(" webhook:"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        webhook.contains("https://relay.acme.com/webhooks/digitalriver") && webhook.contains("register.target"),
        "{}",
        out.stdout
    );
    assert!(
        !webhook.contains("run `dr-sf-bridge register"),
        "no second webhook advised:\n{webhook}"
    );
}
