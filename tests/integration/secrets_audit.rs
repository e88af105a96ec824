//! The secrets audit: every command and the relay run with recognisable secrets at `trace` log
//! level, and everything they leave behind — stdout, stderr, HTTP answers, metrics, the store's
//! files — is searched for each secret. One hit fails.

use std::time::Duration;

use serde_json::Value;
use wiremock::ResponseTemplate;

use crate::helpers::*;
use crate::relay_helpers::*;
use crate::relay_process::{RelayProcess, free_port};
use crate::salesforce_standin::*;

const ADMIN_TOKEN: &str = "AUDITADMINTOKEN-0123456789abcdef";
const NOTIFY_SIGNING_SECRET: &str = "AUDITNOTIFYSIGNING-0123456789";
const SMTP_PASSWORD: &str = "AUDITSMTPPASSWORD-0123456789";
const CHAT_URL_TOKEN: &str = "AUDITCHATTOKEN0123456789";

/// Every secret the configuration holds, and the Salesforce session token.
fn secrets() -> Vec<&'static str> {
    let mut all = SECRETS.to_vec();
    all.extend([
        SIGNING_SECRET,
        PREVIOUS_SIGNING_SECRET,
        TOKEN_KEY,
        ADMIN_TOKEN,
        NOTIFY_SIGNING_SECRET,
        SMTP_PASSWORD,
        CHAT_URL_TOKEN,
    ]);
    all
}

fn scan(what: &str, text: &str, hits: &mut Vec<String>) {
    for secret in secrets() {
        if text.contains(secret) {
            hits.push(format!("{secret} in {what}"));
        }
    }
}

fn scan_bytes(what: &str, bytes: &[u8], hits: &mut Vec<String>) {
    for secret in secrets() {
        if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
            hits.push(format!("{secret} in {what}"));
        }
    }
}

#[tokio::test]
async fn no_secret_appears_in_any_output_log_answer_metric_or_store() {
    let mut hits = Vec::new();
    let dr = DrStandIn::start().await;
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path(APEX_PATH))
        .respond_with(sf_error(405, "METHOD_NOT_ALLOWED", "HTTP Method 'GET' not allowed"))
        .mount(&sf.server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let public_url = format!("http://127.0.0.1:{port}");

    // Every command, at trace level.
    let mut env = sandbox_password_env(&dr);
    env.retain(|(k, _)| *k != "DRSF__SALESFORCE__MY_DOMAIN_URL");
    env.extend([
        ("DRSF__SALESFORCE__MY_DOMAIN_URL", sf.uri()),
        ("DRSF__SALESFORCE__TOKEN_URL", format!("{}{TOKEN_PATH}", sf.uri())),
        (
            "DRSF__DIGITAL_RIVER__SIGNING_SECRETS",
            format!("{SIGNING_SECRET},{PREVIOUS_SIGNING_SECRET}"),
        ),
        ("DRSF__RELAY__PUBLIC_URL", public_url.clone()),
        ("DRSF__RELAY__INBOUND_CLIENT_ID", INBOUND_CLIENT_ID.to_owned()),
        ("DRSF__RELAY__INBOUND_CLIENT_SECRET", RELAY_SECRET.to_owned()),
        ("DRSF__RELAY__INBOUND_TOKEN_KEY", TOKEN_KEY.to_owned()),
        ("DRSF__RELAY__ADMIN_TOKEN", ADMIN_TOKEN.to_owned()),
        (
            "DRSF__STORAGE__URL",
            format!("sqlite://{}", dir.path().join("relay.db").display()),
        ),
        ("RUST_LOG", "trace".to_owned()),
        ("DRSF__NOTIFY__SIGNING_SECRET", NOTIFY_SIGNING_SECRET.to_owned()),
        ("DRSF__NOTIFY__CHANNELS__CHAT__KIND", "webhook".to_owned()),
        (
            "DRSF__NOTIFY__CHANNELS__CHAT__URL",
            format!("http://127.0.0.1:{}/services/{CHAT_URL_TOKEN}", free_port()),
        ),
        ("DRSF__NOTIFY__CHANNELS__MAIL__KIND", "email".to_owned()),
        ("DRSF__NOTIFY__CHANNELS__MAIL__HOST", "127.0.0.1".to_owned()),
        ("DRSF__NOTIFY__CHANNELS__MAIL__PORT", free_port().to_string()),
        ("DRSF__NOTIFY__CHANNELS__MAIL__TLS", "none".to_owned()),
        ("DRSF__NOTIFY__CHANNELS__MAIL__USERNAME", "relay".to_owned()),
        ("DRSF__NOTIFY__CHANNELS__MAIL__PASSWORD", SMTP_PASSWORD.to_owned()),
        ("DRSF__NOTIFY__CHANNELS__MAIL__FROM", "relay@acme.com".to_owned()),
        ("DRSF__NOTIFY__CHANNELS__MAIL__TO", "admin@acme.com".to_owned()),
    ]);
    let commands: [&[&str]; 12] = [
        &["register", "--dry-run"],
        &["register"],
        &["register", "--target", "relay", "--dry-run"],
        &["register", "--target", "relay"],
        &["register", "--force", "--output", "json"],
        &["check"],
        &["check", "--output", "json"],
        &["webhooks", "list", "--output", "json"],
        &["unregister", "--target", "relay", "--dry-run"],
        &["relay", "--help"],
        &["notify", "test"],
        &["notify", "test", "--output", "json"],
    ];
    for args in commands {
        let out = cli(args).envs(&env).run().await;
        scan(&format!("`{}` stdout", args.join(" ")), &out.stdout, &mut hits);
        scan(&format!("`{}` stderr", args.join(" ")), &out.stderr, &mut hits);
    }
    for webhook in dr.bodies("POST").await {
        let id = webhook["id"].as_str().unwrap_or("wh_1").to_owned();
        let out = cli(&["webhooks", "show", &id]).envs(&env).run().await;
        scan("`webhooks show` stdout", &out.stdout, &mut hits);
    }

    // The relay, at trace level, fed by DR's OAuth transport and by Basic auth.
    let overrides = [("relay.admin_token", ADMIN_TOKEN)];
    let relay = RelayProcess::start_logging(&sf, dir.path(), port, &overrides, "trace").await;
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/oauth2/token", relay.address))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", INBOUND_CLIENT_ID),
            ("client_secret", RELAY_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    scan("the token answer", &token.to_string(), &mut hits);
    let access_token = token["access_token"].as_str().unwrap().to_owned();
    for (n, authorization) in [format!("Bearer {access_token}"), basic_header()].iter().enumerate() {
        let body = event("order.accepted", &format!("evt-audit-{n}"), &format!("o-audit-{n}"));
        let answer = http
            .post(format!("{}/webhooks/digitalriver", relay.address))
            .header("authorization", authorization)
            .header("DigitalRiver-Signature", signed(&body))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 202);
        scan("an ingest answer", &answer.text().await.unwrap(), &mut hits);
    }
    let wrong = http
        .post(format!("{}/webhooks/digitalriver", relay.address))
        .header("authorization", format!("Bearer {TOKEN_KEY}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    scan("a refusal", &wrong.text().await.unwrap(), &mut hits);
    // Trace logging makes this relay slow when the whole suite runs beside it: a longer deadline,
    // and a retried delivery still counts.
    wait_until_within("both events delivered", Duration::from_secs(60), || async {
        let delivered = sf.delivered_ids().await;
        ["evt-audit-0", "evt-audit-1"]
            .iter()
            .all(|id| delivered.iter().any(|d| d == id))
    })
    .await;
    for path in [
        "/metrics",
        "/readyz",
        "/healthz",
        "/admin/events",
        "/admin/events/evt-audit-0",
    ] {
        let answer = http
            .get(format!("{}{path}", relay.address))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        scan(path, &answer.text().await.unwrap(), &mut hits);
    }
    let events = cli(&["events", "show", "evt-audit-0", "--body"]).envs(&env).run().await;
    scan("`events show`", &events.stdout, &mut hits);

    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &relay.pid().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let mut relay = relay;
    let _ = tokio::time::timeout(Duration::from_secs(20), relay.child.wait()).await;
    let log = relay.logs();
    assert!(
        log.contains("TRACE") || log.contains("trace"),
        "the relay logged at trace level"
    );
    scan("the relay's log", &log, &mut hits);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("relay.db") {
            scan_bytes(&path.display().to_string(), &std::fs::read(&path).unwrap(), &mut hits);
        }
    }
    assert!(hits.is_empty(), "secrets found:\n{}", hits.join("\n"));
}

/// The JWT bearer flow's private key, given inline (`DRSF__SALESFORCE__PRIVATE_KEY`): no line of
/// it in `check`'s output, the relay's trace log, its answers and metrics, or the store.
#[tokio::test]
async fn no_byte_of_the_private_key_appears_anywhere() {
    use crate::jwt_bearer::{JwtTokenEndpoint, KeyFiles};
    let keys = KeyFiles::new();
    let pem = keys.key_pem();
    let key_lines: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_owned)
        .collect();
    assert!(key_lines.len() > 10);
    let mut hits = Vec::new();
    let mut scan_key = |what: &str, text: &str| {
        for line in &key_lines {
            if text.contains(line.as_str()) {
                hits.push(format!("a line of the private key in {what}"));
                return;
            }
        }
    };
    let sf = SalesforceStandIn::bare().await;
    let endpoint = JwtTokenEndpoint::mount(&sf, &keys).await;
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let jwt = [
        ("salesforce.grant_type", "jwt_bearer"),
        ("salesforce.private_key", pem.as_str()),
        ("salesforce.client_id", "3MVG9jwtConsumerKey"),
        ("salesforce.username", "integration@acme.com.uat"),
        ("salesforce.client_secret", ""),
        ("salesforce.password", ""),
        ("relay.admin_token", ADMIN_TOKEN),
    ];
    let dr = DrStandIn::start().await;
    let mut env: Vec<(&str, String)> = sandbox_password_env(&dr)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("DRSF__SALESFORCE__"))
        .collect();
    env.extend([
        ("DRSF__SALESFORCE__MY_DOMAIN_URL", sf.uri()),
        ("DRSF__SALESFORCE__TOKEN_URL", format!("{}{TOKEN_PATH}", sf.uri())),
        ("DRSF__SALESFORCE__GRANT_TYPE", "jwt_bearer".to_owned()),
        ("DRSF__SALESFORCE__PRIVATE_KEY", pem.clone()),
        ("DRSF__SALESFORCE__CLIENT_ID", "3MVG9jwtConsumerKey".to_owned()),
        ("DRSF__SALESFORCE__USERNAME", "integration@acme.com.uat".to_owned()),
        ("DRSF__REGISTER__TARGET", "relay".to_owned()),
        ("RUST_LOG", "trace".to_owned()),
    ]);
    for args in [
        &["check"][..],
        &["check", "--output", "json"],
        &["register", "--dry-run"],
    ] {
        let out = cli(args).envs(&env).run().await;
        scan_key(&format!("`{}` stdout", args.join(" ")), &out.stdout);
        scan_key(&format!("`{}` stderr", args.join(" ")), &out.stderr);
    }

    let mut relay = RelayProcess::start_logging(&sf, dir.path(), port, &jwt, "trace").await;
    let http = reqwest::Client::new();
    let body = event("order.accepted", "evt-jwt-audit", "o-jwt-audit");
    let answer = crate::relay_process::post_like_dr(&http, &relay.address, body)
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    wait_until_within("the event delivered", Duration::from_secs(60), || async {
        sf.delivered_ids().await.iter().any(|d| d == "evt-jwt-audit")
    })
    .await;
    assert!(
        endpoint.granted.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "signed in with the key"
    );
    for path in ["/metrics", "/admin/events", "/admin/events/evt-jwt-audit"] {
        let answer = http
            .get(format!("{}{path}", relay.address))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        scan_key(path, &answer.text().await.unwrap());
    }
    let _ = relay.terminate(Duration::from_secs(20)).await;
    let log = relay.logs();
    assert!(log.contains("TRACE") || log.contains("trace"));
    scan_key("the relay's log", &log);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("relay.db") {
            let bytes = std::fs::read(&path).unwrap();
            scan_key(&path.display().to_string(), &String::from_utf8_lossy(&bytes));
        }
    }
    assert!(hits.is_empty(), "the private key leaked:\n{}", hits.join("\n"));
}
