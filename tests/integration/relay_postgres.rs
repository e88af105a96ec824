//! Several relay processes on one PostgreSQL database: each event delivered once, each order's
//! events in order whichever relay received them, nothing acknowledged lost when a relay is
//! SIGKILLed or the database goes away, and idle relays that leave the database alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use wiremock::ResponseTemplate;

use crate::pg::{Schema, fresh_schema, server_url};
use crate::pg_proxy::PgProxy;
use crate::relay_helpers::*;
use crate::relay_process::{RelayProcess, free_port};
use crate::salesforce_standin::*;

/// The ids Salesforce received, in the order it received them.
async fn received_ids(sf: &SalesforceStandIn) -> Vec<String> {
    sf.apex_requests()
        .await
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

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

/// Polls `condition` every 200 ms (the stand-in's request log is large) until `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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

async fn relays_on(
    schema_url: &str,
    sf: &SalesforceStandIn,
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> Vec<RelayProcess> {
    let mut overrides = vec![("storage.url", schema_url), ("salesforce.max_in_flight", "8")];
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
    let received = received_ids(&sf).await;
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
    let received = received_ids(&sf).await;
    assert_eq!(received.len(), 50, "each twin delivered once: {received:?}");
}
