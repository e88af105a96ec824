//! Several relay processes on one PostgreSQL database: each event delivered once, each order's
//! events in order whichever relay received them, nothing acknowledged lost when a relay is
//! SIGKILLed or the database goes away, and idle relays that leave the database alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dr_sf_bridge::store::EventStatus;
use serde_json::Value;
use wiremock::ResponseTemplate;

use crate::pg::{Schema, fresh_schema, server_url};
use crate::pg_proxy::PgProxy;
use crate::relay_helpers::*;
use crate::relay_process::{RelayProcess, free_port};
use crate::salesforce_standin::*;

/// How many events of the schema are pending (waiting or in flight): once none are, no delivery
/// can happen any more, and what Salesforce received is final.
async fn pending(schema: &Schema) -> i64 {
    let client = crate::pg::connect(&schema.url).await.unwrap();
    client
        .query_one("SELECT count(*) FROM events WHERE status = 'pending'", &[])
        .await
        .unwrap()
        .get(0)
}

/// Waits for `condition`, looking every 200 ms (the stand-in's request log is large).
async fn eventually<F, Fut>(what: &str, within: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    poll_until(what, within, Duration::from_millis(200), condition).await
}

/// Posts like DR behind a load balancer: to `relays[preferred]`, and to the next relay when that
/// one does not acknowledge, until one does. Answers whether the preferred one acknowledged.
async fn post_behind_a_balancer(http: &reqwest::Client, relays: &[String], preferred: usize, body: &[u8]) -> bool {
    for attempt in 0.. {
        let address = &relays[(preferred + attempt) % relays.len()];
        let sent = http
            .post(format!("{address}/webhooks/digitalriver"))
            .header("authorization", basic_header())
            .header("DigitalRiver-Signature", signed(body))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .timeout(Duration::from_secs(3))
            .send()
            .await;
        if sent.is_ok_and(|r| r.status().is_success()) {
            return attempt == 0;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unreachable!()
}

/// DR's traffic: `orders` orders of `per_order` events each, the events of an order posted one
/// after the other (each once acknowledged), alternately to each relay; 16 orders at a time.
/// Answers each order's event ids in the order they were acknowledged.
async fn post_orders(relays: &[String], orders: usize, per_order: usize, tag: &str) -> HashMap<String, Vec<String>> {
    let http = reqwest::Client::new();
    let sequences = Arc::new(Mutex::new(HashMap::new()));
    let mut lanes = tokio::task::JoinSet::new();
    for lane in 0..16 {
        let (http, relays, sequences, tag) = (http.clone(), relays.to_vec(), sequences.clone(), tag.to_owned());
        lanes.spawn(async move {
            for order in (lane..orders).step_by(16) {
                let order_id = format!("{tag}-order-{order}");
                for n in 0..per_order {
                    let id = format!("{tag}-{order}-{n}");
                    let body = event("order.accepted", &id, &order_id);
                    post_behind_a_balancer(&http, &relays, (order + n) % relays.len(), &body).await;
                    sequences
                        .lock()
                        .unwrap()
                        .entry(order_id.clone())
                        .or_insert_with(Vec::new)
                        .push(id);
                }
            }
        });
    }
    while let Some(lane) = lanes.join_next().await {
        lane.expect("a posting lane panicked");
    }
    Arc::try_unwrap(sequences).unwrap().into_inner().unwrap()
}

/// Each order's ids in the order Salesforce received them (first receipt of each).
fn per_order(received: &[String], acknowledged: &HashMap<String, Vec<String>>) -> HashMap<String, Vec<String>> {
    let order_of: HashMap<&str, &str> = acknowledged
        .iter()
        .flat_map(|(order, ids)| ids.iter().map(move |id| (id.as_str(), order.as_str())))
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut orders: HashMap<String, Vec<String>> = HashMap::new();
    for id in received {
        if seen.insert(id.clone()) {
            orders
                .entry(order_of[id.as_str()].to_owned())
                .or_default()
                .push(id.clone());
        }
    }
    orders
}

/// Each relay's `salesforce.max_in_flight`.
const MAX_IN_FLIGHT: usize = 8;

async fn relays_on(
    schema_url: &str,
    sf: &SalesforceStandIn,
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> Vec<RelayProcess> {
    let max_in_flight = MAX_IN_FLIGHT.to_string();
    let mut overrides = vec![
        ("storage.url", schema_url),
        ("salesforce.max_in_flight", max_in_flight.as_str()),
    ];
    overrides.extend_from_slice(extra);
    let mut relays = Vec::new();
    for _ in 0..2 {
        relays.push(RelayProcess::start(sf, dir, free_port(), &overrides).await);
    }
    relays
}

async fn setup(test: &str) -> Option<(Schema, SalesforceStandIn, tempfile::TempDir)> {
    let schema = fresh_schema(test).await?;
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    Some((schema, sf, tempfile::tempdir().unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_database_deliver_each_event_once_and_each_order_in_order() {
    let Some((schema, sf, dir)) = setup("two_relays_once_in_order").await else {
        return;
    };
    let relays = relays_on(&schema.url, &sf, dir.path(), &[]).await;
    let addresses: Vec<String> = relays.iter().map(|r| r.address.clone()).collect();

    let acknowledged = post_orders(&addresses, 500, 10, "pair").await;
    let total: usize = acknowledged.values().map(Vec::len).sum();
    assert_eq!(total, 5_000);

    eventually("every event to be delivered", Duration::from_secs(120), || async {
        pending(&schema).await == 0
    })
    .await;
    let received = sf.delivered_ids().await;
    assert_eq!(
        received.len(),
        total,
        "every acknowledged event reached Salesforce, none twice"
    );
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &received {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(
        per_order(&received, &acknowledged),
        acknowledged,
        "each order in the order acknowledged"
    );
    for relay in &relays {
        assert!(
            relay.logs().contains("delivered to Salesforce"),
            "both relays delivered: {}",
            relay.logs()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_posted_to_two_relays_at_once_is_stored_once_and_both_answer_2xx() {
    let Some((schema, sf, dir)) = setup("same_event_twice").await else {
        return;
    };
    let relays = relays_on(&schema.url, &sf, dir.path(), &[]).await;
    let http = reqwest::Client::new();
    for n in 0..50 {
        let body = event("order.accepted", &format!("twin-{n}"), &format!("twin-order-{n}"));
        let posts = relays.iter().map(|relay| {
            http.post(format!("{}/webhooks/digitalriver", relay.address))
                .header("authorization", basic_header())
                .header("DigitalRiver-Signature", signed(&body))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
        });
        for answer in futures_util::future::join_all(posts).await {
            let status = answer.unwrap().status();
            assert!(status.is_success(), "both relays acknowledge: {status}");
        }
    }
    eventually("the 50 events to be delivered", Duration::from_secs(30), || async {
        pending(&schema).await == 0
    })
    .await;
    let client = crate::pg::connect(&schema.url).await.unwrap();
    let stored: i64 = client
        .query_one("SELECT count(*) FROM events WHERE id LIKE 'twin-%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 50, "each twin stored once");
    let received = sf.delivered_ids().await;
    assert_eq!(received.len(), 50, "each twin delivered once: {received:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_sigkilled_mid_stream_loses_nothing_and_repeats_only_what_it_held() {
    let Some(schema) = fresh_schema("sigkill_one_of_two").await else {
        return;
    };
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200).set_delay(Duration::from_millis(15)))
        .mount(&sf.server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    // A short request timeout keeps the lease (3 × timeout + 10 s) short; 2 s, not 1, so that a
    // busy machine does not time out the surviving relay's 15 ms deliveries (each timeout is a
    // legitimate repeat, but not one this test is about).
    let mut relays = relays_on(
        &schema.url,
        &sf,
        dir.path(),
        &[("salesforce.request_timeout_secs", "2")],
    )
    .await;
    let addresses: Vec<String> = relays.iter().map(|r| r.address.clone()).collect();

    let posting = tokio::spawn(async move { post_orders(&addresses, 500, 10, "kill").await });
    eventually(
        "half of the events to be delivered",
        Duration::from_secs(60),
        || async { sf.delivered_ids().await.len() >= 2_500 },
    )
    .await;
    relays[1].child.kill().await.expect("SIGKILL");
    let client = crate::pg::connect(&schema.url).await.unwrap();
    let held: std::collections::HashSet<String> = client
        .query("SELECT id FROM events WHERE lease_until IS NOT NULL", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();

    let acknowledged = posting.await.unwrap();
    let total: usize = acknowledged.values().map(Vec::len).sum();
    assert_eq!(
        total, 5_000,
        "the surviving relay acknowledged what the dead one could not"
    );
    eventually(
        "every acknowledged event to be delivered",
        Duration::from_secs(90),
        || async { pending(&schema).await == 0 },
    )
    .await;
    let received = sf.delivered_ids().await;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &received {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    for ids in acknowledged.values() {
        for id in ids {
            assert!(
                counts.contains_key(id.as_str()),
                "{id} was acknowledged and never delivered"
            );
        }
    }
    let twice: Vec<&str> = counts.iter().filter(|(_, n)| **n > 1).map(|(id, _)| *id).collect();
    assert!(
        twice.iter().all(|id| held.contains(*id)),
        "only events leased at the kill are delivered twice: {twice:?}, leased: {held:?}"
    );
    // The killed relay held at most `max_in_flight` requests in flight and as many answered
    // deliveries whose outcomes waited to be recorded.
    assert!(
        twice.len() <= 2 * MAX_IN_FLIGHT,
        "at most twice the killed relay's max_in_flight: {twice:?}"
    );
    assert_eq!(
        per_order(&received, &acknowledged),
        acknowledged,
        "each order in the order acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_gone_ingest_answers_503_and_the_relay_recovers_by_itself() {
    let Some(schema) = fresh_schema("database_gone").await else {
        return;
    };
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    let proxy = PgProxy::start(upstream_of(&server_url())).await;
    // A password in the URL (the test server trusts loopback and never asks for it) must not show
    // in any message about the outage.
    let mut url = url::Url::parse(&proxy.url_for(&schema.url)).unwrap();
    url.set_password(Some(DATABASE_PASSWORD)).unwrap();
    let url = url.to_string();
    let dir = tempfile::tempdir().unwrap();
    let relay = RelayProcess::start(&sf, dir.path(), free_port(), &[("storage.url", url.as_str())]).await;
    let http = reqwest::Client::new();
    let post = |id: String| {
        let (http, address) = (http.clone(), relay.address.clone());
        async move {
            let body = event("order.accepted", &id, &format!("order-of-{id}"));
            http.post(format!("{address}/webhooks/digitalriver"))
                .header("authorization", basic_header())
                .header("DigitalRiver-Signature", signed(&body))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let mut acknowledged = Vec::new();
    for n in 0..20 {
        let id = format!("before-{n}");
        assert_eq!(post(id.clone()).await.status(), 202);
        acknowledged.push(id);
    }

    proxy.down();
    for n in 0..20 {
        let answer = post(format!("during-{n}")).await;
        assert_eq!(answer.status(), 503, "never 2xx without the database");
        let reason: Value = answer.json().await.unwrap();
        assert!(reason["error"].is_string(), "a JSON reason: {reason}");
    }
    let ready = |expected: u16| {
        let (http, address) = (http.clone(), relay.address.clone());
        async move {
            http.get(format!("{address}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == expected)
        }
    };
    wait_until("/readyz to say not ready", || ready(503)).await;

    proxy.up();
    wait_until("/readyz to recover by itself", || ready(200)).await;
    for n in 0..20 {
        let id = format!("after-{n}");
        assert_eq!(post(id.clone()).await.status(), 202);
        acknowledged.push(id);
    }
    eventually(
        "every acknowledged event to be delivered",
        Duration::from_secs(60),
        || async {
            let received = sf.delivered_ids().await;
            acknowledged.iter().all(|id| received.contains(id))
        },
    )
    .await;
    let received = sf.delivered_ids().await;
    assert!(
        received.iter().all(|id| !id.starts_with("during-")),
        "refused events are not stored"
    );
    let logs = relay.logs();
    assert!(logs.contains("store"), "the outage was logged: {logs}");
    assert!(
        !logs.contains(DATABASE_PASSWORD),
        "the database password leaked: {logs}"
    );
}

const DATABASE_PASSWORD: &str = "Db-Passw0rd-never-shown";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_relays_leave_the_database_alone_and_wake_each_other_on_new_work() {
    let Some(schema) = fresh_schema("idle_relays").await else {
        return;
    };
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    let proxy = PgProxy::start(upstream_of(&server_url())).await;
    let url = proxy.url_for(&schema.url);
    let dir = tempfile::tempdir().unwrap();
    // Polling as rarely as a relay woken by the database may: ten minutes.
    let _relays = relays_on(&url, &sf, dir.path(), &[("delivery.poll_interval_ms", "600000")]).await;

    let window = Duration::from_secs(10);
    let before = proxy.statements();
    let started = Instant::now();
    eventually("a ten-second window", window * 2, || async {
        started.elapsed() >= window
    })
    .await;
    assert!(before > 0, "the proxy sees the relays' statements (their start-up)");
    // A count, not a rate: an idle relay's own timers (the ten-minute poll, the hourly prune) do
    // not fire within the window however long a busy machine stretches it, so what it may send is
    // bounded by a number, not by the time that passed.
    let sent = proxy.statements() - before;
    assert!(
        sent <= 30,
        "two idle relays sent {sent} statements in a ten-second window"
    );

    // An event stored by someone else (here the test, as another relay would) is delivered at once
    // by one of them: only a wake-up, not the ten-minute poll, can do that.
    let other = dr_sf_bridge::store::postgres::PostgresStore::open(&schema.url, 1)
        .await
        .unwrap();
    use dr_sf_bridge::store::Store;
    other
        .insert(dr_sf_bridge::store::NewEvent {
            source: Default::default(),
            trace_parent: None,
            id: dr_sf_bridge::domain::EventId::parse("woken").unwrap(),
            event_type: dr_sf_bridge::domain::EventType::parse("order.accepted").unwrap(),
            live_mode: false,
            order_key: None,
            body: bytes::Bytes::from(event("order.accepted", "woken", "order-woken")),
            status: dr_sf_bridge::store::EventStatus::Pending,
            reason: None,
            received_at_ms: dr_sf_bridge::support::clock::now_ms(),
        })
        .await
        .unwrap();
    wait_until("a relay to deliver the event it was told of", || async {
        sf.delivered_ids().await.contains(&"woken".to_owned())
    })
    .await;
    // Salesforce has it; the relay records the delivery just after.
    let woken = dr_sf_bridge::domain::EventId::parse("woken").unwrap();
    wait_until("the delivery to be recorded", || async {
        let stored = other.get(&woken).await.unwrap();
        stored.is_some_and(|(event, _)| event.status == dr_sf_bridge::store::EventStatus::Delivered)
    })
    .await;

    // The same for a bulk replay by an operations command beside the relays.
    let replayed = other
        .replay_batch(
            dr_sf_bridge::store::EventStatus::Delivered,
            None,
            10,
            dr_sf_bridge::store::ReplayedBy::CommandLine,
            dr_sf_bridge::support::clock::now_ms(),
        )
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    wait_until("a relay to deliver the replayed event", || async {
        sf.delivered_ids().await.iter().filter(|id| *id == "woken").count() == 2
    })
    .await;
}

/// `host:port` of a `postgres://` URL.
fn upstream_of(url: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
}

/// A delivery frees the org's slot when Salesforce answers, not when its outcome is committed:
/// with one slot, and the database holding every outcome back, the next order's event still
/// reaches Salesforce; each outcome is recorded once the database lets go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orgs_slot_is_free_while_an_outcome_waits_for_the_database() {
    let Some(schema) = fresh_schema("slot_free_while_recording").await else {
        return;
    };
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).expect(2).mount(&sf.server).await;
    let relay = spawn_app_with(
        sf,
        &[
            ("storage.url", &schema.url),
            ("salesforce.max_in_flight", "1"),
            ("salesforce.concurrency", "fixed"),
        ],
    )
    .await;
    // Outcomes are held back: each is a row of `attempts`, which this transaction locks.
    let holder = crate::pg::connect(&schema.url).await.unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE attempts IN EXCLUSIVE MODE")
        .await
        .unwrap();

    relay.accept(&event("order.accepted", "s1", "A")).await;
    relay.accept(&event("order.accepted", "s2", "B")).await;
    wait_until("both orders' events to reach Salesforce", || async {
        relay.sf.delivered_ids().await.len() == 2
    })
    .await;
    assert_eq!(pending(&schema).await, 2, "neither outcome is recorded yet");

    holder.batch_execute("COMMIT").await.unwrap();
    relay.wait_for_status("s1", EventStatus::Delivered).await;
    relay.wait_for_status("s2", EventStatus::Delivered).await;
}

/// A delivery that the shutdown timeout cuts short gives its lease back: on a queue several
/// relays share, another sends it again at once instead of after the lease runs out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_cut_short_at_shutdown_gives_its_lease_back() {
    let Some(schema) = fresh_schema("cut_short_lease").await else {
        return;
    };
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200).set_delay(Duration::from_secs(20)))
        .mount(&sf.server)
        .await;
    let relay = spawn_app_with(
        sf,
        &[("storage.url", &schema.url), ("relay.shutdown_timeout_secs", "1")],
    )
    .await;
    relay.accept(&event("order.accepted", "cut-short", "A")).await;
    wait_until("the delivery in flight", || async {
        relay.sf.apex_requests().await.len() == 1
    })
    .await;

    relay.stop().await;
    let client = crate::pg::connect(&schema.url).await.unwrap();
    let lease: Option<i64> = client
        .query_one("SELECT lease_until FROM events WHERE id = 'cut-short'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        lease, None,
        "the lease was released at the shutdown timeout, not left to expire"
    );
}
