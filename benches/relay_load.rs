//! Load benchmark of the relay on this machine: the real relay (durable commits) on loopback, a
//! fast local Salesforce stand-in, and a DR-like client posting signed events — on SQLite, then on
//! PostgreSQL (the server `DRSF_TEST_DATABASE_URL` names, default the local one, in a schema of
//! its own; skipped, saying so, when there is none).
//!
//! Run with `cargo bench --bench relay_load`. For each engine it measures, and checks against the
//! targets:
//! 1. events acknowledged per second at concurrency 64 (target ≥ 5,000/s);
//! 2. acknowledgement latency at a steady 1,000 events/s (target p99 < 20 ms);
//! 3. events delivered end to end to Salesforce per second (target ≥ 2,000/s).
//!
//! Counts and durations are bounded; everything stays on 127.0.0.1 and stops by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use dr_sf_bridge::relay::Application;
use dr_sf_bridge::settings::{self, LoadOptions, Purpose};
use tokio::sync::oneshot;

const BASIC_USER: &str = "dr";
const BASIC_PASSWORD: &str = "bench-basic-password";
const SIGNING_SECRET: &str = "whsec_bench";

struct Stand {
    url: String,
    delivered: Arc<AtomicUsize>,
}

/// A Salesforce that grants tokens and accepts every event at once.
async fn salesforce() -> Stand {
    let delivered = Arc::new(AtomicUsize::new(0));
    let counter = delivered.clone();
    let app = axum::Router::new()
        .route(
            "/services/oauth2/token",
            axum::routing::post(|| async {
                axum::Json(
                    serde_json::json!({"access_token": "00Dbench!token", "token_type": "Bearer",
                    "instance_url": "http://127.0.0.1", "issued_at": "1700000000000"}),
                )
            }),
        )
        .route(
            "/services/apexrest/digitalriverv3/webhooks/",
            axum::routing::post(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::Relaxed);
                    "ok"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Stand { url, delivered }
}

fn body(id: &str, order: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id, "type": "order.accepted", "liveMode": false, "createdTime": "2026-11-23T08:00:00Z",
        "data": {"object": {"id": format!("order-{order}"), "state": "accepted", "totalAmount": 42.5,
                 "items": [{"skuId": "sku-1", "quantity": 1, "amount": 42.5}]}},
        "digitalriverVersion": "2021-12-13"
    }))
    .unwrap()
}

struct Client {
    http: reqwest::Client,
    url: String,
    auth: String,
}

impl Client {
    async fn post(&self, id: &str, order: usize) -> Duration {
        let payload = body(id, order);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let signature = dr_sf_bridge::digital_river::signature::sign(SIGNING_SECRET, now, &payload);
        let started = Instant::now();
        let response = self
            .http
            .post(&self.url)
            .header("authorization", &self.auth)
            .header("DigitalRiver-Signature", signature)
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .await
            .expect("the relay answers");
        let took = started.elapsed();
        assert_eq!(response.status(), 202, "event {id}");
        took
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn closed_loop(client: &Arc<Client>, prefix: &str, count: usize, concurrency: usize, orders: usize) -> Duration {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut lanes = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, next, prefix) = (client.clone(), next.clone(), prefix.to_owned());
        lanes.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return;
                }
                client.post(&format!("{prefix}-{i}"), i % orders).await;
            }
        });
    }
    while lanes.join_next().await.is_some() {}
    started.elapsed()
}

async fn wait_delivered(stand: &Stand, target: usize, limit: Duration) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    while stand.delivered.load(Ordering::Relaxed) < target {
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Some(Instant::now())
}

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        dr_sf_bridge::telemetry::init(dr_sf_bridge::telemetry::LogFormat::Text, "warn");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut met = run("SQLite", format!("sqlite://{}", dir.path().join("bench.db").display())).await;
    let server = std::env::var("DRSF_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    match tokio_postgres::connect(&server, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            let schema = format!("bench_{}", std::process::id());
            client.batch_execute(&format!("CREATE SCHEMA {schema}")).await.unwrap();
            let separator = if server.contains('?') { '&' } else { '?' };
            met &= run(
                "PostgreSQL",
                format!("{server}{separator}options=-csearch_path%3D{schema}"),
            )
            .await;
            client
                .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                .await
                .unwrap();
        }
        Err(e) => println!("\nPostgreSQL: skipped, no server at {server} ({e})"),
    }
    println!("targets {}", if met { "met" } else { "NOT met" });
}

/// The three measures on one engine; answers whether its targets were met.
async fn run(engine: &str, storage_url: String) -> bool {
    println!("\n{engine}");
    let stand = salesforce().await;
    let overrides: Vec<(String, String)> = [
        ("relay.listen", "127.0.0.1:0".to_owned()),
        ("storage.url", storage_url),
        ("salesforce.my_domain_url", stand.url.clone()),
        ("salesforce.token_url", format!("{}/services/oauth2/token", stand.url)),
        ("salesforce.client_id", "bench".to_owned()),
        ("salesforce.client_secret", "bench-secret".to_owned()),
        ("salesforce.username", "bench@example.com".to_owned()),
        ("salesforce.password", "bench-password".to_owned()),
        ("relay.basic_username", BASIC_USER.to_owned()),
        ("relay.basic_password", BASIC_PASSWORD.to_owned()),
        ("digital_river.signing_secrets", SIGNING_SECRET.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let options = LoadOptions {
        config_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/config").into()),
        overrides,
        ..LoadOptions::default()
    };
    let settings = settings::load(&options, Purpose::Relay).expect("bench settings");
    let app = Application::build(settings).await.expect("relay starts");
    let url = format!("http://127.0.0.1:{}/webhooks/digitalriver", app.port());
    let (stop, stopped) = oneshot::channel::<()>();
    let relay = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{BASIC_USER}:{BASIC_PASSWORD}"))
    );
    let client = Arc::new(Client {
        http: reqwest::Client::builder().pool_max_idle_per_host(128).build().unwrap(),
        url,
        auth,
    });

    // Warm-up: connections, token, SQLite pages.
    closed_loop(&client, "warm", 2_000, 64, 500).await;
    wait_delivered(&stand, 2_000, Duration::from_secs(60))
        .await
        .expect("warm-up delivered");

    // 1. Acknowledged throughput at concurrency 64.
    let n = 30_000;
    let took = closed_loop(&client, "burst", n, 64, 3_000).await;
    let ack_rate = n as f64 / took.as_secs_f64();
    println!(
        "1. acknowledged: {n} events at concurrency 64 in {:.2} s = {ack_rate:.0} events/s (target >= 5000)",
        took.as_secs_f64()
    );
    wait_delivered(&stand, 2_000 + n, Duration::from_secs(120))
        .await
        .expect("burst delivered");

    // 2. Latency at a steady 1,000 events/s for 10 s.
    let rate = 1_000;
    let seconds = 10;
    let mut latencies = Vec::with_capacity(rate * seconds);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate as u64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..rate * seconds {
        tick.tick().await;
        let client = client.clone();
        sends.spawn(async move { client.post(&format!("steady-{i}"), i % 1_000).await });
    }
    while let Some(latency) = sends.join_next().await {
        latencies.push(latency.unwrap());
    }
    latencies.sort();
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    println!(
        "2. at {rate} events/s for {seconds} s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 < 20 ms)",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
    let before = 2_000 + n + rate * seconds;
    wait_delivered(&stand, before, Duration::from_secs(120))
        .await
        .expect("steady load delivered");

    // 3. End to end: 20,000 events over 2,000 orders, from the first post to the last delivery.
    let m = 20_000;
    let started = Instant::now();
    closed_loop(&client, "e2e", m, 64, 2_000).await;
    let done = wait_delivered(&stand, before + m, Duration::from_secs(120))
        .await
        .expect("end-to-end delivered");
    let e2e_rate = m as f64 / (done - started).as_secs_f64();
    println!(
        "3. end to end: {m} events delivered to Salesforce in {:.2} s = {e2e_rate:.0} events/s (target >= 2000)",
        (done - started).as_secs_f64()
    );

    let _ = stop.send(());
    relay.await.unwrap().unwrap();
    ack_rate >= 5_000.0 && p99 < Duration::from_millis(20) && e2e_rate >= 2_000.0
}
