//! `events backfill` against a stand-in of DR's Events API ([`Dr`], also the reconciliation
//! tests'): what DR created and the store lacks is
//! stored once, marked as backfilled, and delivered with the exact JSON DR's API returned.

use std::sync::{Arc, Mutex};

use dr_sf_bridge::store::EventStatus;
use dr_sf_bridge::support::clock::now_ms;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

use crate::helpers::*;
use crate::relay_helpers::*;
use crate::salesforce_standin::*;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// One event DR created: when, and its JSON exactly as the API returns it.
#[derive(Clone)]
pub struct Created {
    pub at_ms: i64,
    pub id: String,
    pub event_type: String,
    pub json: String,
}

/// DR's `GET /events` as the reference describes it: the account's events of the last 30 days,
/// newest first, filtered by `types` (repeated or a comma list) and `createdTime[gt|gte|lt|lte]`,
/// `limit` 1–100 (default 10) and `startingAfter` an event id; the Bearer key checked.
struct EventsApi {
    events: Arc<Mutex<Vec<Created>>>,
    requests: Arc<Mutex<u32>>,
}

fn millis(raw: &str) -> i64 {
    humantime::parse_rfc3339_weak(raw)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

impl Respond for EventsApi {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        *self.requests.lock().unwrap() += 1;
        let authorized = request
            .headers
            .get("authorization")
            .is_some_and(|v| v.to_str().unwrap() == format!("Bearer {API_KEY}"));
        if !authorized {
            return ResponseTemplate::new(401).set_body_json(serde_json::json!({"type": "unauthorized"}));
        }
        let mut types = Vec::new();
        let (mut limit, mut after) = (10usize, None);
        let mut within: Vec<Box<dyn Fn(i64) -> bool>> = vec![Box::new(|at| at >= now_ms() - 30 * DAY_MS)];
        for (key, value) in request.url.query_pairs() {
            let value = value.into_owned();
            match key.as_ref() {
                "types" => types.extend(value.split(',').map(str::to_owned)),
                "limit" => limit = value.parse::<usize>().unwrap().clamp(1, 100),
                "startingAfter" => after = Some(value),
                "createdTime[gte]" => within.push(Box::new(move |at| at >= millis(&value))),
                "createdTime[gt]" => within.push(Box::new(move |at| at > millis(&value))),
                "createdTime[lt]" => within.push(Box::new(move |at| at < millis(&value))),
                "createdTime[lte]" => within.push(Box::new(move |at| at <= millis(&value))),
                _ => {}
            }
        }
        let mut matching: Vec<Created> = self
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| (types.is_empty() || types.contains(&e.event_type)) && within.iter().all(|w| w(e.at_ms)))
            .cloned()
            .collect();
        matching.sort_by_key(|e| std::cmp::Reverse(e.at_ms));
        let start = match after {
            Some(id) => matching
                .iter()
                .position(|e| e.id == id)
                .map_or(matching.len(), |p| p + 1),
            None => 0,
        };
        let page: Vec<&str> = matching[start..].iter().take(limit).map(|e| e.json.as_str()).collect();
        let has_more = start + page.len() < matching.len();
        ResponseTemplate::new(200).set_body_raw(
            format!(r#"{{"hasMore": {has_more}, "data": [{}]}}"#, page.join(",")),
            "application/json",
        )
    }
}

pub struct Dr {
    pub api: DrStandIn,
    events: Arc<Mutex<Vec<Created>>>,
    pub requests: Arc<Mutex<u32>>,
}

impl Dr {
    pub async fn start() -> Self {
        let api = DrStandIn::start().await;
        let events = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(0));
        Mock::given(method("GET"))
            .and(path("/events"))
            .respond_with(EventsApi {
                events: events.clone(),
                requests: requests.clone(),
            })
            .mount(&api.server)
            .await;
        Self { api, events, requests }
    }

    /// DR creates `event_type` for `order` at `at_ms`: the fixture, with its own id and time, and
    /// its keys in DR's order with spacing a re-serialization would not keep.
    pub fn create(&self, event_type: &str, id: &str, order: &str, at_ms: i64) -> Created {
        let mut value: Value = serde_json::from_slice(&event(event_type, id, order)).unwrap();
        value["createdTime"] = Value::String(dr_sf_bridge::digital_river::events_api::iso(at_ms));
        let json = serde_json::to_string_pretty(&value)
            .unwrap()
            .replace("\"id\": ", "\"id\":   ");
        let created = Created {
            at_ms,
            id: id.to_owned(),
            event_type: event_type.to_owned(),
            json,
        };
        self.events.lock().unwrap().push(created.clone());
        created
    }
}

/// `events backfill ARGS` beside the relay's store, with the sandbox's settings and DR's key.
async fn backfill(relay: &TestRelay, dr: &Dr, args: &[&str]) -> Output {
    let mut all = vec!["events", "backfill"];
    all.extend_from_slice(args);
    cli(&all)
        .envs(&sandbox_password_env(&dr.api))
        .env(
            "DRSF__STORAGE__URL",
            format!("sqlite://{}", relay.dir.path().join("relay.db").display()),
        )
        .run()
        .await
}

/// 40 events of 10 orders, a minute apart two days ago (so that DR lists many at once, newest
/// first); DR delivered every other one to the relay.
async fn half_delivered(relay: &TestRelay, dr: &Dr) -> Vec<Created> {
    let start = now_ms() - 2 * DAY_MS + HOUR_MS;
    let types = [
        "order.accepted",
        "order.complete",
        "order.invoice.created",
        "order.cancelled",
    ];
    let mut created = Vec::new();
    for (step, event_type) in types.iter().enumerate() {
        for order in 0..10 {
            let id = format!("evt-{order}-{step}");
            let at = start + (step * 10 + order) as i64 * 60_000;
            created.push(dr.create(event_type, &id, &format!("o-{order}"), at));
        }
    }
    for (n, event) in created.iter().enumerate() {
        if n % 2 == 0 {
            relay.accept(event.json.as_bytes()).await;
        }
    }
    created
}

#[tokio::test]
async fn a_backfill_stores_what_the_store_lacks_once_and_the_relay_delivers_it_in_order() {
    let relay = spawn_stepped_app_with(SalesforceStandIn::start().await, &[]).await;
    apex(ResponseTemplate::new(200)).mount(&relay.sf.server).await;
    let dr = Dr::start().await;
    let created = half_delivered(&relay, &dr).await;

    let dry = backfill(&relay, &dr, &["--since", "2d", "--dry-run", "--output", "json"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let report = dry.json();
    assert_eq!(report["dryRun"], true);
    assert_eq!(
        (
            &report["modes"][0]["listed"],
            &report["modes"][0]["alreadyStored"],
            &report["modes"][0]["stored"]
        ),
        (&40.into(), &20.into(), &20.into()),
        "{report}"
    );
    assert_eq!(
        relay.store.stats().await.unwrap().total(),
        20,
        "a dry run stores nothing"
    );

    let first = backfill(&relay, &dr, &["--since", "2d", "--output", "json"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let report = first.json();
    assert_eq!(report["modes"][0]["stored"], 20, "{report}");
    assert_eq!(report["modes"][0]["alreadyStored"], 20);
    let again = backfill(&relay, &dr, &["--since", "2d", "--output", "json"]).await;
    assert_eq!(again.json()["modes"][0]["stored"], 0, "a second run stores nothing");

    relay.deliver_due().await;
    let delivered = relay.sf.delivered_ids().await;
    assert_eq!(delivered.len(), 40, "each event once: {delivered:?}");
    for order in 0..10 {
        let of_order: Vec<&String> = delivered
            .iter()
            .filter(|id| id.starts_with(&format!("evt-{order}-")))
            .collect();
        let expected: Vec<String> = (0..4).map(|step| format!("evt-{order}-{step}")).collect();
        assert_eq!(
            of_order,
            expected.iter().collect::<Vec<_>>(),
            "order o-{order} in createdTime order"
        );
    }
    // What reached Salesforce for a backfilled event is the JSON DR's API returned, to the byte.
    let backfilled = &created[1];
    let posted = relay
        .sf
        .apex_requests()
        .await
        .into_iter()
        .find(|r| {
            r.body
                .windows(backfilled.id.len() + 2)
                .any(|w| w == format!("\"{}\"", backfilled.id).as_bytes())
        })
        .unwrap();
    assert_eq!(posted.body, backfilled.json.as_bytes());
    assert_eq!(relay.status_of(&backfilled.id).await, Some(EventStatus::Delivered));
}

#[tokio::test]
async fn a_backfilled_event_is_marked_as_such_wherever_it_is_shown() {
    let admin_token = crate::status_page::ADMIN_TOKEN;
    let relay = spawn_stepped_app_with(SalesforceStandIn::start().await, &[("relay.admin_token", admin_token)]).await;
    let dr = Dr::start().await;
    dr.create("order.accepted", "evt-from-dr", "o-1", now_ms() - HOUR_MS);
    relay.accept(&event("order.accepted", "evt-by-webhook", "o-2")).await;
    assert_eq!(backfill(&relay, &dr, &["--since", "3h"]).await.code, 0);
    let storage = format!("sqlite://{}", relay.dir.path().join("relay.db").display());

    let shown = cli(&["events", "show", "evt-from-dr"])
        .env("DRSF__STORAGE__URL", &storage)
        .run()
        .await;
    assert!(shown.stdout.contains("source: backfill"), "{}", shown.stdout);
    let webhook = cli(&["events", "show", "evt-by-webhook", "--output", "json"])
        .env("DRSF__STORAGE__URL", &storage)
        .run()
        .await;
    assert_eq!(webhook.json()["event"]["source"], "webhook");
    let api: Value = relay
        .http
        .get(format!("{}/admin/events/evt-from-dr", relay.address))
        .bearer_auth(admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["event"]["source"], "backfill");
    let listed = cli(&["events", "list"]).env("DRSF__STORAGE__URL", &storage).run().await;
    let row = |id: &str| {
        listed
            .stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(row("evt-from-dr").contains("backfill"), "{}", listed.stdout);
    assert!(row("evt-by-webhook").contains("webhook"), "{}", listed.stdout);
    let visitor = crate::status_page::Visitor::sign_in(&relay).await;
    let (_, list) = visitor.get("/ui/events").await;
    assert_eq!(
        list.matches(">backfilled<").count(),
        1,
        "the one backfilled row is marked: {list}"
    );
    let (_, page) = visitor.get("/ui/events/evt-from-dr").await;
    assert!(
        page.contains("Digital River&#39;s Events API") || page.contains("Digital River's Events API"),
        "{page}"
    );
}

#[tokio::test]
async fn a_backfill_past_drs_thirty_days_is_refused_and_lists_nothing() {
    let relay = spawn_stepped_app_with(SalesforceStandIn::start().await, &[]).await;
    let dr = Dr::start().await;
    let refused = backfill(&relay, &dr, &["--since", "40d"]).await;
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("30 days"),
        "names DR's limit: {}",
        refused.stderr
    );
    assert_eq!(*dr.requests.lock().unwrap(), 0, "nothing asked of DR");
}

/// The DR stand-in itself: newest first, paged, filtered, as the reference says.
#[tokio::test]
async fn the_events_api_stand_in_pages_newest_first_within_the_window_and_types() {
    let dr = Dr::start().await;
    let now = now_ms();
    for n in 0..5 {
        dr.create("order.accepted", &format!("a{n}"), "o", now - (n + 1) * HOUR_MS);
    }
    dr.create("order.complete", "c0", "o", now - 30 * 60_000);
    dr.create("order.accepted", "too-old", "o", now - 31 * DAY_MS);
    let get = |query: String| {
        let url = format!("{}/events?{query}", dr.api.uri());
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let ids = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = get("types=order.accepted&limit=2".into()).await;
    assert_eq!(
        (ids(&first), first["hasMore"].clone()),
        (vec!["a0".into(), "a1".into()], true.into())
    );
    let rest = get("types=order.accepted&limit=100&startingAfter=a1".into()).await;
    assert_eq!(ids(&rest), ["a2", "a3", "a4"], "30 days back, no further");
    let window = format!(
        "createdTime%5Bgte%5D={}&createdTime%5Blt%5D={}&limit=100",
        dr_sf_bridge::digital_river::events_api::iso(now - 3 * HOUR_MS),
        dr_sf_bridge::digital_river::events_api::iso(now - HOUR_MS)
    );
    assert_eq!(ids(&get(window).await), ["a1", "a2"]);
}
