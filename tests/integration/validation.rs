//! Validation seen by the admin through the binary: exit code 2, every problem listed with its
//! key, nothing written. Each rule on its own is a row in the settings' unit tests.

use crate::helpers::*;

async fn register_with(dr: &DrStandIn, overrides: &[(&str, &str)]) -> Output {
    let mut run = cli(&["register"]).envs(&sandbox_password_env(dr));
    for (k, v) in overrides {
        run = run.env(k, *v);
    }
    let out = run.run().await;
    assert_eq!(dr.writes().await, 0, "invalid configuration writes nothing");
    out
}

fn assert_problem(out: &Output, key: &str, fragment: &str) {
    assert_eq!(out.code, 2, "stderr: {}", out.stderr);
    let line = out
        .stderr
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("- {key}:")))
        .unwrap_or_else(|| panic!("no problem reported for {key}:\n{}", out.stderr));
    assert!(line.contains(fragment), "{key}'s message lacks {fragment:?}: {line}");
}

#[tokio::test]
async fn a_lightning_url_is_refused_naming_the_my_domain_form() {
    let dr = DrStandIn::start().await;
    let out = register_with(
        &dr,
        &[(
            "DRSF__SALESFORCE__MY_DOMAIN_URL",
            "https://acme--uat.sandbox.lightning.force.com",
        )],
    )
    .await;
    assert_problem(
        &out,
        "salesforce.my_domain_url",
        "https://acme--uat.sandbox.my.salesforce.com",
    );
}

#[tokio::test]
async fn every_problem_is_reported_at_once() {
    let dr = DrStandIn::start().await;
    let out = register_with(
        &dr,
        &[
            ("DRSF__DIGITAL_RIVER__EVENT_TYPES", ""),
            ("DRSF__SALESFORCE__MY_DOMAIN_URL", "https://acme.lightning.force.com"),
            ("DRSF__SALESFORCE__CLIENT_ID", ""),
            ("DRSF__SALESFORCE__MAX_IN_FLIGHT", "50"),
            ("DRSF__SALESFORCE__CONCURRENCY", "fixed"),
        ],
    )
    .await;
    for key in [
        "digital_river.event_types",
        "salesforce.my_domain_url",
        "salesforce.client_id",
        "salesforce.max_in_flight",
    ] {
        assert_problem(&out, key, "");
    }
    assert!(out.stderr.contains("4 problems"), "{}", out.stderr);
}

#[tokio::test]
async fn an_unreadable_secret_file_names_its_key() {
    let dr = DrStandIn::start().await;
    let out = register_with(
        &dr,
        &[
            ("DRSF__SALESFORCE__PASSWORD", ""),
            ("DRSF__SALESFORCE__PASSWORD_FILE", "/nonexistent/sf-password"),
        ],
    )
    .await;
    assert_problem(&out, "salesforce.password_file", "cannot read");
}

#[tokio::test]
async fn layers_apply_in_order_file_then_env_file_then_variables() {
    let dr = DrStandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("default.toml"),
        "[salesforce]\nwebhook_path = \"/services/apexrest/fromdefault/webhooks/\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("production.toml"),
        "[salesforce]\nenvironment = \"production\"\n",
    )
    .unwrap();
    let extra = dir.path().join("extra.toml");
    std::fs::write(
        &extra,
        "[digital_river]\napi_version = \"2021-12-13\"\nevent_types = [\"order.accepted\"]\n",
    )
    .unwrap();

    let mut env = sandbox_password_env(&dr);
    env.retain(|(k, _)| *k != "DRSF__SALESFORCE__ENVIRONMENT");
    let out = cli(&[
        "register",
        "--dry-run",
        "--output",
        "json",
        "--env",
        "production",
        "--config",
        extra.to_str().unwrap(),
    ])
    .envs(&env)
    .env("DRSF__SALESFORCE__MY_DOMAIN_URL", PROD_DOMAIN)
    .env("DRSF__DIGITAL_RIVER__EVENT_TYPES", "order.accepted,order.complete")
    .config_dir(dir.path())
    .run()
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let body = &out.json()["body"];
    assert_eq!(
        body["address"],
        format!("{PROD_DOMAIN}/services/apexrest/fromdefault/webhooks/"),
        "config dir's default.toml"
    );
    assert_eq!(
        body["oauth"]["tokenEndPoint"], "https://login.salesforce.com/services/oauth2/token",
        "production.toml"
    );
    assert_eq!(body["apiVersion"], "2021-12-13", "--config file");
    assert_eq!(
        body["types"],
        serde_json::json!(["order.accepted", "order.complete"]),
        "variables win"
    );
}

#[tokio::test]
async fn an_unknown_environment_is_refused() {
    let dr = DrStandIn::start().await;
    let out = cli(&["register", "--env", "prod"])
        .envs(&sandbox_password_env(&dr))
        .run()
        .await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("--env") && out.stderr.contains("`sandbox` or `production`"),
        "{}",
        out.stderr
    );
}

#[test]
fn debug_output_of_the_settings_shows_no_secret() {
    let options = dr_sf_bridge::settings::LoadOptions {
        config_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/config").into()),
        overrides: [
            ("digital_river.api_key", API_KEY),
            ("salesforce.my_domain_url", SANDBOX_DOMAIN),
            ("salesforce.client_id", "3MVG9consumerKey"),
            ("salesforce.client_secret", SF_CLIENT_SECRET),
            ("salesforce.username", "integration@acme.com.uat"),
            ("salesforce.password", SF_PASSWORD),
            ("relay.inbound_client_secret", RELAY_SECRET),
            ("relay.basic_username", "dr"),
            ("relay.basic_password", RELAY_PASSWORD),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..Default::default()
    };
    let raw = dr_sf_bridge::settings::load_raw(&options).unwrap();
    let settings = raw.validate(dr_sf_bridge::settings::Purpose::Check).unwrap();
    let shown = format!(
        "{raw:?}\n{settings:?}\n{:?}",
        settings.salesforce.primary().credentials().unwrap()
    );
    for secret in SECRETS {
        assert!(!shown.contains(secret), "{secret} in Debug output");
    }
    assert!(
        shown.contains("integration@acme.com.uat"),
        "non-secret values are shown"
    );
}
