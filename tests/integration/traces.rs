//! Traces over OpenTelemetry, received by a real OTLP/HTTP receiver that decodes the protobuf
//! export requests with the OpenTelemetry definitions (`opentelemetry-proto`): one event that
//! Salesforce refuses once (503) and then takes (200), across a restart of the relay between the
//! two attempts, is one trace — the proxy's, continued — with no secret and no body in it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use wiremock::ResponseTemplate;

use crate::helpers::*;
use crate::relay_helpers::*;
use crate::relay_process::*;
use crate::salesforce_standin::*;

/// One span as the receiver got it.
#[derive(Debug, Clone)]
struct Received {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    start_ns: u64,
    end_ns: u64,
    attributes: HashMap<String, String>,
    resource: HashMap<String, String>,
}

fn text_of(attributes: &[KeyValue]) -> HashMap<String, String> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// An OTLP/HTTP receiver on a free loopback port: `POST /v1/traces` with a protobuf body.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Received>>>,
    /// Every attribute and event text, as received, for the secrets audit.
    everything: Arc<Mutex<String>>,
}

impl Collector {
    async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let everything = Arc::new(Mutex::new(String::new()));
        let (into_spans, into_everything) = (spans.clone(), everything.clone());
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| {
                let (spans, everything) = (into_spans.clone(), into_everything.clone());
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export request");
                    everything.lock().unwrap().push_str(&format!("{request:?}"));
                    for resource_spans in request.resource_spans {
                        let resource = text_of(&resource_spans.resource.map(|r| r.attributes).unwrap_or_default());
                        for scope in resource_spans.scope_spans {
                            for span in scope.spans {
                                spans.lock().unwrap().push(Received {
                                    trace_id: hex::encode(&span.trace_id),
                                    span_id: hex::encode(&span.span_id),
                                    parent_span_id: hex::encode(&span.parent_span_id),
                                    name: span.name.clone(),
                                    start_ns: span.start_time_unix_nano,
                                    end_ns: span.end_time_unix_nano,
                                    attributes: text_of(&span.attributes),
                                    resource: resource.clone(),
                                });
                            }
                        }
                    }
                    ([("content-type", "application/x-protobuf")], Vec::<u8>::new())
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, spans, everything }
    }

    /// The trace `trace_id` as a tree, a line per span: when it started after the first, how long
    /// it took, its name, the process that made it and its attributes (the README's example).
    fn render(&self, trace_id: &str) -> String {
        let mut spans: Vec<Received> = self
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect();
        spans.sort_by_key(|s| s.start_ns);
        let first = spans.first().map_or(0, |s| s.start_ns);
        fn lines(spans: &[Received], parent: &str, depth: usize, first: u64, out: &mut String) {
            for span in spans.iter().filter(|s| s.parent_span_id == parent) {
                let mut attributes: Vec<String> = span
                    .attributes
                    .iter()
                    .filter(|(k, _)| {
                        !k.starts_with("code.")
                            && !k.starts_with("thread.")
                            && *k != "target"
                            && *k != "busy_ns"
                            && *k != "idle_ns"
                    })
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                attributes.sort();
                let line = format!(
                    "{:>9.3} s {:>9.2} ms  {}{} [{}] {}",
                    (span.start_ns - first) as f64 / 1e9,
                    (span.end_ns - span.start_ns) as f64 / 1e6,
                    "  ".repeat(depth),
                    span.name,
                    span.resource["service.instance.id"],
                    attributes.join(" ")
                );
                out.push_str(line.trim_end());
                out.push('\n');
                lines(spans, &span.span_id, depth + 1, first, out);
            }
        }
        let mut out = String::new();
        let roots: Vec<String> = spans
            .iter()
            .filter(|s| !spans.iter().any(|p| p.span_id == s.parent_span_id))
            .map(|s| s.parent_span_id.clone())
            .collect();
        for root in roots.iter().take(1) {
            lines(&spans, root, 0, first, &mut out);
        }
        out
    }

    fn named(&self, name: &str) -> Vec<Received> {
        let spans = self.spans.lock().unwrap();
        spans.iter().filter(|s| s.name == name).cloned().collect()
    }
}

/// The trace a proxy in front of the relay started (W3C Trace Context).
const PROXY_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PROXY_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn one_event_is_one_trace_from_drs_post_to_salesforces_answer_across_a_restart() {
    let collector = Collector::start().await;
    let sf = SalesforceStandIn::start().await;
    let refusing = apex(sf_error(503, "SERVER_UNAVAILABLE", "try later"))
        .expect(1..)
        .mount_as_scoped(&sf.server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let traced = |instance: &'static str| {
        [
            ("telemetry.otlp_endpoint", collector.url.as_str()),
            ("telemetry.instance", instance),
            ("delivery.retry_schedule", "0s,2s,2s,2s"),
        ]
    };
    let mut first = RelayProcess::start(&sf, dir.path(), port, &traced("relay-a")).await;

    let body = event("order.accepted", "evt-traced", "240010330336");
    let answer = reqwest::Client::new()
        .post(format!("{}/webhooks/digitalriver", first.address))
        .header("authorization", basic_header())
        .header("DigitalRiver-Signature", signed(&body))
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{PROXY_TRACE}-{PROXY_SPAN}-01"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    wait_until("Salesforce refused the first attempt", || async {
        !sf.apex_requests().await.is_empty()
    })
    .await;
    assert!(first.terminate(Duration::from_secs(30)).await.success());
    let refused = sf.apex_requests().await.len();
    drop(refusing);
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;

    let mut second = RelayProcess::start(&sf, dir.path(), port, &traced("relay-b")).await;
    wait_until("the restarted relay delivered it", || async {
        sf.apex_requests().await.len() > refused
    })
    .await;
    assert!(
        second.terminate(Duration::from_secs(30)).await.success(),
        "{}",
        second.logs()
    );

    // The ingress span continues the proxy's trace, and the commit is its child.
    let received = collector.named("receive_event");
    assert_eq!(received.len(), 1, "{received:#?}");
    let ingress = &received[0];
    assert_eq!(ingress.trace_id, PROXY_TRACE);
    assert_eq!(ingress.parent_span_id, PROXY_SPAN);
    assert_eq!(ingress.attributes["event_id"], "evt-traced");
    assert_eq!(ingress.attributes["event_type"], "order.accepted");
    assert_eq!(ingress.attributes["http.response.status_code"], "202");
    assert_eq!(ingress.resource["service.instance.id"], "relay-a");
    assert_eq!(ingress.resource["service.name"], "dr-sf-bridge");
    assert_eq!(ingress.resource["drsf.modes"], "test");
    assert_eq!(ingress.resource["service.version"], env!("CARGO_PKG_VERSION"));
    let commits = collector.named("store_commit");
    assert_eq!(commits.len(), 1);
    assert_eq!(commits[0].parent_span_id, ingress.span_id);

    // Every attempt joins it, whichever process made it: refused (503) until the restart, then
    // delivered (200) by the second relay.
    let attempts = collector.named("deliver");
    assert!(attempts.len() >= 2, "{attempts:#?}");
    for attempt in &attempts {
        assert_eq!(attempt.trace_id, PROXY_TRACE, "{attempt:#?}");
        assert_eq!(attempt.parent_span_id, ingress.span_id, "a child of the ingress span");
        assert_eq!(attempt.attributes["event_id"], "evt-traced");
    }
    let (last, refused) = attempts.split_last().unwrap();
    for attempt in refused {
        assert_eq!(attempt.attributes["http.response.status_code"], "503");
        assert_eq!(attempt.attributes["outcome"], "retry");
        assert_eq!(attempt.attributes["counted"], "true");
        assert_eq!(attempt.resource["service.instance.id"], "relay-a");
    }
    assert_eq!(last.attributes["http.response.status_code"], "200");
    assert_eq!(last.attributes["outcome"], "delivered");
    assert_eq!(last.resource["service.instance.id"], "relay-b", "after the restart");

    // The outcome of each attempt is its child; the last one says delivered.
    let outcomes = collector.named("record_outcome");
    assert_eq!(outcomes.len(), attempts.len());
    let final_outcome = outcomes
        .iter()
        .find(|o| o.parent_span_id == last.span_id)
        .expect("the last outcome");
    assert_eq!(final_outcome.attributes["outcome"], "delivered");
    assert!(outcomes.iter().all(|o| o.trace_id == PROXY_TRACE));

    // The README's example of a trace, written when asked (as the screenshots are).
    let rendered = collector.render(PROXY_TRACE);
    assert!(
        rendered.contains("receive_event [relay-a]") && rendered.contains("deliver [relay-b]"),
        "{rendered}"
    );
    if std::env::var("DRSF_UPDATE_SCREENSHOTS").is_ok() {
        let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/trace-example.txt");
        std::fs::write(example, &rendered).unwrap();
    }

    // Nothing secret and no part of the body in any exported attribute, event or resource.
    let everything = collector.everything.lock().unwrap().clone();
    for secret in SECRETS.iter().chain(&[SIGNING_SECRET, TOKEN_KEY]) {
        assert!(!everything.contains(secret), "{secret} was exported");
    }
    for part_of_the_body in ["jane.doe@example.com", "10380 Bren Road W", "Minnetonka"] {
        assert!(
            !everything.contains(part_of_the_body),
            "the body was exported: {part_of_the_body}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_collector_costs_no_event_and_is_counted() {
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    let dir = tempfile::tempdir().unwrap();
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let mut relay = RelayProcess::start(
        &sf,
        dir.path(),
        free_port(),
        &[("telemetry.otlp_endpoint", nobody.as_str())],
    )
    .await;
    let http = reqwest::Client::new();
    for n in 0..20 {
        let body = event("order.accepted", &format!("evt-untraced-{n}"), &format!("o-{n}"));
        let answer = post_like_dr(&http, &relay.address, body).await.unwrap();
        assert_eq!(answer.status(), 202);
    }
    wait_until("every event delivered", || async {
        sf.delivered_ids().await.len() == 20
    })
    .await;
    wait_until("the lost batches counted", || async {
        relay
            .metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix("drsf_trace_export_failures_total "))
            .is_some_and(|n| n.parse::<u64>().unwrap() >= 1)
    })
    .await;
    assert!(relay.terminate(Duration::from_secs(30)).await.success());
    assert!(
        relay.logs().contains("the trace collector did not take"),
        "{}",
        relay.logs()
    );
}

#[tokio::test]
async fn an_event_fetched_from_drs_events_api_starts_a_trace_of_its_own_marked_backfilled() {
    let collector = Collector::start().await;
    let dr = crate::backfill::Dr::start().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    dr.create("order.accepted", "evt-never-posted", "240010339999", now - 120_000);
    let sf = SalesforceStandIn::start().await;
    apex(ResponseTemplate::new(200)).mount(&sf.server).await;
    let dir = tempfile::tempdir().unwrap();
    let uri = dr.api.uri();
    let mut relay = RelayProcess::start(
        &sf,
        dir.path(),
        free_port(),
        &[
            ("telemetry.otlp_endpoint", collector.url.as_str()),
            ("digital_river.api_base_url", uri.as_str()),
            ("digital_river.api_key", API_KEY),
            ("reconcile.settle_secs", "0"),
            // The first sweep of a store only sets its cursor; the next looks an overlap back.
            ("reconcile.interval_secs", "1"),
            ("register.target", "relay"),
            ("relay.public_url", "https://relay.acme.test"),
        ],
    )
    .await;
    wait_until("the backfilled event delivered", || async {
        sf.delivered_ids().await.contains(&"evt-never-posted".to_owned())
    })
    .await;
    assert!(
        relay.terminate(Duration::from_secs(30)).await.success(),
        "{}",
        relay.logs()
    );

    let roots = collector.named("backfill_event");
    assert_eq!(roots.len(), 1, "{roots:#?}");
    let root = &roots[0];
    assert_eq!(root.parent_span_id, "", "a trace of its own");
    assert_eq!(root.attributes["drsf.source"], "backfill");
    assert_eq!(root.attributes["event_id"], "evt-never-posted");
    let attempts = collector.named("deliver");
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    assert_eq!(attempts[0].trace_id, root.trace_id);
    assert_eq!(attempts[0].parent_span_id, root.span_id);
    assert_eq!(attempts[0].attributes["outcome"], "delivered");
}
