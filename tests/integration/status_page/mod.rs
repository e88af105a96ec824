//! The status page over plain HTTP: off without a token, closed without a session, forms that need
//! their CSRF token, the token kept out of pages, logs and the store; what the pages say. The
//! real-browser walk-through is in `browser`.

mod browser;
mod waiting;

use dr_sf_bridge::store::EventStatus;
use wiremock::ResponseTemplate;

use crate::relay_helpers::*;
use crate::salesforce_standin::*;

pub const ADMIN_TOKEN: &str = "ui-admin-token-0123456789-abcdefgh";

/// A relay whose org answers 404 (the DR package missing) until `mount_ok` is called.
pub async fn relay_with_missing_package(overrides: &[(&str, &str)]) -> (TestRelay, wiremock::MockGuard) {
    let sf = SalesforceStandIn::start().await;
    let missing = apex(sf_error(404, "NOT_FOUND", "Could not find a match for URL"))
        .mount_as_scoped(&sf.server)
        .await;
    let mut all = vec![("relay.admin_token", ADMIN_TOKEN)];
    all.extend_from_slice(overrides);
    (spawn_app_with(sf, &all).await, missing)
}

/// The pause before a wrong token's answer, measured on tokio's paused clock: the relay's own
/// router called without a socket, so the clock moves only by the pause itself.
#[tokio::test(start_paused = true)]
async fn a_wrong_token_waits_its_pause_on_the_relays_own_router() {
    use tower::ServiceExt;

    let dir = tempfile::tempdir().unwrap();
    let overrides = overrides_for_org(
        "http://127.0.0.1:9",
        &dir.path().join("relay.db"),
        &[("relay.admin_token", ADMIN_TOKEN)],
    );
    let app = dr_sf_bridge::app::Application::build(relay_settings(overrides))
        .await
        .expect("the relay builds");
    let router = dr_sf_bridge::app::router(app.state().clone());
    let sign_in = |token: &str| {
        axum::http::Request::post("/ui/sign-in")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(format!("token={token}")))
            .unwrap()
    };

    let before = tokio::time::Instant::now();
    let refused = router.clone().oneshot(sign_in("wrong-guess")).await.unwrap();
    let waited = tokio::time::Instant::now() - before;
    assert_eq!(refused.status(), 401);
    assert!(
        waited >= std::time::Duration::from_millis(750),
        "a wrong token waits 750 ms: {waited:?}"
    );

    let before = tokio::time::Instant::now();
    let accepted = router.oneshot(sign_in(ADMIN_TOKEN)).await.unwrap();
    let waited = tokio::time::Instant::now() - before;
    assert_eq!(accepted.status(), 303);
    assert!(
        waited < std::time::Duration::from_millis(750),
        "the right one does not: {waited:?}"
    );
}

/// A signed-in visitor: the session cookie, and the pages it reads.
pub struct Visitor<'a> {
    relay: &'a TestRelay,
    cookie: String,
}

impl<'a> Visitor<'a> {
    pub async fn sign_in(relay: &'a TestRelay) -> Self {
        let response = sign_in(relay, ADMIN_TOKEN).await;
        assert_eq!(response.status(), 303, "signed in");
        let set_cookie = response.headers()["set-cookie"].to_str().unwrap().to_owned();
        Self {
            relay,
            cookie: set_cookie.split(';').next().unwrap().to_owned(),
        }
    }

    /// The page as served, less its line-break opportunities (`<wbr>`), so that a test reads its
    /// words as a reader sees them.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .relay
            .http
            .get(format!("{}{path}", self.relay.address))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap().replace("<wbr>", ""))
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.relay
            .http
            .post(format!("{}{path}", self.relay.address))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Sends an event again as the page does: its confirmation page's token, then the form.
    pub async fn replay(&self, id: &str) -> reqwest::Response {
        let path = format!("/ui/events/{id}/replay");
        let csrf = self.csrf(&path).await;
        self.post(&path, &[("csrf", &csrf)]).await
    }

    /// The CSRF token the page at `path` carries in its forms.
    pub async fn csrf(&self, path: &str) -> String {
        let (_, page) = self.get(path).await;
        let start = page.find(r#"name="csrf" value=""#).expect("a form with its token") + 19;
        page[start..start + 64].to_owned()
    }
}

pub async fn sign_in(relay: &TestRelay, token: &str) -> reqwest::Response {
    relay
        .http
        .post(format!("{}/ui/sign-in", relay.address))
        .form(&[("token", token), ("next", "/ui/events?status=dead")])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_status_page_does_not_exist_without_an_admin_token() {
    let relay = spawn_app().await;
    for path in [
        "/ui/",
        "/ui",
        "/ui/sign-in",
        "/ui/events",
        "/ui/events/e1",
        "/ui/replay",
    ] {
        assert_eq!(relay.get(path).await.status(), 404, "{path}");
    }
    let response = sign_in(&relay, "anything").await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn without_a_session_every_page_redirects_to_sign_in_and_nothing_is_done() {
    let (relay, _missing) = relay_with_missing_package(&[]).await;
    relay.accept(&event("order.accepted", "evt-ui-1", "o-1")).await;
    relay.wait_for_status("evt-ui-1", EventStatus::Dead).await;
    for path in [
        "/ui/",
        "/ui/events?status=dead",
        "/ui/events/evt-ui-1",
        "/ui/events/evt-ui-1/replay",
        "/ui/replay",
    ] {
        let response = relay.get(path).await;
        assert_eq!(response.status(), 303, "{path}");
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.starts_with("/ui/sign-in?next=%2Fui%2F"), "{path}: {location}");
    }
    let forged = relay
        .http
        .post(format!("{}/ui/events/evt-ui-1/replay", relay.address))
        .header("cookie", "drsf_session=99999999999999.00.00")
        .form(&[("csrf", "00")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 303, "a forged cookie is no session");
    assert_eq!(
        relay.status_of("evt-ui-1").await,
        Some(EventStatus::Dead),
        "nothing replayed"
    );
    let form = relay.get("/ui/sign-in").await;
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains(r#"type="password""#));
}

#[tokio::test]
async fn signing_in_sets_a_strict_http_only_cookie_that_is_secure_behind_https() {
    let (relay, _missing) = relay_with_missing_package(&[]).await;
    let response = sign_in(&relay, ADMIN_TOKEN).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/ui/events?status=dead",
        "back to the page asked for"
    );
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=28800"] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http here: {cookie}");
    let elsewhere = relay
        .http
        .post(format!("{}/ui/sign-in", relay.address))
        .form(&[("token", ADMIN_TOKEN), ("next", "https://evil.example/ui/")])
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.headers()["location"], "/ui/", "never sent to another site");

    let sf = SalesforceStandIn::start().await;
    let https = spawn_app_with(
        sf,
        &[
            ("relay.admin_token", ADMIN_TOKEN),
            ("relay.public_url", "https://relay.acme.example"),
        ],
    )
    .await;
    let response = sign_in(&https, ADMIN_TOKEN).await;
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn a_wrong_token_is_refused_slowly_and_repeated_guesses_are_throttled() {
    let (relay, _missing) = relay_with_missing_package(&[("relay.max_auth_failures_per_minute", "3")]).await;
    let guess = "wrong-guess-of-the-admin-token-42";
    // How long it is slowed: `a_wrong_token_waits_its_pause_on_the_relays_own_router`.
    let response = sign_in(&relay, guess).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().get("set-cookie").is_none());
    let page = response.text().await.unwrap();
    assert!(page.contains("That is not the admin token"), "{page}");
    assert!(!page.contains(guess), "the value tried is not echoed");
    assert_eq!(sign_in(&relay, guess).await.status(), 401);
    assert_eq!(sign_in(&relay, guess).await.status(), 401);
    let throttled = sign_in(&relay, ADMIN_TOKEN).await;
    assert_eq!(
        throttled.status(),
        429,
        "blocked for a while, even with the right token"
    );
    assert!(throttled.headers().contains_key("retry-after"));
    let logs = relay.logs.text();
    assert!(logs.contains("refused a status page sign-in"), "logged");
    assert!(!logs.contains(guess), "without the value tried");
}

#[tokio::test]
async fn a_replay_without_the_csrf_token_is_refused_and_changes_nothing() {
    let (relay, missing) = relay_with_missing_package(&[]).await;
    relay.accept(&event("order.accepted", "evt-csrf", "o-csrf")).await;
    relay.wait_for_status("evt-csrf", EventStatus::Dead).await;
    let visitor = Visitor::sign_in(&relay).await;
    let other = Visitor::sign_in(&relay).await;
    let others_token = other.csrf("/ui/events/evt-csrf/replay").await;
    for form in [vec![], vec![("csrf", "")], vec![("csrf", others_token.as_str())]] {
        let response = visitor.post("/ui/events/evt-csrf/replay", &form).await;
        assert_eq!(response.status(), 403, "{form:?}");
        assert_eq!(relay.status_of("evt-csrf").await, Some(EventStatus::Dead));
    }
    let since = (unix_now() - 3600) * 1000;
    let refused = visitor.post("/ui/replay", &[("since", &since.to_string())]).await;
    assert_eq!(refused.status(), 403, "the bulk replay too");

    drop(missing);
    apex(ResponseTemplate::new(200)).mount(&relay.sf.server).await;
    let response = visitor.replay("evt-csrf").await;
    assert_eq!(response.status(), 303);
    let csrf = visitor.csrf("/ui/").await;
    relay.wait_for_status("evt-csrf", EventStatus::Delivered).await;
    let (_, page) = visitor.get("/ui/events/evt-csrf?replayed=true").await;
    assert!(
        page.contains("Sent again") && page.contains("Delivered: Salesforce accepted it."),
        "{page}"
    );

    // Every form of the page is checked, signing out included.
    assert_eq!(visitor.post("/ui/sign-out", &[]).await.status(), 403);
    let padded = "x".repeat(8 * 1024);
    let oversized = visitor.post("/ui/sign-out", &[("csrf", &csrf), ("pad", &padded)]).await;
    assert_eq!(oversized.status(), 403, "a form larger than any of the page's");
    let out = visitor.post("/ui/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn the_admin_token_never_appears_in_a_page_a_log_or_the_store() {
    let (relay, _missing) = relay_with_missing_package(&[]).await;
    relay.accept(&event("order.accepted", "evt-secret", "o-secret")).await;
    relay.wait_for_status("evt-secret", EventStatus::Dead).await;
    let visitor = Visitor::sign_in(&relay).await;
    assert!(!visitor.cookie.contains(ADMIN_TOKEN));
    let mut pages = String::new();
    for path in [
        "/ui/",
        "/ui/events",
        "/ui/events?status=dead&q=o-secret",
        "/ui/events/evt-secret",
        "/ui/events/evt-secret/replay",
        "/ui/replay?since=1h",
        "/ui/sign-in",
    ] {
        let (status, page) = visitor.get(path).await;
        assert_eq!(status, 200, "{path}");
        pages.push_str(&page);
    }
    visitor.replay("evt-secret").await;
    assert!(pages.contains("evt-secret"), "the pages were read");
    assert!(!pages.contains(ADMIN_TOKEN), "not in a page");
    relay.logs.assert_no_secret();
    assert!(!relay.logs.text().contains(ADMIN_TOKEN), "not in a log");
    let (sf, dir) = relay.stop().await;
    drop(sf);
    let mut read = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        // The store's files (the database, its journal), not the lock's link.
        let Ok(bytes) = std::fs::read(entry.unwrap().path()) else {
            continue;
        };
        read += bytes.len();
        let found = bytes.windows(ADMIN_TOKEN.len()).any(|w| w == ADMIN_TOKEN.as_bytes());
        assert!(!found, "not in the store's files");
    }
    assert!(read > 10_000, "the store was read: {read} bytes");
}

#[tokio::test]
async fn the_overview_says_what_is_wrong_in_plain_words() {
    let (relay, missing) = relay_with_missing_package(&[]).await;
    let visitor = Visitor::sign_in(&relay).await;
    let (status, page) = visitor.get("/ui/").await;
    assert_eq!(status, 200);
    assert!(page.contains("All good"), "{page}");
    assert!(page.contains("not checked yet"), "no `check` ran: {page}");
    let seen = dr_sf_bridge::store::facts::WebhookSeen {
        ok: true,
        detail: "wh_123 for https://relay.acme.example/oauth2/token with all 8 types".into(),
        checked_at_ms: (unix_now() - 600) * 1000,
        state: None,
    };
    seen.remember(&*relay.store, dr_sf_bridge::domain::Mode::Test)
        .await
        .unwrap();
    let (_, page) = visitor.get("/ui/").await;
    assert!(page.contains("✓ wh_123 for https://relay.acme.example"), "{page}");
    assert!(page.contains("as <code>check</code> saw it 10 min ago"), "{page}");

    relay.accept(&event("order.accepted", "evt-dead", "o-dead")).await;
    relay.wait_for_status("evt-dead", EventStatus::Dead).await;
    let (_, page) = visitor.get("/ui/").await;
    assert!(page.contains("1 event could not be delivered"), "{page}");
    assert!(page.contains(r#"<b id="received-hour">1</b>"#), "{page}");

    drop(missing);
    apex(sf_error(503, "SERVER_UNAVAILABLE", "down for maintenance"))
        .mount(&relay.sf.server)
        .await;
    relay.accept(&event("order.accepted", "evt-outage", "o-outage")).await;
    wait_until("a failed attempt", || async {
        relay.stored("evt-outage").await.1.len() >= 2
    })
    .await;
    let (_, page) = visitor.get("/ui/").await;
    assert!(page.contains("Salesforce failing since"), "{page}");
    assert!(page.contains(r#"class="health bad""#), "{page}");
}

#[tokio::test]
async fn the_events_list_filters_and_pages_newest_first_by_key() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    let relay = spawn_app_with(sf, &[("relay.admin_token", ADMIN_TOKEN)]).await;
    for n in 0..120 {
        let kind = if n % 3 == 0 { "order.complete" } else { "order.accepted" };
        relay
            .accept(&event(kind, &format!("evt-{n:03}"), &format!("ord-{}", n / 2)))
            .await;
    }
    let visitor = Visitor::sign_in(&relay).await;
    let mut seen = Vec::new();
    let mut path = "/ui/events".to_owned();
    loop {
        let (status, page) = visitor.get(&path).await;
        assert_eq!(status, 200);
        seen.extend(ids_in(&page));
        match page
            .split(r#"id="older" href=""#)
            .nth(1)
            .or_else(|| page.split(r#"href=""#).find(|s| s.starts_with("/ui/events?before=")))
        {
            Some(rest) => path = rest[..rest.find('"').unwrap()].replace("&amp;", "&"),
            None => break,
        }
    }
    let expected: Vec<String> = (0..120).rev().map(|n| format!("evt-{n:03}")).collect();
    assert_eq!(seen, expected, "every event once, newest first, over three pages");

    let (_, page) = visitor.get("/ui/events?type=order.complete").await;
    assert_eq!(ids_in(&page).len(), 40);
    let (_, page) = visitor.get("/ui/events?q=ord-7").await;
    assert_eq!(ids_in(&page), ["evt-015", "evt-014"], "by order id");
    let (_, page) = visitor.get("/ui/events?q=evt-042").await;
    assert_eq!(ids_in(&page), ["evt-042"], "by event id");
    let (_, page) = visitor.get("/ui/events?status=dead").await;
    assert!(page.contains("No stored event matches"));
    let (_, page) = visitor.get("/ui/events?status=lost").await;
    assert!(page.contains("`lost` is not a status"), "{page}");
}

/// The event ids a list page links to, in order.
fn ids_in(page: &str) -> Vec<String> {
    page.split(r#"<a class="id" href="/ui/events/"#)
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect()
}

#[tokio::test]
async fn dead_events_since_a_time_are_counted_confirmed_and_sent_again() {
    let (relay, missing) = relay_with_missing_package(&[]).await;
    relay.accept_until("evt-bulk", 3, EventStatus::Dead).await;
    let visitor = Visitor::sign_in(&relay).await;
    let (_, page) = visitor.get("/ui/replay?since=1h").await;
    assert!(page.contains("3 dead events received since"), "{page}");
    let (_, page) = visitor.get("/ui/replay?since=soon-ish").await;
    assert!(page.contains("is neither a time"), "{page}");

    drop(missing);
    apex(ResponseTemplate::new(200)).mount(&relay.sf.server).await;
    let csrf = visitor.csrf("/ui/replay?since=1h").await;
    let since = ((unix_now() - 3600) * 1000).to_string();
    let response = visitor.post("/ui/replay", &[("csrf", &csrf), ("since", &since)]).await;
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with("replayed=3"), "{location}");
    for n in 0..3 {
        relay
            .wait_for_status(&format!("evt-bulk-{n}"), EventStatus::Delivered)
            .await;
    }
    let (_, page) = visitor.get(&location).await;
    assert!(page.contains("3 dead events sent again"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_two_relays_share_sessions_and_a_replay_on_one_is_delivered() {
    let Some(schema) = crate::pg::fresh_schema("status_page").await else {
        return;
    };
    let url = schema.url.clone();
    let (first, missing) = relay_with_missing_package(&[("storage.url", &url)]).await;
    first.accept(&event("order.accepted", "evt-pg-ui", "o-pg-ui")).await;
    first.wait_for_status("evt-pg-ui", EventStatus::Dead).await;
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    let second = spawn_app_with(sf, &[("relay.admin_token", ADMIN_TOKEN), ("storage.url", &url)]).await;

    let on_first = Visitor::sign_in(&first).await;
    let on_second = Visitor {
        relay: &second,
        cookie: on_first.cookie.clone(),
    };
    let (status, page) = on_second.get("/ui/events?status=dead").await;
    assert_eq!(status, 200, "the other relay's session is accepted");
    assert!(page.contains("evt-pg-ui"), "{page}");
    let (_, page) = on_second.get("/ui/").await;
    assert!(page.contains("1 event could not be delivered"), "{page}");

    drop(missing);
    apex(ResponseTemplate::new(200)).mount(&first.sf.server).await;
    let response = on_second.replay("evt-pg-ui").await;
    assert_eq!(response.status(), 303);
    second.wait_for_status("evt-pg-ui", EventStatus::Delivered).await;
    let (_, page) = on_first.get("/ui/events/evt-pg-ui").await;
    assert!(page.contains("Delivered: Salesforce accepted it."), "{page}");
}
