//! A trace collector that is down must cost ingestion and delivery nothing: the same load (see
//! [`super::side_by_side`]) against relays exporting traces to a collector that takes every batch
//! at once (A) and to an address where nothing listens (B). Every event is traced (sample ratio
//! 1.0); the spans leave in batches from the exporter's own thread, so a collector that refuses
//! them can only drop them, counted in `drsf_trace_export_failures_total`. Relays without traces
//! (C) run alongside, for what tracing itself costs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use super::side_by_side::{ROUNDS, arm};
use super::{Report, Scale};

/// An OTLP/HTTP collector that takes every batch at once; counts the batches.
async fn collector() -> (String, Arc<AtomicUsize>) {
    let batches = Arc::new(AtomicUsize::new(0));
    let counter = batches.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, batches)
}

fn lost_batches(metrics: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("drsf_trace_export_failures_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

pub async fn scenarios(report: &mut Report, scale: &Scale, storage_base: &str, dir: &std::path::Path) {
    let (up, batches) = collector().await;
    let down = format!("http://127.0.0.1:{}", super::child::free_port());
    let fresh = |name: &str| storage_base.replace(".db", &format!("-{name}.db"));
    let rounds = scale.n(ROUNDS, 1);
    let traced = |endpoint: &str| vec![("DRSF__TELEMETRY__OTLP_ENDPOINT", endpoint.to_owned())];
    let (mut taken, mut refused, mut untraced) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        taken.push(arm(scale, dir, &fresh(&format!("a{round}")), &traced(&up)).await);
        refused.push(arm(scale, dir, &fresh(&format!("b{round}")), &traced(&down)).await);
        untraced.push(arm(scale, dir, &fresh(&format!("c{round}")), &[]).await);
    }
    // What tracing every event costs at all, beside no tracing, in the same run: no target (traces
    // are off unless asked for), a figure for whoever turns them on.
    let (cost, cost_data, _) = super::side_by_side::compare(&untraced, &taken);
    report.add(
        "traces_cost",
        "sqlite",
        format!(
            "every event traced, collector up / no traces (medians of {rounds} runs each): {}",
            cost.join(", ")
        ),
        None,
        serde_json::Value::Object(cost_data),
    );
    let (rows, mut data, all_within) = super::side_by_side::compare(&taken, &refused);
    let errors: usize = taken.iter().chain(&refused).map(|a| a.errors).sum();
    let lost: u64 = refused.iter().map(|a| lost_batches(&a.metrics)).sum();
    let lost_with_a_collector: u64 = taken.iter().map(|a| lost_batches(&a.metrics)).sum();
    let delivered_batches = batches.load(Ordering::Relaxed);
    data.insert("rounds".into(), json!(rounds));
    data.insert("batchesTaken".into(), json!(delivered_batches));
    data.insert("batchesLostCollectorDown".into(), json!(lost));
    data.insert("batchesLostCollectorUp".into(), json!(lost_with_a_collector));
    data.insert("errors".into(), json!(errors));
    report.add(
        "traces_collector_down",
        "sqlite",
        format!(
            "collector down / collector up (medians of {rounds} runs each): {}; {delivered_batches} batches taken with it up, {lost} counted lost with it down, {errors} errors",
            rows.join(", ")
        ),
        Some((
            "each ratio within the spread, the lost batches counted",
            all_within && delivered_batches > 0 && lost > 0 && lost_with_a_collector == 0 && errors == 0,
        )),
        serde_json::Value::Object(data),
    );
}
