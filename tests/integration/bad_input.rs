//! What a hostile or broken client can send the relay, one row per request: each gets its
//! documented status and a short JSON reason, nothing is stored, and the relay keeps serving.
//! RELIABILITY.md counts the rows by category.

use base64::Engine;
use dr_sf_bridge::support::clock::unix_secs;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

const ADMIN_TOKEN: &str = "admin-token-0123456789-abcdefgh";

#[derive(Clone)]
enum Auth {
    Basic,
    None,
    Raw(String),
}

#[derive(Clone)]
enum Sign {
    Valid,
    None,
    Raw(String),
}

#[derive(Clone)]
struct Case {
    category: &'static str,
    name: String,
    method: &'static str,
    path: &'static str,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    auth: Auth,
    sign: Sign,
    status: u16,
    error: &'static str,
}

fn base(category: &'static str, name: impl Into<String>, body: Vec<u8>, status: u16, error: &'static str) -> Case {
    Case {
        category,
        name: name.into(),
        method: "POST",
        path: "/webhooks/digitalriver",
        body,
        content_type: Some("application/json"),
        headers: Vec::new(),
        auth: Auth::Basic,
        sign: Sign::Valid,
        status,
        error,
    }
}

fn good_body() -> Vec<u8> {
    event("order.accepted", "evt-bad-input", "o-bad")
}

/// The good event with one change made to its JSON.
fn edited(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(&good_body()).unwrap();
    edit(&mut value);
    serde_json::to_vec(&value).unwrap()
}

fn shape(name: &str, body: Vec<u8>) -> Case {
    base("JSON shapes", name, body, 400, "invalid_event")
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn jwt(key: &str, audience: &str, expires_in: i64, algorithm: jsonwebtoken::Algorithm) -> String {
    let now = unix_secs() as i64;
    let claims = json!({
        "iss": "dr-sf-bridge", "aud": audience, "sub": INBOUND_CLIENT_ID, "iat": now, "exp": now + expires_in
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let good = good_body();

    for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let mut case = base(
            "methods",
            format!("{method} on the webhook"),
            good.clone(),
            405,
            "method_not_allowed",
        );
        case.method = method;
        cases.push(case);
    }
    for path in [
        "/webhooks",
        "/webhooks/digitalriver/extra",
        "/WEBHOOKS/DIGITALRIVER",
        "/.env",
    ] {
        let mut case = base("methods", format!("POST {path}"), good.clone(), 404, "not_found");
        case.path = path;
        cases.push(case);
    }

    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ] {
        let mut case = base(
            "content types and encodings",
            format!("Content-Type {content_type}"),
            good.clone(),
            415,
            "unsupported_media_type",
        );
        case.content_type = Some(content_type);
        cases.push(case);
    }
    for encoding in ["gzip", "br", "deflate", "gzip, identity"] {
        let mut case = base(
            "content types and encodings",
            format!("Content-Encoding {encoding}"),
            good.clone(),
            415,
            "unsupported_encoding",
        );
        case.headers.push(("content-encoding", encoding.to_owned()));
        cases.push(case);
    }

    let mut oversized = base(
        "headers",
        "a Content-Length over the limit",
        good.clone(),
        413,
        "payload_too_large",
    );
    oversized.body = vec![b' '; 1024 * 1024 + 10];
    cases.push(oversized);
    let mut bad_signature_header = base(
        "headers",
        "a signature header that is not text",
        good.clone(),
        401,
        "invalid_signature",
    );
    bad_signature_header.sign = Sign::Raw("t=\u{1}".to_owned());
    cases.push(bad_signature_header);

    for (name, body) in [
        ("an empty body", b"".to_vec()),
        ("plain text", b"order accepted".to_vec()),
        ("truncated JSON", br#"{"id":"e1","#.to_vec()),
        ("invalid UTF-8", vec![b'{', 0xff, 0xfe, b'}']),
        ("NUL bytes", b"\0\0\0\0".to_vec()),
        ("a byte-order mark", [&[0xef, 0xbb, 0xbf][..], &good].concat()),
        ("nesting 10,000 deep", [vec![b'['; 10_000], vec![b']'; 10_000]].concat()),
        ("trailing garbage", [&good[..], b"}}"].concat()),
    ] {
        cases.push(base("bodies", name, body, 400, "invalid_event"));
    }

    for (name, body) in [
        ("an array", b"[]".to_vec()),
        ("null", b"null".to_vec()),
        ("a number", b"123".to_vec()),
        ("a string", br#""order.accepted""#.to_vec()),
        ("no id", edited(|v| drop(v.as_object_mut().unwrap().remove("id")))),
        ("no type", edited(|v| drop(v.as_object_mut().unwrap().remove("type")))),
        ("no data", edited(|v| drop(v.as_object_mut().unwrap().remove("data")))),
        ("no data.object", edited(|v| v["data"] = json!({}))),
        (
            "no liveMode",
            edited(|v| drop(v.as_object_mut().unwrap().remove("liveMode"))),
        ),
        ("a numeric id", edited(|v| v["id"] = json!(42))),
        ("a null id", edited(|v| v["id"] = Value::Null)),
        ("a numeric type", edited(|v| v["type"] = json!(7))),
        ("data as a string", edited(|v| v["data"] = json!("order"))),
        ("data.object as an array", edited(|v| v["data"]["object"] = json!([1]))),
        ("liveMode as a string", edited(|v| v["liveMode"] = json!("false"))),
        ("liveMode null", edited(|v| v["liveMode"] = Value::Null)),
        (
            "an order event without an order id",
            edited(|v| v["data"]["object"] = json!({"state": "accepted"})),
        ),
        (
            "a 300-character order id",
            edited(|v| v["data"]["object"]["id"] = json!("o".repeat(300))),
        ),
        (
            "a 300-character orderId",
            edited(|v| v["data"]["object"]["orderId"] = json!("o".repeat(300))),
        ),
    ] {
        cases.push(shape(name, body));
    }
    let text = serde_json::from_slice::<Value>(&good).unwrap().to_string();
    // The key once more at the top level, before the original.
    let twice = |key: &str, extra: &str| format!("{{\"{key}\":{extra},{}", &text[1..]);
    cases.push(shape("the id twice", twice("id", "\"evt-other\"").into_bytes()));
    cases.push(shape(
        "the type twice",
        twice("type", "\"order.complete\"").into_bytes(),
    ));
    cases.push(shape("liveMode twice", twice("liveMode", "true").into_bytes()));

    for (name, id) in [
        ("an empty id", String::new()),
        ("an id with a space", "evt 1".to_owned()),
        ("a 256-character id", "e".repeat(256)),
        ("an id with a newline", "evt\n1".to_owned()),
        ("a non-ASCII id", "évènement".to_owned()),
    ] {
        let mut case = shape(name, edited(|v| v["id"] = json!(id)));
        case.category = "ids and types";
        cases.push(case);
    }
    for (name, event_type) in [
        ("an upper-case type", "ORDER.ACCEPTED".to_owned()),
        ("a type with an empty part", "order..accepted".to_owned()),
        ("an empty type", String::new()),
        ("a 101-character type", "o".repeat(101)),
    ] {
        let mut case = shape(name, edited(|v| v["type"] = json!(event_type)));
        case.category = "ids and types";
        cases.push(case);
    }

    let now = unix_secs() as i64;
    for (name, sign) in [
        ("no signature", Sign::None),
        ("an empty signature", Sign::Raw(String::new())),
        ("garbage", Sign::Raw("garbage".to_owned())),
        ("only a timestamp", Sign::Raw(format!("{now}"))),
        (
            "a wrong secret",
            Sign::Raw(dr_sf_bridge::digital_river::signature::sign("whsec_wrong", now, &good)),
        ),
        (
            "an hour old",
            Sign::Raw(dr_sf_bridge::digital_river::signature::sign(
                SIGNING_SECRET,
                now - 3600,
                &good,
            )),
        ),
        (
            "an hour ahead",
            Sign::Raw(dr_sf_bridge::digital_river::signature::sign(
                SIGNING_SECRET,
                now + 3600,
                &good,
            )),
        ),
        (
            "another body's",
            Sign::Raw(dr_sf_bridge::digital_river::signature::sign(SIGNING_SECRET, now, b"{}")),
        ),
        (
            "milliseconds an hour old",
            Sign::Raw(dr_sf_bridge::digital_river::signature::sign(
                SIGNING_SECRET,
                (now - 3600) * 1000,
                &good,
            )),
        ),
    ] {
        let mut case = base(
            "signatures",
            format!("a signature: {name}"),
            good.clone(),
            401,
            "invalid_signature",
        );
        case.sign = sign;
        cases.push(case);
    }

    let wrong_key = "another-relay-token-key-0123456789abcdef";
    for (name, token) in [
        ("not a token", "not-a-token".to_owned()),
        ("empty", String::new()),
        (
            "expired",
            jwt(
                TOKEN_KEY,
                "dr-sf-bridge/webhooks",
                -3600,
                jsonwebtoken::Algorithm::HS256,
            ),
        ),
        (
            "signed with another key",
            jwt(wrong_key, "dr-sf-bridge/webhooks", 600, jsonwebtoken::Algorithm::HS256),
        ),
        (
            "for another audience",
            jwt(TOKEN_KEY, "somewhere-else", 600, jsonwebtoken::Algorithm::HS256),
        ),
        (
            "with another algorithm",
            jwt(TOKEN_KEY, "dr-sf-bridge/webhooks", 600, jsonwebtoken::Algorithm::HS512),
        ),
        ("unsigned (alg none)", {
            let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
            let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
                json!({"iss": "dr-sf-bridge", "aud": "dr-sf-bridge/webhooks", "sub": INBOUND_CLIENT_ID, "exp": now + 600}).to_string(),
            );
            format!("{header}.{claims}.")
        }),
    ] {
        let mut case = base(
            "tokens",
            format!("a bearer token: {name}"),
            good.clone(),
            401,
            "unauthorized",
        );
        case.auth = Auth::Raw(format!("Bearer {token}"));
        cases.push(case);
    }

    for (name, auth) in [
        ("none", Auth::None),
        ("a wrong password", Auth::Raw(basic(BASIC_USER, "wrong-password-123"))),
        ("a wrong user", Auth::Raw(basic("someone", RELAY_PASSWORD))),
        (
            "no colon",
            Auth::Raw(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode("nocolon")
            )),
        ),
        ("not Base64", Auth::Raw("Basic !!!".to_owned())),
        ("a bare scheme", Auth::Raw("Basic".to_owned())),
        ("another scheme", Auth::Raw("Digest username=\"dr\"".to_owned())),
    ] {
        let mut case = base(
            "credentials",
            format!("credentials: {name}"),
            good.clone(),
            401,
            "unauthorized",
        );
        case.auth = auth;
        cases.push(case);
    }

    let token_case = |name: &str, form: &str, content_type: Option<&'static str>, status: u16, error: &'static str| {
        let mut case = base(
            "token endpoint",
            name.to_owned(),
            form.as_bytes().to_vec(),
            status,
            error,
        );
        case.path = "/oauth2/token";
        case.content_type = content_type;
        case.auth = Auth::None;
        case.sign = Sign::None;
        case
    };
    let form = "application/x-www-form-urlencoded";
    cases.push(token_case(
        "a JSON body",
        r#"{"grant_type":"client_credentials"}"#,
        Some("application/json"),
        400,
        "invalid_request",
    ));
    cases.push(token_case(
        "no grant type",
        &format!("client_id={INBOUND_CLIENT_ID}&client_secret={RELAY_SECRET}"),
        Some(form),
        400,
        "invalid_request",
    ));
    cases.push(token_case(
        "an unknown grant type",
        "grant_type=authorization_code",
        Some(form),
        400,
        "unsupported_grant_type",
    ));
    cases.push(token_case(
        "a wrong client secret",
        &format!("grant_type=client_credentials&client_id={INBOUND_CLIENT_ID}&client_secret=wrong-secret-value"),
        Some(form),
        401,
        "invalid_client",
    ));
    cases.push(token_case(
        "no client",
        "grant_type=client_credentials",
        Some(form),
        401,
        "invalid_client",
    ));
    cases.push(token_case(
        "a form over 16 KB",
        &format!("grant_type=client_credentials&pad={}", "x".repeat(20_000)),
        Some(form),
        400,
        "invalid_request",
    ));
    let mut get_token = token_case("GET on the token endpoint", "", None, 405, "method_not_allowed");
    get_token.method = "GET";
    cases.push(get_token);

    let admin_case = |name: &str, path: &'static str, auth: Auth, status: u16, error: &'static str| {
        let mut case = base("admin API", name.to_owned(), Vec::new(), status, error);
        case.method = "GET";
        case.path = path;
        case.content_type = None;
        case.auth = auth;
        case.sign = Sign::None;
        case
    };
    cases.push(admin_case(
        "no admin token",
        "/admin/events",
        Auth::None,
        401,
        "unauthorized",
    ));
    cases.push(admin_case(
        "a wrong admin token",
        "/admin/events",
        Auth::Raw("Bearer wrong-admin-token-0123456789".into()),
        401,
        "unauthorized",
    ));
    cases.push(admin_case(
        "Basic instead of the admin token",
        "/admin/events",
        Auth::Basic,
        401,
        "unauthorized",
    ));
    cases.push(admin_case(
        "an unknown status",
        "/admin/events?status=lost",
        Auth::Raw(format!("Bearer {ADMIN_TOKEN}")),
        400,
        "invalid_status",
    ));
    cases.push(admin_case(
        "an invalid event id",
        "/admin/events/a%20b",
        Auth::Raw(format!("Bearer {ADMIN_TOKEN}")),
        400,
        "invalid_id",
    ));
    cases
}

async fn send(relay: &TestRelay, case: &Case) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
    let mut request = relay
        .http
        .request(method, format!("{}{}", relay.address, case.path))
        .body(case.body.clone());
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    for (name, value) in &case.headers {
        request = request.header(*name, value);
    }
    match &case.auth {
        Auth::Basic => request = request.header("authorization", basic_header()),
        Auth::None => {}
        Auth::Raw(value) => request = request.header("authorization", value),
    }
    match &case.sign {
        Sign::Valid => request = request.header("DigitalRiver-Signature", signed(&case.body)),
        Sign::None => {}
        Sign::Raw(value) => {
            if let Ok(value) = reqwest::header::HeaderValue::from_bytes(value.as_bytes()) {
                request = request.header("DigitalRiver-Signature", value);
            }
        }
    }
    request.send().await.expect("the relay answers")
}

#[tokio::test]
async fn every_bad_request_gets_its_status_and_a_json_reason_and_stores_nothing() {
    let relay = spawn_app_with(
        accepting_org().await,
        &[
            ("relay.admin_token", ADMIN_TOKEN),
            ("relay.max_auth_failures_per_minute", "100000"),
        ],
    )
    .await;
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let response = send(&relay, case).await;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.text().await.unwrap_or_default();
        let reason = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from));
        if status != case.status
            || reason.as_deref() != Some(case.error)
            || !content_type.starts_with("application/json")
        {
            failures.push(format!(
                "[{}] {}: got {status} {content_type} {body:.200}; want {} {}",
                case.category, case.name, case.status, case.error
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    let stats = relay.store.stats().await.unwrap();
    assert_eq!(
        stats.pending + stats.delivered + stats.dead + stats.ignored,
        0,
        "nothing was stored"
    );
    relay
        .accept(&event("order.accepted", "evt-still-serving", "o-ok"))
        .await;
    relay.logs.assert_no_secret();
}

/// The categories and their row counts, for RELIABILITY.md (`cargo test bad_input -- --nocapture`).
#[test]
fn print_the_cases_by_category() {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for case in cases() {
        *counts.entry(case.category).or_default() += 1;
    }
    for (category, n) in &counts {
        println!("bad input | {category} | {n}");
    }
    assert!(counts.len() >= 9, "{counts:?}");
}

async fn accepting_org() -> SalesforceStandIn {
    let sf = SalesforceStandIn::start().await;
    apex(wiremock::ResponseTemplate::new(200)).mount(&sf.server).await;
    sf
}
