//! The JWT bearer flow against a token endpoint that verifies each assertion as Salesforce does:
//! with the public key of the certificate uploaded to the connected app (read here with
//! `x509-parser`, independent of the code that made it), then `iss`, `aud`, `exp` within three
//! minutes and whether the user is pre-authorized — answering Salesforce's own errors.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dr_sf_bridge::ops::keygen::{CERTIFICATE_FILE, KEY_FILE, keygen};
use dr_sf_bridge::salesforce::TOKEN_PATH;
use dr_sf_bridge::store::EventStatus;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::helpers::*;
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

const CONSUMER_KEY: &str = "3MVG9jwtConsumerKey";
const USERNAME: &str = "integration@acme.com.uat";
const SANDBOX_AUDIENCE: &str = "https://test.salesforce.com";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A key and certificate `salesforce keygen` wrote.
pub struct KeyFiles {
    pub dir: tempfile::TempDir,
}

impl KeyFiles {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        keygen(dir.path(), 2048, false).expect("keygen");
        Self { dir }
    }

    pub fn key_path(&self) -> String {
        self.dir.path().join(KEY_FILE).display().to_string()
    }

    pub fn key_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(KEY_FILE)).unwrap()
    }

    /// The RSA modulus and exponent in the certificate, read with an X.509 parser.
    fn certificate_key(&self) -> (Vec<u8>, Vec<u8>) {
        let pem_bytes = std::fs::read(self.dir.path().join(CERTIFICATE_FILE)).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem_bytes).expect("a PEM certificate");
        let certificate = pem.parse_x509().expect("an X.509 certificate");
        match certificate.public_key().parsed().expect("a public key") {
            x509_parser::public_key::PublicKey::RSA(rsa) => (rsa.modulus.to_vec(), rsa.exponent.to_vec()),
            other => panic!("not an RSA certificate: {other:?}"),
        }
    }
}

/// The connected app as Salesforce's token endpoint sees it.
#[derive(Clone)]
pub struct JwtTokenEndpoint {
    certificate: (Vec<u8>, Vec<u8>),
    audience: String,
    /// Permitted Users = admin approved, with the user's profile added.
    pub approved: Arc<AtomicBool>,
    /// Every assertion received (its claims, once verified).
    pub claims: Arc<Mutex<Vec<Value>>>,
    pub requests: Arc<AtomicUsize>,
    pub granted: Arc<AtomicUsize>,
    instance_url: String,
}

impl JwtTokenEndpoint {
    /// Mounts the endpoint for the app whose certificate is `uploaded`'s.
    pub async fn mount(sf: &SalesforceStandIn, uploaded: &KeyFiles) -> Self {
        let endpoint = Self {
            certificate: uploaded.certificate_key(),
            audience: SANDBOX_AUDIENCE.to_owned(),
            approved: Arc::new(AtomicBool::new(true)),
            claims: Arc::default(),
            requests: Arc::default(),
            granted: Arc::default(),
            instance_url: sf.uri(),
        };
        Mock::given(method("POST"))
            .and(path(TOKEN_PATH))
            .respond_with(endpoint.clone())
            .mount(&sf.server)
            .await;
        endpoint
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Respond for JwtTokenEndpoint {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(&request.body).into_owned().collect();
        if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER) {
            return oauth_error("unsupported_grant_type", "grant type not supported");
        }
        if form.contains_key("client_secret") || form.contains_key("password") {
            return oauth_error("invalid_request", "a JWT bearer request carries no secret");
        }
        let Some(assertion) = form.get("assertion") else {
            return oauth_error("invalid_request", "assertion missing");
        };
        let (n, e) = &self.certificate;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.leeway = 0;
        let Ok(decoded) =
            jsonwebtoken::decode::<Value>(assertion, &DecodingKey::from_rsa_raw_components(n, e), &validation)
        else {
            return oauth_error("invalid_grant", "invalid assertion");
        };
        let claims = decoded.claims;
        self.claims.lock().unwrap().push(claims.clone());
        if claims["iss"] != CONSUMER_KEY {
            return oauth_error("invalid_client_id", "client identifier invalid");
        }
        if claims["aud"] != self.audience.as_str() {
            return oauth_error("invalid_grant", "audience is invalid");
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        if claims["exp"].as_u64().unwrap_or(0) > now + 180 {
            return oauth_error("invalid_grant", "expiration too far in the future");
        }
        if claims["sub"] != USERNAME {
            return oauth_error("invalid_grant", "user hasn't approved this consumer");
        }
        if !self.approved.load(Ordering::SeqCst) {
            return oauth_error("invalid_grant", "user hasn't approved this consumer");
        }
        let n = self.granted.fetch_add(1, Ordering::SeqCst) + 1;
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": token(n),
            "instance_url": self.instance_url,
            "id": "https://test.salesforce.com/id/00DTESTORG/005USER",
            "token_type": "Bearer",
            "issued_at": "1700000000000",
            "scope": "api"
        }))
    }
}

/// Overrides for a relay that signs in with the JWT bearer flow and `key`.
fn jwt_overrides<'a>(key: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut overrides = vec![
        ("salesforce.grant_type", "jwt_bearer"),
        ("salesforce.private_key_file", key),
        ("salesforce.client_id", CONSUMER_KEY),
        ("salesforce.username", USERNAME),
        ("salesforce.client_secret", ""),
        ("salesforce.password", ""),
    ];
    overrides.extend_from_slice(extra);
    overrides
}

#[tokio::test]
async fn the_relay_signs_in_once_with_its_key_and_delivers_200_events() {
    let keys = KeyFiles::new();
    let sf = SalesforceStandIn::bare().await;
    let endpoint = JwtTokenEndpoint::mount(&sf, &keys).await;
    apex(ResponseTemplate::new(200)).expect(200).mount(&sf.server).await;
    let key_path = keys.key_path();
    let relay = spawn_stepped_app_with(sf, &jwt_overrides(&key_path, &[])).await;
    for n in 0..200 {
        relay
            .accept(&event("order.accepted", &format!("evt-{n}"), &format!("o-{n}")))
            .await;
    }
    relay.deliver_due().await;
    for n in [0, 99, 199] {
        assert_eq!(relay.status_of(&format!("evt-{n}")).await, Some(EventStatus::Delivered));
    }
    assert_eq!(endpoint.granted.load(Ordering::SeqCst), 1, "one grant for 200 events");
    assert_eq!(endpoint.requests(), 1);
    let claims = endpoint.claims.lock().unwrap().clone();
    let exp = claims[0]["exp"].as_u64().unwrap();
    let iat = claims[0]["iat"].as_u64().unwrap();
    assert!(exp - iat <= 180, "exp within 3 minutes: {claims:?}");
    assert!(claims[0]["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert_eq!(claims[0]["aud"], SANDBOX_AUDIENCE);
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("drsf_salesforce_sign_in_key{target=\"test\",key=\"salesforce.private_key_file\"} 1"),
        "{metrics}"
    );
    assert!(
        !relay.logs.text().contains("Winter '27"),
        "no password warning for the JWT flow"
    );
}

#[tokio::test]
async fn a_refused_key_is_not_tried_in_a_loop_and_the_events_wait() {
    let uploaded = KeyFiles::new();
    let other = KeyFiles::new();
    let sf = SalesforceStandIn::bare().await;
    let endpoint = JwtTokenEndpoint::mount(&sf, &uploaded).await;
    apex(ResponseTemplate::new(200)).expect(0).mount(&sf.server).await;
    let key_path = other.key_path();
    let relay = spawn_stepped_app_with(sf, &jwt_overrides(&key_path, &[])).await;
    for n in 0..3 {
        relay
            .accept(&event("order.accepted", &format!("evt-{n}"), &format!("o-{n}")))
            .await;
    }
    for _ in 0..5 {
        relay.deliver_due().await;
        relay.advance(Duration::from_secs(10));
    }
    assert_eq!(endpoint.requests(), 1, "the refusal is remembered for the cool-down");
    let (event, _) = relay.stored("evt-0").await;
    assert_eq!(event.status, EventStatus::Pending);
    assert_eq!(
        event.attempts, 0,
        "a refused sign-in does not use up the event's attempts"
    );
    assert!(
        event
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("invalid assertion"),
        "{event:?}"
    );
}

#[tokio::test]
async fn with_a_second_key_a_rotation_has_no_gap_and_the_log_and_metric_name_the_key() {
    let old = KeyFiles::new();
    let new = KeyFiles::new();
    let sf = SalesforceStandIn::bare().await;
    // The admin already replaced the app's certificate with the new one.
    let endpoint = JwtTokenEndpoint::mount(&sf, &new).await;
    apex(ResponseTemplate::new(200)).expect(1).mount(&sf.server).await;
    let (old_path, new_path) = (old.key_path(), new.key_path());
    let relay = spawn_stepped_app_with(
        sf,
        &jwt_overrides(&old_path, &[("salesforce.next_private_key_file", new_path.as_str())]),
    )
    .await;
    relay.accept(&event("order.accepted", "evt-1", "o-1")).await;
    relay.deliver_due().await;
    assert_eq!(relay.status_of("evt-1").await, Some(EventStatus::Delivered));
    assert_eq!(endpoint.requests(), 2, "the first key, refused, then the second");
    let logs = relay.logs.text();
    assert!(
        logs.contains("signed in to Salesforce with salesforce.next_private_key_file"),
        "{logs}"
    );
    let metrics = relay.metrics().await;
    assert!(
        metrics.contains("key=\"salesforce.next_private_key_file\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("key=\"salesforce.private_key_file\"} 0"), "{metrics}");
}

/// `check` with the JWT bearer flow against `sf`, its key at `key`.
async fn check_with(sf: &SalesforceStandIn, key: &str, extra: &[(&'static str, String)]) -> Output {
    let dr = DrStandIn::start().await;
    let mut env = sandbox_password_env(&dr);
    env.retain(|(k, _)| !k.starts_with("DRSF__SALESFORCE__"));
    env.extend([
        ("DRSF__SALESFORCE__MY_DOMAIN_URL", sf.uri()),
        ("DRSF__SALESFORCE__TOKEN_URL", format!("{}{TOKEN_PATH}", sf.uri())),
        ("DRSF__SALESFORCE__GRANT_TYPE", "jwt_bearer".to_owned()),
        ("DRSF__SALESFORCE__PRIVATE_KEY_FILE", key.to_owned()),
        ("DRSF__SALESFORCE__CLIENT_ID", CONSUMER_KEY.to_owned()),
        ("DRSF__SALESFORCE__USERNAME", USERNAME.to_owned()),
        ("DRSF__SALESFORCE__TOKEN_RETRY_BASE_DELAY_MS", "10".to_owned()),
        ("DRSF__REGISTER__TARGET", "relay".to_owned()),
    ]);
    env.extend_from_slice(extra);
    cli(&["check"]).envs(&env).run().await
}

/// The `✗ Salesforce token` line and its fix.
fn token_line(out: &Output) -> String {
    out.stdout
        .lines()
        .skip_while(|l| !l.contains("Salesforce token"))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn check_names_the_setup_fix_for_each_refusal_in_salesforces_own_words() {
    let uploaded = KeyFiles::new();
    let sf = SalesforceStandIn::bare().await;
    let endpoint = JwtTokenEndpoint::mount(&sf, &uploaded).await;

    let other = KeyFiles::new();
    let out = check_with(&sf, &other.key_path(), &[]).await;
    let line = token_line(&out);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        line.contains("invalid assertion") && line.contains("certificate"),
        "wrong key:\n{line}"
    );

    let out = check_with(
        &sf,
        &uploaded.key_path(),
        &[("DRSF__SALESFORCE__ENVIRONMENT", "production".to_owned())],
    )
    .await;
    let line = token_line(&out);
    assert!(
        line.contains("audience is invalid") && line.contains("salesforce.environment"),
        "wrong audience:\n{line}"
    );

    let out = check_with(
        &sf,
        &uploaded.key_path(),
        &[("DRSF__SALESFORCE__CLIENT_ID", "3MVG9someOtherApp".to_owned())],
    )
    .await;
    let line = token_line(&out);
    assert!(
        line.contains("client identifier invalid") && line.contains("Consumer Key"),
        "wrong consumer key:\n{line}"
    );

    endpoint.approved.store(false, Ordering::SeqCst);
    let out = check_with(&sf, &uploaded.key_path(), &[]).await;
    let line = token_line(&out);
    assert!(
        line.contains("user hasn't approved this consumer") && line.contains("Permitted Users"),
        "not pre-authorized:\n{line}"
    );

    endpoint.approved.store(true, Ordering::SeqCst);
    let out = check_with(&sf, &uploaded.key_path(), &[]).await;
    let line = token_line(&out);
    assert!(
        line.starts_with("✓") && line.contains("signed with salesforce.private_key_file"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("password flow"),
        "no password warning:\n{}",
        out.stdout
    );
}

#[tokio::test]
async fn check_names_a_key_it_cannot_use_before_any_request() {
    let sf = SalesforceStandIn::bare().await;
    token_endpoint(ResponseTemplate::new(500))
        .expect(0)
        .mount(&sf.server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let encrypted = dir.path().join("encrypted.key");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = check_with(&sf, &encrypted.display().to_string(), &[]).await;
    assert_eq!(out.code, 2, "a configuration problem: {}\n{}", out.stdout, out.stderr);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("salesforce.private_key_file") && said.contains("encrypted"),
        "{said}"
    );

    let missing = dir.path().join("missing.key");
    let out = check_with(&sf, &missing.display().to_string(), &[]).await;
    assert_eq!(out.code, 2);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("salesforce.private_key_file") && said.contains("cannot read"),
        "{said}"
    );
}

#[tokio::test]
async fn keygen_writes_a_private_key_only_its_owner_reads_and_never_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("keys");
    let out = cli(&["salesforce", "keygen", "--out", out_dir.to_str().unwrap()])
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let key = std::fs::read_to_string(out_dir.join(KEY_FILE)).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out_dir.join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let body_line = key.lines().nth(1).unwrap();
    assert!(!out.stdout.contains(body_line) && !out.stderr.contains(body_line));
    assert!(
        out.stdout.contains("Use digital signatures") && out.stdout.contains("Admin approved users are pre-authorized")
    );
    let certificate = std::fs::read(out_dir.join(CERTIFICATE_FILE)).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&certificate).unwrap();
    let parsed = pem.parse_x509().unwrap();
    match parsed.public_key().parsed().unwrap() {
        x509_parser::public_key::PublicKey::RSA(rsa) => assert!(rsa.key_size() >= 2048),
        other => panic!("{other:?}"),
    }

    let again = cli(&["salesforce", "keygen", "--out", out_dir.to_str().unwrap()])
        .run()
        .await;
    assert_ne!(again.code, 0, "an existing key is not replaced");
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(out_dir.join(KEY_FILE)).unwrap(), key);
}

#[tokio::test]
async fn the_password_grant_says_it_ends_in_the_start_up_log_and_on_the_status_page() {
    use crate::status_page::{ADMIN_TOKEN, Visitor};
    let relay = spawn_stepped_app_with(SalesforceStandIn::start().await, &[("relay.admin_token", ADMIN_TOKEN)]).await;
    let logs = relay.logs.text();
    assert!(
        logs.contains("signs in with the password grant") && logs.contains("Winter '27") && logs.contains("jwt_bearer"),
        "{logs}"
    );
    let visitor = Visitor::sign_in(&relay).await;
    let (_, overview) = visitor.get("/ui/").await;
    let notice = overview.split("id=\"password-flow-test\"").nth(1).expect("the notice");
    assert!(
        notice.contains("Winter '27") && notice.contains("client_credentials"),
        "{notice}"
    );

    let keys = KeyFiles::new();
    let key_path = keys.key_path();
    let jwt = spawn_stepped_app_with(
        SalesforceStandIn::bare().await,
        &jwt_overrides(&key_path, &[("relay.admin_token", ADMIN_TOKEN)]),
    )
    .await;
    let (_, overview) = Visitor::sign_in(&jwt).await.get("/ui/").await;
    assert!(
        !overview.contains("password-flow"),
        "no notice with the JWT bearer flow"
    );
}

#[tokio::test]
async fn register_refuses_to_put_the_jwt_bearer_flow_on_drs_webhook() {
    let keys = KeyFiles::new();
    let dr = DrStandIn::start().await;
    let mut env = sandbox_password_env(&dr);
    env.retain(|(k, _)| *k != "DRSF__SALESFORCE__CLIENT_SECRET" && *k != "DRSF__SALESFORCE__PASSWORD");
    env.extend([
        ("DRSF__SALESFORCE__GRANT_TYPE", "jwt_bearer".to_owned()),
        ("DRSF__SALESFORCE__PRIVATE_KEY_FILE", keys.key_path()),
    ]);
    let out = cli(&["register", "--target", "salesforce"]).envs(&env).run().await;
    assert_ne!(out.code, 0);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(
        said.contains("salesforce.grant_type") && said.contains("--target relay"),
        "{said}"
    );
    assert!(dr.bodies("POST").await.is_empty(), "no webhook created");
}

/// The README's way out (b), step 6: from DR posting straight to the org with the password grant
/// to DR → relay → Salesforce with the JWT bearer flow, with the commands the guide names.
#[tokio::test]
async fn the_migration_guide_moves_drs_webhook_from_the_org_to_the_relay() {
    let dr = DrStandIn::start().await;
    let before = sandbox_password_env(&dr);
    assert_eq!(cli(&["register"]).envs(&before).run().await.code, 0);
    let org_address = dr.webhooks.lock().unwrap()[0]["address"].as_str().unwrap().to_owned();

    let keys = KeyFiles::new();
    let mut after: Vec<(&str, String)> = before
        .into_iter()
        .filter(|(k, _)| *k != "DRSF__SALESFORCE__PASSWORD" && *k != "DRSF__SALESFORCE__CLIENT_SECRET")
        .collect();
    after.extend([
        ("DRSF__SALESFORCE__GRANT_TYPE", "jwt_bearer".to_owned()),
        ("DRSF__SALESFORCE__PRIVATE_KEY_FILE", keys.key_path()),
        ("DRSF__REGISTER__TARGET", "relay".to_owned()),
        ("DRSF__RELAY__PUBLIC_URL", "https://relay.acme.com/".to_owned()),
        ("DRSF__RELAY__INBOUND_CLIENT_ID", "digitalriver".to_owned()),
        ("DRSF__RELAY__INBOUND_CLIENT_SECRET", RELAY_SECRET.to_owned()),
    ]);
    let plan = cli(&["register", "--target", "relay", "--dry-run"])
        .envs(&after)
        .run()
        .await;
    assert_eq!(plan.code, 0, "{}\n{}", plan.stdout, plan.stderr);
    assert_eq!(dr.webhooks.lock().unwrap().len(), 1, "a dry run changes nothing");
    let removed = cli(&["unregister", "--target", "salesforce"]).envs(&after).run().await;
    assert_eq!(removed.code, 0, "{}\n{}", removed.stdout, removed.stderr);
    let moved = cli(&["register", "--target", "relay"]).envs(&after).run().await;
    assert_eq!(moved.code, 0, "{}\n{}", moved.stdout, moved.stderr);
    let webhooks = dr.webhooks.lock().unwrap().clone();
    assert_eq!(webhooks.len(), 1, "{webhooks:?}");
    assert_eq!(webhooks[0]["address"], "https://relay.acme.com/webhooks/digitalriver");
    assert_ne!(webhooks[0]["address"], org_address.as_str());
}
