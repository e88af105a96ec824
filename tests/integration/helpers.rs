//! Test helpers: run the real binary, and a stateful stand-in for DR's Webhooks API.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const API_KEY: &str = "sk_test_TOPSECRETAPIKEY0123456789";
/// The same DR account's live-mode key: DR shows it only the live webhooks.
pub const LIVE_API_KEY: &str = "sk_live_TOPSECRETLIVEKEY9876543210";
pub const SF_CLIENT_SECRET: &str = "SFCONSUMERSECRET-7f3a9b";
pub const SF_PASSWORD: &str = "Int3grationPassw0rd-SECTOKENxyz";
pub const RELAY_SECRET: &str = "RELAYINBOUNDSECRET-5c1d";
pub const RELAY_PASSWORD: &str = "RELAYINBOUNDPASSWORD-9e2f";
/// Every access token the Salesforce stand-in issues starts with this.
pub const SF_TOKEN_PREFIX: &str = "00DTESTORG!AQ";
pub const SECRETS: [&str; 7] = [
    API_KEY,
    LIVE_API_KEY,
    SF_CLIENT_SECRET,
    SF_PASSWORD,
    RELAY_SECRET,
    RELAY_PASSWORD,
    SF_TOKEN_PREFIX,
];

thread_local! {
    /// The buffer of the test running on this thread, while it captures.
    static CAPTURE: std::cell::RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { std::cell::RefCell::new(None) };
}

/// Writes a log line into the buffer of the test whose thread logs it, or nowhere.
struct CurrentTest;

impl std::io::Write for CurrentTest {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|capture| {
            if let Some(buffer) = capture.borrow().as_ref() {
                buffer.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One test's log lines (debug and up), captured from the moment it is made until it is dropped.
///
/// One subscriber for the whole test binary, set once, writes each line into the buffer of the
/// test whose thread logged it: the code under test (a relay spawned by the test included) runs its
/// tasks there, on the test's current-thread runtime, so its lines land here and no other test's
/// do. Lines logged by the stand-ins' own threads (wiremock) are theirs, not the product's, and are
/// not captured. Not a subscriber per thread: tracing caches whether a log statement is wanted
/// the first time it runs, and with per-thread subscribers coming and going in parallel tests that
/// cache could say "nobody listens" to a test that does — the capture that once came back empty.
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
    /// The capture this one stands in front of (a test that starts a second relay), restored
    /// when this one is dropped.
    previous: Option<Arc<Mutex<Vec<u8>>>>,
}

pub fn capture_logs() -> LogCapture {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(|| CurrentTest)
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber of the tests");
    });
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let previous = CAPTURE.with(|capture| capture.borrow_mut().replace(buffer.clone()));
    LogCapture { buffer, previous }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        CAPTURE.with(|capture| {
            let mut capture = capture.borrow_mut();
            if capture.as_ref().is_some_and(|b| Arc::ptr_eq(b, &self.buffer)) {
                *capture = self.previous.take();
            }
        });
    }
}

impl LogCapture {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }

    /// Asserts that this test logged something and no secret.
    pub fn assert_no_secret(&self) {
        let logs = self.text();
        assert!(!logs.is_empty(), "nothing was captured: the check would see nothing");
        for secret in SECRETS {
            assert!(!logs.contains(secret), "a secret leaked into the logs: {secret}");
        }
    }
}

pub const SANDBOX_DOMAIN: &str = "https://acme--uat.sandbox.my.salesforce.com";
pub const PROD_DOMAIN: &str = "https://acme.my.salesforce.com";
pub const APEX_PATH: &str = "/services/apexrest/digitalriverv3/webhooks/";

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// A command line run: the real binary with only the variables given (no DRSF_* from the
/// developer's shell), debug logs on, and every secret checked for in its output.
pub struct Run {
    args: Vec<String>,
    env: HashMap<String, String>,
    config_dir: Option<PathBuf>,
}

pub fn cli(args: &[&str]) -> Run {
    let mut env = HashMap::new();
    env.insert("RUST_LOG".to_owned(), "debug".to_owned());
    Run {
        args: args.iter().map(|s| s.to_string()).collect(),
        env,
        config_dir: None,
    }
}

impl Run {
    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.insert(key.to_owned(), value.into());
        self
    }

    pub fn envs(mut self, vars: &[(&str, String)]) -> Self {
        for (k, v) in vars {
            self.env.insert((*k).to_owned(), v.clone());
        }
        self
    }

    pub fn config_dir(mut self, dir: &Path) -> Self {
        self.config_dir = Some(dir.to_owned());
        self
    }

    pub async fn run(self) -> Output {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dr-sf-bridge"));
        command
            .args(&self.args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear();
        if let Ok(path) = std::env::var("PATH") {
            command.env("PATH", path);
        }
        command.envs(&self.env);
        if let Some(dir) = &self.config_dir {
            command.env("DRSF_CONFIG_DIR", dir);
        }
        let out = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
            .await
            .expect("the command finished within 60 s")
            .expect("the binary runs");
        let output = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        for secret in SECRETS {
            assert!(
                !output.stdout.contains(secret),
                "a secret leaked to stdout:\n{}",
                output.stdout
            );
            assert!(
                !output.stderr.contains(secret),
                "a secret leaked to stderr/logs:\n{}",
                output.stderr
            );
        }
        output
    }
}

/// Settings for a Salesforce sandbox with the password grant, DR at `dr`.
pub fn sandbox_password_env(dr: &DrStandIn) -> Vec<(&'static str, String)> {
    vec![
        ("DRSF__DIGITAL_RIVER__API_BASE_URL", dr.uri()),
        ("DRSF__DIGITAL_RIVER__API_KEY", API_KEY.to_owned()),
        ("DRSF__DIGITAL_RIVER__RETRY_BASE_DELAY_MS", "10".to_owned()),
        ("DRSF__SALESFORCE__ENVIRONMENT", "sandbox".to_owned()),
        ("DRSF__SALESFORCE__MY_DOMAIN_URL", SANDBOX_DOMAIN.to_owned()),
        ("DRSF__SALESFORCE__CLIENT_ID", "3MVG9consumerKey".to_owned()),
        ("DRSF__SALESFORCE__CLIENT_SECRET", SF_CLIENT_SECRET.to_owned()),
        ("DRSF__SALESFORCE__USERNAME", "integration@acme.com.uat".to_owned()),
        ("DRSF__SALESFORCE__PASSWORD", SF_PASSWORD.to_owned()),
    ]
}

pub fn eight_types() -> Value {
    json!(dr_sf_bridge::domain::EventType::SUPPORTED)
}

/// A stand-in for DR's Webhooks API that keeps the webhooks it is given, answers like DR
/// (Bearer key checked, 201 on create, DR's error body, secrets not echoed back), and records
/// every request.
pub struct DrStandIn {
    pub server: MockServer,
    pub webhooks: Arc<Mutex<Vec<Value>>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ListShape {
    BareArray,
    Paged,
}

struct Handler {
    webhooks: Arc<Mutex<Vec<Value>>>,
    shape: ListShape,
    echo_secrets: bool,
}

fn dr_error(status: u16, kind: &str, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"type": kind, "errors": [{"code": code, "message": message}]}))
}

/// What DR shows of a stored webhook: everything but the secret values, unless told to echo.
fn shown_as(webhook: &Value, echo_secrets: bool) -> Value {
    let mut w = webhook.clone();
    if echo_secrets {
        return w;
    }
    if let Some(oauth) = w.get_mut("oauth").and_then(Value::as_object_mut) {
        oauth.remove("clientSecret");
        oauth.remove("password");
    }
    w
}

impl Respond for Handler {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shown = |w: &Value| shown_as(w, self.echo_secrets);
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        // Each mode's key sees and changes only that mode's webhooks, as at DR.
        let live = if auth == format!("Bearer {API_KEY}") {
            false
        } else if auth == format!("Bearer {LIVE_API_KEY}") {
            true
        } else {
            return dr_error(401, "unauthorized", "unauthorized", "Unauthorized");
        };
        let in_mode = |w: &Value| w["liveMode"].as_bool().unwrap_or(false) == live;
        let mut hooks = self.webhooks.lock().unwrap();
        let id = request.url.path().strip_prefix("/webhooks/").map(str::to_owned);
        match (request.method.as_str(), id) {
            ("GET", None) => {
                let items: Vec<Value> = hooks.iter().filter(|w| in_mode(w)).map(shown).collect();
                match self.shape {
                    ListShape::BareArray => ResponseTemplate::new(200).set_body_json(items),
                    ListShape::Paged => {
                        ResponseTemplate::new(200).set_body_json(json!({"hasMore": false, "data": items}))
                    }
                }
            }
            ("POST", None) => {
                let mut body: Value = serde_json::from_slice(&request.body).expect("JSON body");
                let new_id = format!("wh_{}", hooks.len() + 1);
                body["id"] = json!(new_id);
                body["createdTime"] = json!("2026-11-23T08:00:00Z");
                body["liveMode"] = json!(live);
                hooks.push(body.clone());
                ResponseTemplate::new(201).set_body_json(shown(&body))
            }
            (verb, Some(id)) => {
                let Some(pos) = hooks.iter().position(|w| w["id"] == json!(id) && in_mode(w)) else {
                    return dr_error(404, "not_found", "not_found", &format!("Webhook '{id}' not found."));
                };
                match verb {
                    "GET" => ResponseTemplate::new(200).set_body_json(shown(&hooks[pos])),
                    "PATCH" => {
                        let body: Value = serde_json::from_slice(&request.body).expect("JSON body");
                        for (k, v) in body.as_object().unwrap() {
                            hooks[pos][k] = v.clone();
                        }
                        ResponseTemplate::new(200).set_body_json(shown(&hooks[pos]))
                    }
                    "DELETE" => {
                        hooks.remove(pos);
                        ResponseTemplate::new(204)
                    }
                    _ => ResponseTemplate::new(405),
                }
            }
            _ => ResponseTemplate::new(405),
        }
    }
}

impl DrStandIn {
    pub async fn start() -> Self {
        Self::start_with(ListShape::BareArray, false).await
    }

    pub async fn start_with(shape: ListShape, echo_secrets: bool) -> Self {
        let server = MockServer::start().await;
        let webhooks = Arc::new(Mutex::new(Vec::new()));
        Mock::given(path_regex(r"^/webhooks(/[^/]+)?$"))
            .respond_with(Handler {
                webhooks: webhooks.clone(),
                shape,
                echo_secrets,
            })
            .mount(&server)
            .await;
        Self { server, webhooks }
    }

    /// A stand-in with no state: every request gets `response`.
    pub async fn always(response: ResponseTemplate) -> Self {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(response.clone())
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(response.clone())
            .mount(&server)
            .await;
        Mock::given(method("PATCH")).respond_with(response).mount(&server).await;
        Self {
            server,
            webhooks: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn seed(&self, webhook: Value) {
        self.webhooks.lock().unwrap().push(webhook);
    }

    /// The bodies of the requests with this method, in order.
    pub async fn bodies(&self, verb: &str) -> Vec<Value> {
        self.requests(verb)
            .await
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("JSON body"))
            .collect()
    }

    pub async fn requests(&self, verb: &str) -> Vec<Request> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.method.as_str() == verb)
            .collect()
    }

    pub async fn writes(&self) -> usize {
        let mut n = 0;
        for verb in ["POST", "PATCH", "PUT", "DELETE"] {
            n += self.requests(verb).await.len();
        }
        n
    }
}
