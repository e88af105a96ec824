//! The status page in a real browser: Chromium, headless, driven through WebDriver
//! (chromedriver) — sign in (a wrong token first), find the dead event, try a replay whose form
//! lost its CSRF token, replay it properly, and see it delivered. The README's screenshots are
//! taken here (`DRSF_UPDATE_SCREENSHOTS=1` writes them into `docs/`; otherwise into `target/`).
//!
//! Without Chromium and chromedriver (Debian's `chromium` and `chromium-driver`) the test says so
//! and passes outside CI; under CI (`CI=true`, where `.ci/run` installs them) it fails instead.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use dr_sf_bridge::domain::Mode;
use dr_sf_bridge::store::EventStatus;
use dr_sf_bridge::store::facts::WebhookSeen;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use wiremock::ResponseTemplate;

use super::{ADMIN_TOKEN, relay_with_missing_package};
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    _process: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let status = reqwest::Client::new();
        poll_until(
            "chromedriver to answer",
            Duration::from_secs(20),
            Duration::from_millis(50),
            || {
                let request = status.get(format!("{url}/status")).send();
                async move { request.await.is_ok_and(|r| r.status().is_success()) }
            },
        )
        .await;
        Self { _process: process, url }
    }

    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1100,1300", "--hide-scrollbars"]
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

/// Whether the browser is here; a visible skip outside CI when it is not, a failure under CI.
fn browser_installed() -> bool {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI must run the browser test: install Debian's chromium and chromium-driver (.ci/run does)"
    );
    eprintln!(
        "SKIPPED status_page::browser: {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
    );
    false
}

/// The element once the page that has it is loaded (a click that navigates returns before the
/// next page may be there).
async fn appears(browser: &Client, css: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"))
}

async fn text_of(browser: &Client, css: &str) -> String {
    appears(browser, css).await.text().await.unwrap()
}

async fn click(browser: &Client, css: &str) {
    appears(browser, css).await.click().await.unwrap();
}

/// Saves a screenshot of what the browser shows under `docs/screenshots/` (when asked) or
/// `target/screenshots/`.
async fn screenshot(browser: &Client, name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let folder = if std::env::var("DRSF_UPDATE_SCREENSHOTS").is_ok() {
        root.join("docs/screenshots")
    } else {
        root.join("target/screenshots")
    };
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join(format!("{name}.png"));
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(&path, png).unwrap();
    path
}

/// What is wrong with the page's layout as the browser lays it out now, in words: a word broken
/// mid-word anywhere but in the event's body (`<pre>`), an id, type or time over two lines,
/// backticks shown literally, a cell whose text spills out
/// of it, a table that must be scrolled sideways (which hides its last columns), and, on a
/// phone, a page wider than the screen.
async fn layout_problems(browser: &Client) -> Vec<String> {
    const CHECK: &str = r#"
const problems = [];
const words = /[\p{L}\p{N}_:]+/gu;
const lines = (range) => new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top))).size;
const unbroken = 'body *:not(pre):not(style)';
for (const el of document.querySelectorAll(unbroken)) {
  for (const node of el.childNodes) {
    if (node.nodeType !== Node.TEXT_NODE) continue;
    for (const m of node.textContent.matchAll(words)) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      if (lines(range) > 1) problems.push(`"${m[0]}" breaks mid-word in <${el.tagName.toLowerCase()}>`);
    }
  }
}
for (const el of document.querySelectorAll('time, .id, .type')) {
  const range = document.createRange();
  range.selectNodeContents(el);
  if (lines(range) > 1) problems.push(`"${el.textContent.trim()}" wraps over ${lines(range)} lines`);
}
// A time anywhere, even split over text nodes (line-break opportunities between its parts).
for (const el of document.querySelectorAll('body *')) {
  const nodes = [...el.childNodes].filter(n => n.nodeType === Node.TEXT_NODE);
  const text = nodes.map(n => n.textContent).join('');
  const at = (offset) => {
    for (const node of nodes) {
      if (offset <= node.textContent.length) return [node, offset];
      offset -= node.textContent.length;
    }
  };
  for (const m of text.matchAll(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d( UTC)?/g)) {
    const range = document.createRange();
    range.setStart(...at(m.index));
    range.setEnd(...at(m.index + m[0].length));
    if (lines(range) > 1) problems.push(`the time "${m[0]}" is broken across lines in <${el.tagName.toLowerCase()}>`);
  }
}
if (document.body.innerText.includes('`')) problems.push('a backtick shows literally');
for (const cell of document.querySelectorAll('td, th, dd')) {
  if (cell.scrollWidth > cell.clientWidth + 1) problems.push(`"${cell.textContent.slice(0, 40)}" spills out of its cell`);
}
for (const box of document.querySelectorAll('.scroll')) {
  if (box.scrollWidth > box.clientWidth + 1) problems.push(`a table needs scrolling sideways (${box.scrollWidth} px in ${box.clientWidth})`);
}
for (const status of document.querySelectorAll('td .badge')) {
  const r = status.getBoundingClientRect();
  if (r.right > window.innerWidth || r.left < 0) problems.push(`a status is off-screen (${Math.round(r.left)}..${Math.round(r.right)} px)`);
}
if (document.documentElement.scrollWidth > window.innerWidth) {
  problems.push(`the page is ${document.documentElement.scrollWidth} px wide on a ${window.innerWidth} px screen`);
}
return problems;
"#;
    let found = browser.execute(CHECK, vec![]).await.unwrap();
    serde_json::from_value(found).unwrap()
}

#[tokio::test]
async fn an_admin_signs_in_finds_the_dead_event_replays_it_and_sees_it_delivered() {
    if !browser_installed() {
        return;
    }
    let (relay, missing) = relay_with_missing_package(&[]).await;
    relay
        .accept(&event("order.accepted", "evt-browser-404", "240010330336"))
        .await;
    relay.wait_for_status("evt-browser-404", EventStatus::Dead).await;
    drop(missing);
    apex(ResponseTemplate::new(200)).mount(&relay.sf.server).await;
    // Ids as DR makes them (36 characters) and the longest type: they must fit on one line each.
    for (n, kind) in ["order.accepted", "order.credit_memo.created", "order.complete"]
        .iter()
        .enumerate()
    {
        let id = format!("9531985d-5d9d-c9f8-1818-e811892f90{n:02}");
        relay.accept(&event(kind, &id, &format!("24001033{n:04}"))).await;
        relay.wait_for_status(&id, EventStatus::Delivered).await;
    }
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let ui = |path: &str| format!("{}{path}", relay.address);

    // No session: the overview sends the browser to the sign-in form.
    browser.goto(&ui("/ui/")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/ui/sign-in");
    appears(&browser, "#token")
        .await
        .send_keys("not-the-admin-token-at-all-000")
        .await
        .unwrap();
    click(&browser, "#sign-in").await;
    assert!(
        text_of(&browser, "[role=alert]")
            .await
            .contains("That is not the admin token")
    );
    assert_eq!(
        browser.current_url().await.unwrap().path(),
        "/ui/sign-in",
        "still signed out"
    );

    appears(&browser, "#token").await.send_keys(ADMIN_TOKEN).await.unwrap();
    click(&browser, "#sign-in").await;
    let health = text_of(&browser, "#health").await;
    assert_eq!(browser.current_url().await.unwrap().path(), "/ui/");
    assert!(health.contains("1 event could not be delivered"), "{health}");
    assert_eq!(text_of(&browser, "#delivered-hour").await, "3");
    screenshot(&browser, "overview").await;

    // The dead count leads to the dead event, and its page says why.
    click(&browser, "#count-dead").await;
    click(&browser, "a[href='/ui/events/evt-browser-404']").await;
    let why = text_of(&browser, "#why").await;
    assert!(
        why.contains("Salesforce answered 404") && why.contains("DR package is not installed"),
        "{why}"
    );
    assert!(
        text_of(&browser, "#body").await.contains("\"240010330336\""),
        "the body, pretty"
    );
    screenshot(&browser, "event").await;

    // A replay form that lost its CSRF token is refused, and nothing changes.
    click(&browser, "#replay").await;
    appears(&browser, "#confirm").await;
    browser
        .execute(
            "document.querySelector('#confirm-form input[name=csrf]').remove()",
            vec![],
        )
        .await
        .unwrap();
    click(&browser, "#confirm").await;
    assert!(text_of(&browser, "[role=alert]").await.contains("Nothing was changed"));
    assert_eq!(relay.status_of("evt-browser-404").await, Some(EventStatus::Dead));

    // The real thing: send it again, confirm, and watch it arrive.
    browser.goto(&ui("/ui/events/evt-browser-404")).await.unwrap();
    click(&browser, "#replay").await;
    click(&browser, "#confirm").await;
    assert!(text_of(&browser, "#notice").await.contains("Sent again"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if text_of(&browser, "#status").await == "delivered" {
            break;
        }
        assert!(Instant::now() < deadline, "the page never showed the event delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
        browser.refresh().await.unwrap();
    }
    assert!(text_of(&browser, "#why").await.contains("Delivered"));
    let page = browser.source().await.unwrap();
    assert!(!page.contains(ADMIN_TOKEN), "the token is not in the page");

    // An unhandled Apex exception as the DR package answers it: lines apart, and a stack frame
    // with no place to break — on a phone it must wrap, not widen the page.
    let frame = "Class.digitalriverv3.WebhookHandler.handle:".repeat(3);
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::body_string_contains("evt-browser-apex"))
        .respond_with(sf_error(
            500,
            "APEX_ERROR",
            &format!("System.NullPointerException: Attempt to de-reference a null object\n\n{frame} line 42, column 1"),
        ))
        .with_priority(1)
        .mount(&relay.sf.server)
        .await;
    relay
        .accept(&event("order.accepted", "evt-browser-apex", "240010330999"))
        .await;
    wait_until("the Apex error is recorded", || async {
        !relay.stored("evt-browser-apex").await.1.is_empty()
    })
    .await;
    // DR disables the webhook: no event arrives any more, so the overview says that first, in
    // red, above the failing org and the dead event.
    browser.set_window_size(1280, 900).await.unwrap();
    WebhookSeen {
        ok: false,
        detail: "Disabled in DR's Dashboard.".into(),
        checked_at_ms: relay.clock.now_ms(),
        state: Some("disabled".into()),
    }
    .remember(&*relay.store, Mode::Test)
    .await
    .unwrap();
    browser.goto(&ui("/ui/")).await.unwrap();
    appears(&browser, "#health").await;
    let first = browser
        .execute(
            "const first = document.querySelector('main').firstElementChild;
             return [first.id, first.innerText, getComputedStyle(first).borderLeftColor]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(first[0], "health", "the health line comes first");
    assert!(
        first[1].as_str().unwrap().starts_with("DR disabled the webhook"),
        "{first:?}"
    );
    assert_eq!(first[2], "rgb(198, 40, 40)", "red");
    let conditions = text_of(&browser, "#conditions").await;
    assert!(conditions.contains("Salesforce failing"), "{conditions}");
    screenshot(&browser, "overview-webhook-disabled").await;

    // On a 1280 px desktop and on a phone, every page lays out cleanly.
    let mut problems = Vec::new();
    for (width, height) in [(1280, 900), (390, 844)] {
        browser.set_window_size(width, height).await.unwrap();
        for path in [
            "/ui/",
            "/ui/events",
            "/ui/events/evt-browser-404",
            "/ui/events/evt-browser-apex",
        ] {
            browser.goto(&ui(path)).await.unwrap();
            appears(&browser, "main").await;
            let screen = browser.execute("return window.innerWidth", vec![]).await.unwrap();
            assert!(
                screen.as_u64().unwrap().abs_diff(u64::from(width)) < 100,
                "the window is {screen} px wide"
            );
            for problem in layout_problems(&browser).await {
                problems.push(format!("{path} at {width} px: {problem}"));
            }
        }
        browser.goto(&ui("/ui/events")).await.unwrap();
        appears(&browser, "#events").await;
        screenshot(&browser, if width == 1280 { "events" } else { "events-phone" }).await;
    }
    assert!(problems.is_empty(), "{problems:#?}");
    browser.goto(&ui("/ui/")).await.unwrap();
    appears(&browser, "#health").await;
    screenshot(&browser, "overview-phone").await;
    browser.close().await.unwrap();
    relay.logs.assert_no_secret();
    assert!(!relay.logs.text().contains(ADMIN_TOKEN));
}
