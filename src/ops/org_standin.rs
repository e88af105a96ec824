//! A Salesforce org on loopback — the token endpoint, the DR package's Apex REST resource and
//! `/limits`, answering as the real ones do (`../shared/reference/salesforce.md`) — for `demo`,
//! the pacing tests and the benchmark alike.
//!
//! What the org does is set in [`Org`]'s fields, which the caller may change while it runs: a
//! latency, a capacity past which Apex requests are refused with `ConcurrentPerOrgLongTxn`, an
//! outage (503), a spent daily allocation (`TotalRequests`), the API usage it reports in
//! `Sforce-Limit-Info` and at `/limits`, and the demo's script (a maintenance page for the first
//! delivery, an expired session at the fourth). Like the DR package, it can answer 200 for an
//! event and keep it as a `DR_Failed_Event__c` record instead (chosen orders), and serves those
//! records to SOQL, in pages. Tests that check the requests themselves (headers,
//! bodies, `.expect(n)`) use wiremock mocks instead; this org is for behaviour over many events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::salesforce::TOKEN_PATH;

/// The Apex REST resource of the DR package.
pub const APEX_PATH: &str = "/services/apexrest/digitalriverv3/webhooks/";
/// Where the org reports its limits.
pub const LIMITS_PATH: &str = "/services/data/v60.0/limits";
/// In the demo's script, the delivery (counting from 1) that meets the expired session.
const EXPIRES_AT_DELIVERY: usize = 4;

/// How the org behaves, and what it saw.
#[derive(Default)]
pub struct Org {
    /// How long each Apex request takes, in microseconds.
    pub latency_us: AtomicU64,
    /// Apex requests beyond this many at once are refused with `ConcurrentPerOrgLongTxn` (0: no
    /// limit).
    pub capacity: AtomicUsize,
    /// Every Apex request is answered 503 (an outage).
    pub down: AtomicBool,
    /// The day's allocation is spent: every Apex request is refused with `TotalRequests`.
    pub spent: AtomicBool,
    /// The daily API usage reported with every answer and at `/limits` (`max` 0: not reported).
    pub used: AtomicU64,
    pub max: AtomicU64,
    /// The demo's script: a maintenance page for the first delivery, an expired session at the
    /// fourth.
    pub demo_script: AtomicBool,
    /// Apex requests being answered now.
    pub in_flight: AtomicUsize,
    /// Apex requests answered 200.
    pub delivered: AtomicUsize,
    /// Apex requests refused for a limit (concurrency or the daily allocation).
    pub refused: AtomicUsize,
    /// Every Apex request, answered or not.
    pub requests: AtomicUsize,
    pub token_grants: AtomicUsize,
    pub limits_asked: AtomicUsize,
    /// Tokens numbered up to this one no longer work.
    expired_through: AtomicUsize,
    /// Orders whose events the org refuses as invalid (400), with how many more times: the demo's
    /// dead event, accepted once it is sent again.
    pub refuse_orders: Mutex<HashMap<String, usize>>,
    /// Orders whose events the DR package answers 200 for and keeps as a failure record, with
    /// the record's reason.
    pub fail_in_package: Mutex<HashMap<String, String>>,
    /// The org's `DR_Failed_Event__c` records, oldest first.
    pub failure_records: Mutex<Vec<FailureRecord>>,
    /// Records per page of a query answer (0: Salesforce's 2,000).
    pub page_size: AtomicUsize,
    /// The integration user cannot see the object: queries answer `INVALID_TYPE`.
    pub failures_hidden: AtomicBool,
    /// Query requests (first pages and `nextRecordsUrl` pages), each one API request.
    pub queries: AtomicUsize,
}

/// A `DR_Failed_Event__c` record of the stand-in.
#[derive(Debug, Clone)]
pub struct FailureRecord {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub reason: String,
    pub processed: bool,
    pub created_ms: i64,
    pub modified_ms: i64,
}

impl Org {
    pub fn delivered(&self) -> usize {
        self.delivered.load(Ordering::SeqCst)
    }

    /// From now on the package keeps `order`'s events as failure records (and answers 200).
    pub fn fail_in_package(&self, order: &str, reason: &str) {
        self.fail_in_package
            .lock()
            .expect("not poisoned")
            .insert(order.to_owned(), reason.to_owned());
    }

    /// The admin fixed the cause and the package processed the record of `event_id`.
    pub fn mark_processed(&self, event_id: &str) {
        let mut records = self.failure_records.lock().expect("not poisoned");
        for record in records.iter_mut().filter(|r| r.event_id == event_id) {
            record.processed = true;
            record.modified_ms = crate::support::clock::now_ms();
        }
    }

    /// A record of an event the relay never sent (DR posted straight to the org).
    pub fn add_failure_record(&self, event_id: &str, event_type: &str, reason: &str) {
        let mut records = self.failure_records.lock().expect("not poisoned");
        let now = crate::support::clock::now_ms();
        let id = format!("a0X{:012}", records.len() + 1);
        records.push(FailureRecord {
            id,
            event_id: event_id.to_owned(),
            event_type: event_type.to_owned(),
            reason: reason.to_owned(),
            processed: false,
            created_ms: now,
            modified_ms: now,
        });
    }

    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }

    /// Whether the org refuses this event as invalid now (and counts the refusal down).
    fn refuses(&self, body: &[u8]) -> bool {
        let mut refused = self.refuse_orders.lock().expect("not poisoned");
        // An org that refuses nothing reads no body: the benchmark's org runs on the relay's
        // cores, and a real org's parsing is not the relay's cost.
        if refused.is_empty() {
            return false;
        }
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(body) else {
            return false;
        };
        match refused.get_mut(order_of(&event)) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        }
    }

    /// The package's catch-all: keeps the event as a failure record when its order is one it
    /// fails; answers whether it did.
    fn kept_as_failure(&self, body: &[u8]) -> bool {
        let failing = self.fail_in_package.lock().expect("not poisoned");
        if failing.is_empty() {
            return false;
        }
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(body) else {
            return false;
        };
        let Some(reason) = failing.get(order_of(&event)) else {
            return false;
        };
        self.add_failure_record(
            event["id"].as_str().unwrap_or_default(),
            event["type"].as_str().unwrap_or_default(),
            reason,
        );
        true
    }

    fn usage_header(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let max = self.max.load(Ordering::SeqCst);
        if max > 0 {
            let value = format!("api-usage={}/{max}", self.used.load(Ordering::SeqCst));
            headers.insert("sforce-limit-info", HeaderValue::from_str(&value).expect("digits"));
        }
        headers
    }

    fn limit_error(&self, message: &str) -> Response {
        self.refused.fetch_add(1, Ordering::SeqCst);
        let body = json!([{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}]);
        (StatusCode::FORBIDDEN, self.usage_header(), Json(body)).into_response()
    }
}

/// The DR order an event is about (`data.object.id`), empty when it has none.
fn order_of(event: &serde_json::Value) -> &str {
    event["data"]["object"]["id"].as_str().unwrap_or_default()
}

/// A running org; dropping it stops the server.
pub struct OrgStandIn {
    pub url: String,
    pub org: Arc<Org>,
    server: tokio::task::JoinHandle<()>,
}

impl OrgStandIn {
    /// Serves `org` on a loopback port of its own.
    pub async fn start(org: Arc<Org>) -> std::io::Result<Self> {
        let router = Router::new()
            .route(TOKEN_PATH, post(token))
            .route(APEX_PATH, post(apex))
            .route(LIMITS_PATH, get(limits))
            .route(QUERY_PATH, get(query))
            .route(&format!("{QUERY_PATH}/{{locator}}"), get(query_page))
            .with_state(org.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { url, org, server })
    }

    /// The org of `demo`: its script on, no limits.
    pub async fn demo() -> std::io::Result<Self> {
        let org = Org::default();
        org.demo_script.store(true, Ordering::SeqCst);
        Self::start(Arc::new(org)).await
    }

    /// Serves `org` until the runtime ends; answers its base URL.
    pub async fn detached(org: Arc<Org>) -> std::io::Result<String> {
        let stand_in = Self::start(org).await?;
        let url = stand_in.url.clone();
        std::mem::forget(stand_in);
        Ok(url)
    }

    /// Grants the token endpoint gave.
    pub fn grants(&self) -> usize {
        self.org.token_grants.load(Ordering::SeqCst)
    }
}

impl Drop for OrgStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn token(State(org): State<Arc<Org>>) -> Response {
    let n = org.token_grants.fetch_add(1, Ordering::SeqCst) + 1;
    Json(json!({
        "access_token": format!("00DDEMO!demo-session-{n}"),
        "instance_url": "https://demo.my.salesforce.com",
        "id": "https://test.salesforce.com/id/00DDEMO/005DEMO",
        "token_type": "Bearer",
        "issued_at": crate::support::clock::now_ms().to_string(),
    }))
    .into_response()
}

async fn apex(State(org): State<Arc<Org>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let request = org.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let token: usize = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if org.demo_script.load(Ordering::SeqCst) {
        if request == 1 {
            return maintenance();
        }
        if request == EXPIRES_AT_DELIVERY {
            org.expired_through.fetch_max(token, Ordering::SeqCst);
        }
    }
    if token <= org.expired_through.load(Ordering::SeqCst) {
        let body = json!([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]);
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    if org.down.load(Ordering::SeqCst) {
        return maintenance();
    }
    if org.spent.load(Ordering::SeqCst) {
        return org.limit_error("TotalRequests Limit exceeded.");
    }
    if org.refuses(&body) {
        let said = json!([{
            "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "Insert failed: the order's currency is not enabled in this org (a stand-in refusal: the order is accepted when sent again)"
        }]);
        return (StatusCode::BAD_REQUEST, Json(said)).into_response();
    }
    let now = org.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let capacity = org.capacity.load(Ordering::SeqCst);
    if capacity > 0 && now > capacity {
        org.in_flight.fetch_sub(1, Ordering::SeqCst);
        return org.limit_error("ConcurrentPerOrgLongTxn Limit exceeded");
    }
    let latency = org.latency_us.load(Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(Duration::from_micros(latency)).await;
    }
    org.in_flight.fetch_sub(1, Ordering::SeqCst);
    org.kept_as_failure(&body);
    org.delivered.fetch_add(1, Ordering::SeqCst);
    org.used.fetch_add(1, Ordering::SeqCst);
    (StatusCode::OK, org.usage_header(), "").into_response()
}

fn maintenance() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("content-type", "text/html")],
        "<html><body>Salesforce is down for maintenance.</body></html>",
    )
        .into_response()
}

async fn limits(State(org): State<Arc<Org>>) -> Response {
    org.limits_asked.fetch_add(1, Ordering::SeqCst);
    let (used, max) = (org.used.load(Ordering::SeqCst), org.max.load(Ordering::SeqCst));
    let body = json!({"DailyApiRequests": {"Max": max, "Remaining": max.saturating_sub(used)}});
    (StatusCode::OK, org.usage_header(), Json(body)).into_response()
}

/// Where the org runs SOQL.
pub const QUERY_PATH: &str = crate::salesforce::failed_events::QUERY_PATH;

#[derive(serde::Deserialize)]
struct Soql {
    q: String,
}

/// A query of the failure records: `… WHERE LastModifiedDate >= T …` or `… LIMIT 1`, answered in
/// pages as Salesforce does.
async fn query(State(org): State<Arc<Org>>, Query(soql): Query<Soql>) -> Response {
    if soql.q.contains("LIMIT 1") {
        return records_answer(&org, i64::MIN, 0, Some(1));
    }
    let since = soql
        .q
        .split("LastModifiedDate >= ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(crate::salesforce::failed_events::parse_salesforce_time);
    match since {
        Some(since) => records_answer(&org, since, 0, None),
        None => {
            let body = json!([{"message": "unexpected query", "errorCode": "MALFORMED_QUERY"}]);
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
    }
}

async fn query_page(State(org): State<Arc<Org>>, Path(locator): Path<String>) -> Response {
    let parsed = locator
        .strip_prefix("01gSTANDIN")
        .and_then(|rest| rest.split_once('_'))
        .and_then(|(since, offset)| Some((since.parse().ok()?, offset.parse().ok()?)));
    match parsed {
        Some((since, offset)) => records_answer(&org, since, offset, None),
        None => {
            let body = json!([{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}]);
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
    }
}

fn records_answer(org: &Org, since_ms: i64, offset: usize, limit: Option<usize>) -> Response {
    org.queries.fetch_add(1, Ordering::SeqCst);
    org.used.fetch_add(1, Ordering::SeqCst);
    if org.failures_hidden.load(Ordering::SeqCst) {
        let body = json!([{
            "message": "\nSELECT Id FROM digitalriverv3__DR_Failed_Event__c\n ^\nERROR at Row:1:Column:16\nsObject type 'digitalriverv3__DR_Failed_Event__c' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name.",
            "errorCode": "INVALID_TYPE"
        }]);
        return (StatusCode::BAD_REQUEST, org.usage_header(), Json(body)).into_response();
    }
    let time = |ms: i64| {
        let text = crate::digital_river::events_api::iso(ms);
        format!("{}+0000", text.trim_end_matches('Z'))
    };
    let mut matching: Vec<FailureRecord> = org
        .failure_records
        .lock()
        .expect("not poisoned")
        .iter()
        .filter(|r| r.modified_ms / 1000 * 1000 >= since_ms)
        .cloned()
        .collect();
    matching.sort_by_key(|r| r.modified_ms);
    let total = limit.map_or(matching.len(), |l| matching.len().min(l));
    let page_size = match org.page_size.load(Ordering::SeqCst) {
        0 => 2000,
        n => n,
    };
    let end = (offset + page_size).min(total);
    let records: Vec<_> = matching[offset.min(end)..end]
        .iter()
        .map(|r| {
            json!({
                "attributes": {"type": "digitalriverv3__DR_Failed_Event__c", "url": format!("/services/data/v60.0/sobjects/digitalriverv3__DR_Failed_Event__c/{}", r.id)},
                "Id": r.id,
                "CreatedDate": time(r.created_ms),
                "LastModifiedDate": time(r.modified_ms),
                "digitalriverv3__Event_Id__c": r.event_id,
                "digitalriverv3__Event_Type__c": r.event_type,
                "digitalriverv3__Event_Capture_Reason__c": r.reason,
                "digitalriverv3__Processed__c": r.processed,
            })
        })
        .collect();
    let done = end >= total;
    let mut body = json!({"totalSize": total, "done": done, "records": records});
    if !done {
        body["nextRecordsUrl"] = json!(format!("{QUERY_PATH}/01gSTANDIN{since_ms}_{end}"));
    }
    (StatusCode::OK, org.usage_header(), Json(body)).into_response()
}
