//! Logging and tracing setup: human-readable lines for a terminal (coloured only when stderr is
//! one), JSON lines for production (`--log-format json`), and — with `telemetry.otlp_endpoint` —
//! spans over OpenTelemetry. Logs go to stderr so that stdout carries only a command's output.
//!
//! One trace per event: the span that received DR's POST (continuing a proxy's `traceparent`),
//! its commit, and every delivery attempt. Attempts happen minutes or days later, on any relay, so
//! the receiving span's W3C `traceparent` is stored with the event ([`trace_parent`]) and each
//! attempt's span is made its child ([`join_trace`]). Spans leave in batches from a thread of the
//! exporter's own: a slow or absent collector drops spans (counted), it never holds a request.

use std::fmt;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Event, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::settings::telemetry::TelemetrySettings;

mod json_line;

/// Whether spans are exported (set once, at start): when not, no trace context is made or stored.
static TRACING: AtomicBool = AtomicBool::new(false);
/// Batches of spans the collector did not take (unreachable, refused, timed out).
static EXPORT_FAILURES: LazyLock<prometheus_client::metrics::counter::Counter> = LazyLock::new(Default::default);

/// Whether this process exports traces.
pub fn traces_enabled() -> bool {
    TRACING.load(Ordering::Relaxed)
}

/// Batches of spans lost because the collector did not take them, since start: the process's one
/// counter, for every metrics registry to show.
pub fn export_failures() -> prometheus_client::metrics::counter::Counter {
    EXPORT_FAILURES.clone()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber once; `default_level` applies unless `RUST_LOG` says otherwise.
/// With `traces`, spans are exported too: keep the returned guard until the process ends (its
/// drop sends what is still queued).
pub fn init(format: LogFormat, default_level: &str, traces: Option<&TelemetrySettings>) -> Option<TraceExport> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = match format {
        // Colour only for a person at a terminal: escape codes in a file or the journal are noise.
        LogFormat::Text => lines
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .event_format(Line)
            .boxed(),
        LogFormat::Json => lines
            .event_format(json_line::JsonLine)
            .fmt_fields(SpanFieldsJson)
            .boxed(),
    };
    let export = traces.and_then(|settings| match TraceExport::start(settings) {
        Ok(export) => Some(export),
        Err(e) => {
            eprintln!("warning: traces are not exported: {e:#}");
            None
        }
    });
    // Only the relay's own spans, at info: library spans would cost every request.
    let spans = export.as_ref().map(|export| {
        tracing_opentelemetry::layer()
            .with_tracer(export.provider.tracer("dr-sf-bridge"))
            .with_filter(tracing_subscriber::filter::Targets::new().with_target("dr_sf_bridge", tracing::Level::INFO))
    });
    let installed = tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(spans)
        .try_init();
    // A second call (tests) keeps the first subscriber.
    if installed.is_ok() && export.is_some() {
        TRACING.store(true, Ordering::Relaxed);
    }
    export
}

/// The span exporter: OTLP/HTTP (protobuf) to `telemetry.otlp_endpoint`, batched.
pub struct TraceExport {
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
}

impl TraceExport {
    fn start(settings: &TelemetrySettings) -> anyhow::Result<Self> {
        // A collector that wants a key (a vendor's) reads it from OTEL_EXPORTER_OTLP_HEADERS, as
        // every OpenTelemetry exporter does: a secret, so never a setting of ours in a file.
        use opentelemetry_otlp::WithExportConfig;
        let endpoint = settings
            .otlp_endpoint
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("telemetry.otlp_endpoint is not set"))?;
        let traces_url = endpoint.join("v1/traces")?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(traces_url.as_str())
            .with_timeout(std::time::Duration::from_secs(5))
            .build()?;
        let instance = settings
            .instance
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| format!("pid-{}", std::process::id()));
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(settings.service_name.clone())
            .with_attributes([
                opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                opentelemetry::KeyValue::new("service.instance.id", instance),
                opentelemetry::KeyValue::new(
                    "drsf.modes",
                    settings.modes.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(","),
                ),
            ])
            .build();
        let sampler = opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
            opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(settings.sample_ratio),
        ));
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(Counted(exporter))
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        Ok(Self { provider })
    }
}

/// Sends what is still queued, within the exporter's timeout.
impl Drop for TraceExport {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("warning: the last spans were not all exported: {e}");
        }
    }
}

/// The OTLP exporter, counting the batches the collector does not take and saying so in the log
/// (the first failure, then every 100th: an absent collector is not a flood of lines).
#[derive(Debug)]
struct Counted(opentelemetry_otlp::SpanExporter);

impl opentelemetry_sdk::trace::SpanExporter for Counted {
    async fn export(&self, batch: Vec<opentelemetry_sdk::trace::SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        let spans = batch.len();
        let result = self.0.export(batch).await;
        if let Err(e) = &result {
            let failures = EXPORT_FAILURES.inc() + 1;
            if failures == 1 || failures.is_multiple_of(100) {
                // Not through `tracing`: a line about exporting must not become a span to export.
                eprintln!(
                    "warning: the trace collector did not take {spans} span(s) ({failures} batch(es) lost so far): {e}"
                );
            }
        }
        result
    }

    fn shutdown_with_timeout(&mut self, timeout: std::time::Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource);
    }
}

/// HTTP headers as the propagator reads them.
struct Headers<'a>(&'a axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` (not yet entered) continue the trace of a W3C `traceparent` header, as a proxy or
/// a load balancer in front of the relay sends it.
pub fn continue_trace(span: &tracing::Span, headers: &axum::http::HeaderMap) {
    if traces_enabled() && headers.contains_key("traceparent") {
        let _ = span.set_parent(TraceContextPropagator::new().extract(&Headers(headers)));
    }
}

/// The W3C `traceparent` of `span`, to store with the event it received; `None` when traces are
/// off or the span is not sampled.
pub fn trace_parent(span: &tracing::Span) -> Option<String> {
    if !traces_enabled() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}

/// A span that only a trace shows (a step inside a request or a delivery, with nothing for the
/// log lines that the enclosing span does not say): built only when traces are exported, since a
/// span costs every event its allocation and its formatted fields.
pub fn trace_only(span: impl FnOnce() -> tracing::Span) -> tracing::Span {
    if traces_enabled() {
        span()
    } else {
        tracing::Span::none()
    }
}

/// Records a field that only the trace reads: one recorded as the span ends, or one that the log
/// line beside it carries as its own field. Skipped when traces are not exported: each record
/// costs the log's layer the field formatted and appended to the span's JSON text, about 5,000
/// instructions (BENCHMARKS.md, "Fields only a trace reads").
pub fn record_for_trace(span: &tracing::Span, field: &str, value: impl tracing::Value) {
    if traces_enabled() {
        span.record(field, value);
    }
}

/// Makes `span` (not yet entered) a child of the stored `traceparent`.
pub fn join_trace(span: &tracing::Span, trace_parent: Option<&str>) {
    if let Some(trace_parent) = trace_parent.filter(|_| traces_enabled()) {
        let carrier = std::collections::HashMap::from([("traceparent".to_owned(), trace_parent.to_owned())]);
        let _ = span.set_parent(TraceContextPropagator::new().extract(&carrier));
    }
}

/// A trace of its own for an event fetched from DR's Events API (no POST began one): a root span
/// marked `drsf.source = "backfill"`, and its `traceparent` to store.
pub fn backfilled_trace(id: &crate::domain::EventId, event_type: &crate::domain::EventType) -> Option<String> {
    if !traces_enabled() {
        return None;
    }
    let span = tracing::info_span!(
        parent: None,
        "backfill_event",
        event_id = id.as_str(),
        event_type = event_type.as_str(),
        drsf.source = "backfill"
    );
    trace_parent(&span)
}

/// One text line: time, level, the message and its fields, then the fields of the spans it
/// happened in (`event_id=… mode=test`) — without the spans' names (`deliver{…}: `) in front of
/// the message, which made every line start with code's words instead of what happened.
struct Line;

impl<S, N> FormatEvent<S, N> for Line
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        SystemTime.format_time(&mut writer)?;
        write!(writer, " {:>5} ", event.metadata().level())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        for span in ctx.event_scope().into_iter().flat_map(|scope| scope.from_root()) {
            if let Some(fields) = span.extensions().get::<FormattedFields<N>>()
                && !fields.is_empty()
            {
                write!(writer, " {fields}")?;
            }
        }
        writeln!(writer)
    }
}

/// A span's fields for the JSON lines, as one JSON object, with fields recorded later appended to
/// it. tracing-subscriber's own `JsonFields` parses the object and writes it again at every
/// `record`, which the ingest profile showed as 6% of the relay's time (three records per request,
/// three per delivery). A field recorded again replaces its value (the rare case: the object is
/// read and written again), so that the line's writer can copy the object as it is.
struct SpanFieldsJson;

impl<'w> FormatFields<'w> for SpanFieldsJson {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> fmt::Result {
        writer.write_str(&json_line::object_of(fields)?)
    }

    fn add_fields(&self, current: &'w mut FormattedFields<Self>, fields: &tracing::span::Record<'_>) -> fmt::Result {
        // `object_of` writes the object exactly, `{}` when no field has a value.
        let more = json_line::object_of(fields)?;
        if more.len() <= 2 {
            return Ok(());
        }
        let existing = current.fields.trim_end();
        if existing.len() <= 2 {
            current.fields = more;
            return Ok(());
        }
        // `"name":` cannot occur inside a string value: there its quotes are escaped.
        let mut again = false;
        fields.record(&mut |field: &tracing::field::Field, _: &dyn fmt::Debug| {
            let name = field.name();
            again |= existing
                .match_indices(name)
                .any(|(at, _)| existing[..at].ends_with('"') && existing[at + name.len()..].starts_with("\":"));
        });
        if again {
            return replace_fields(current, &more);
        }
        current.fields.truncate(existing.len() - 1);
        current.fields.push(',');
        current.fields.push_str(&more[1..]);
        Ok(())
    }
}

/// Merges `more` into a span's fields where one of its keys is already there: the new value wins.
fn replace_fields<N>(current: &mut FormattedFields<N>, more: &str) -> fmt::Result {
    type Object = serde_json::Map<String, serde_json::Value>;
    let mut object: Object = serde_json::from_str(&current.fields).map_err(|_| fmt::Error)?;
    object.extend(serde_json::from_str::<Object>(more).map_err(|_| fmt::Error)?);
    current.fields = serde_json::to_string(&object).map_err(|_| fmt::Error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `log` writes as the relay's JSON lines.
    fn json_lines(log: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(json_line::JsonLine)
            .fmt_fields(SpanFieldsJson)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_json_line_carries_its_spans_fields_recorded_at_its_start_and_later() {
        let text = json_lines(|| {
            let span = tracing::info_span!(
                "deliver",
                mode = "test",
                event_id = tracing::field::Empty,
                outcome = tracing::field::Empty,
                status = tracing::field::Empty,
                counted = tracing::field::Empty,
                reason = tracing::field::Empty,
                share = tracing::field::Empty,
            );
            let _entered = span.enter();
            span.record("event_id", "evt-\"1\"");
            span.record("counted", false);
            span.record("reason", tracing::field::display("refused: \"quoted\"\nsecond line"));
            span.record("share", f64::NAN);
            span.record("outcome", "delivered");
            span.record("status", 200);
            span.record("outcome", "dead");
            tracing::info!(attempt = 2, "delivered to Salesforce");
            let empty = tracing::info_span!("receive_event", event_id = tracing::field::Empty);
            let _inner = empty.enter();
            empty.record("event_id", "evt-2");
            tracing::info!("stored");
        });
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
        assert_eq!(lines.len(), 2, "{text}");
        let span = &lines[0]["span"];
        assert_eq!(span["name"], "deliver", "{text}");
        assert_eq!(span["mode"], "test");
        assert_eq!(span["event_id"], "evt-\"1\"");
        assert_eq!(span["status"], 200);
        assert_eq!(span["outcome"], "dead", "the last value recorded wins");
        assert_eq!(span["counted"], false, "{text}");
        assert_eq!(span["reason"], "refused: \"quoted\"\nsecond line", "{text}");
        assert_eq!(span["share"], serde_json::Value::Null, "NaN has no JSON form: {text}");
        assert_eq!(
            text.lines().next().unwrap().matches("\"outcome\"").count(),
            1,
            "a field recorded again is written once: {text}"
        );
        assert_eq!(lines[0]["attempt"], 2);
        assert_eq!(lines[0]["message"], "delivered to Salesforce");
        assert_eq!(lines[0]["level"], "INFO");
        assert!(
            lines[0]["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{text}"
        );
        assert_eq!(lines[0]["target"], module_path!());
        assert_eq!(lines[1]["span"]["event_id"], "evt-2", "{text}");
        assert_eq!(lines[1]["span"]["name"], "receive_event", "the innermost span: {text}");
    }

    #[test]
    fn a_json_line_is_valid_json_whatever_its_fields_hold() {
        let error = std::io::Error::other("refused: \"quoted\"\nsecond line");
        let text = json_lines(|| {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                ratio = f64::NAN,
                share = 0.25,
                negative = -3,
                up = true,
                name = "zoë \\ \u{1}",
                debug = ?Some("x"),
                "a message with \"quotes\" and a\ttab"
            );
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(text.trim_end()).expect(&text);
        assert_eq!(line["message"], "a message with \"quotes\" and a\ttab");
        assert_eq!(line["error"], "refused: \"quoted\"\nsecond line");
        assert_eq!(line["ratio"], serde_json::Value::Null, "NaN has no JSON form");
        assert_eq!(line["share"], 0.25);
        assert_eq!(line["negative"], -3);
        assert_eq!(line["up"], true);
        assert_eq!(line["name"], "zoë \\ \u{1}");
        assert_eq!(line["debug"], "Some(\"x\")");
        assert_eq!(line["level"], "WARN");
        assert!(line.get("span").is_none(), "outside any span, no span: {text}");
        let keys: Vec<&str> = text.split("\":").map(|k| k.rsplit('"').next().unwrap()).collect();
        assert_eq!(&keys[..3], ["timestamp", "level", "message"], "{text}");
    }

    #[test]
    fn a_text_line_says_what_happened_first_and_keeps_its_spans_fields_without_their_names() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .event_format(Line)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("deliver", mode = "test", event_id = "evt-1");
            let _entered = span.enter();
            tracing::info!(status = 200, "delivered to Salesforce");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line = text.lines().next().expect("one line");
        let (_, rest) = line.split_once("  INFO ").expect(line);
        assert_eq!(
            rest,
            "delivered to Salesforce status=200 mode=\"test\" event_id=\"evt-1\""
        );
    }
}
