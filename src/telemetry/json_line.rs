//! The JSON log line (`--log-format json`), written in one pass into one buffer.
//!
//! tracing-subscriber's JSON format reads the current span's fields back from their JSON text into
//! a `serde_json::Value` and serializes them again for every line, and writes through an adaptor
//! that checks each of a line's ~200 small writes as UTF-8: together about a third of what the
//! `info` level costs a delivery (BENCHMARKS.md, "Instructions per event"). Here the span's fields,
//! kept as JSON text by [`SpanFieldsJson`](super::SpanFieldsJson) with each key once, are copied
//! as they are. The line's shape is tracing-subscriber's (`flatten_event`, `with_current_span`):
//! `{"timestamp", "level", "message", the event's fields…, "target", "span": {"name", …}}`.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

pub(super) struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut time = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        let mut line = Vec::with_capacity(512);
        line.extend_from_slice(b"{\"timestamp\":");
        push_str(&mut line, &time);
        line.extend_from_slice(b",\"level\":\"");
        line.extend_from_slice(event.metadata().level().as_str().as_bytes());
        line.push(b'"');
        event.record(&mut EventFields { line: &mut line });
        line.extend_from_slice(b",\"target\":");
        push_str(&mut line, event.metadata().target());
        let current = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = current {
            line.extend_from_slice(b",\"span\":{\"name\":");
            push_str(&mut line, span.name());
            if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                let object = fields.fields.trim();
                if let Some(inner) = object.strip_prefix('{').and_then(|o| o.strip_suffix('}'))
                    && !inner.trim().is_empty()
                {
                    line.push(b',');
                    line.extend_from_slice(inner.as_bytes());
                }
            }
            line.push(b'}');
        }
        line.extend_from_slice(b"}\n");
        writer.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
    }
}

/// A span's fields as one JSON object, `{"name":value,…}` in the order they were given, written
/// as the line's own fields are: tracing-subscriber's `JsonVisitor` builds a map of
/// `serde_json::Value`s first and writes it through a UTF-8-checking adaptor, about 4,700
/// instructions for a span's few fields (BENCHMARKS.md, "Fields only a trace reads").
pub(super) fn object_of(fields: impl tracing_subscriber::field::RecordFields) -> Result<String, fmt::Error> {
    let mut object = Vec::with_capacity(128);
    fields.record(&mut EventFields { line: &mut object });
    match object.first_mut() {
        Some(first) => *first = b'{',
        None => object.push(b'{'),
    }
    object.push(b'}');
    String::from_utf8(object).map_err(|_| fmt::Error)
}

/// Appends `text` as a JSON string.
fn push_str(line: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(line, text).expect("a Vec takes every write");
}

/// An event's or a span's fields, each as `,"name":value`, in the order they were given.
struct EventFields<'a> {
    line: &'a mut Vec<u8>,
}

impl EventFields<'_> {
    fn key(&mut self, field: &Field) {
        self.line.push(b',');
        push_str(self.line, field.name());
        self.line.push(b':');
    }

    fn raw(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.key(field);
        std::io::Write::write_fmt(self.line, value).expect("a Vec takes every write");
    }
}

impl Visit for EventFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_str(self.line, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.raw(field, format_args!("{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: null, as serde_json writes them.
        if value.is_finite() {
            self.raw(field, format_args!("{value}"));
        } else {
            self.raw(field, format_args!("null"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.key(field);
        push_str(self.line, &text);
    }
}
