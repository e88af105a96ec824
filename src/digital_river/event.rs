//! The envelope of a DR event: the few fields the relay needs, read from the raw bytes.
//!
//! The body is kept and forwarded byte for byte; only `id`, `type`, `liveMode` and `data.object`
//! are read, so fields DR adds or renames (`digitalriverVersion` / `digitalRiverVersion`,
//! `webhookIds`, ...) pass through untouched.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::domain::{EventId, EventType, OrderKey};

#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: EventId,
    pub event_type: EventType,
    pub live_mode: bool,
    /// `None` when `data.object` has neither `orderId` nor `id`.
    pub order_key: Option<OrderKey>,
}

/// Why an event body is not usable; `field` names the JSON field for the 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EnvelopeError {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> EnvelopeError {
    EnvelopeError {
        field,
        message: message.into(),
    }
}

/// The longest order id the relay orders deliveries by.
const MAX_ORDER_ID_LEN: usize = 255;

/// The keys the relay reads, each allowed once: serde refuses a repeated field of a struct.
/// (A JSON object with `id` twice is read by many parsers as the last one and by others as the
/// first: the relay would store one event and Salesforce could see another.)
#[derive(Deserialize)]
#[allow(dead_code)]
struct ReadKeys {
    id: Option<IgnoredAny>,
    #[serde(rename = "type")]
    event_type: Option<IgnoredAny>,
    #[serde(rename = "liveMode")]
    live_mode: Option<IgnoredAny>,
    data: Option<DataKeys>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct DataKeys {
    object: Option<ObjectKeys>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct ObjectKeys {
    id: Option<IgnoredAny>,
    #[serde(rename = "orderId")]
    order_id: Option<IgnoredAny>,
}

fn reject_repeated_keys(body: &[u8]) -> Result<(), EnvelopeError> {
    serde_json::from_slice::<ReadKeys>(body).map(|_| ()).map_err(|e| {
        let text = e.to_string();
        let key = text.split('`').nth(1).unwrap_or("a key");
        invalid(
            "body",
            format!("`{key}` appears more than once; an event must be unambiguous"),
        )
    })
}

impl Envelope {
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| invalid("body", format!("not valid JSON ({e})")))?;
        let object = value
            .as_object()
            .ok_or_else(|| invalid("body", "must be a JSON object"))?;
        let id = match object.get("id") {
            Some(Value::String(s)) => EventId::parse(s).map_err(|m| invalid("id", m))?,
            Some(_) => return Err(invalid("id", "must be a string")),
            None => return Err(invalid("id", "is missing")),
        };
        let event_type = match object.get("type") {
            Some(Value::String(s)) => EventType::parse(s).map_err(|m| invalid("type", m))?,
            Some(_) => return Err(invalid("type", "must be a string")),
            None => return Err(invalid("type", "is missing")),
        };
        let data = match object.get("data") {
            Some(Value::Object(data)) => data,
            Some(_) => return Err(invalid("data", "must be an object")),
            None => return Err(invalid("data", "is missing")),
        };
        let data_object = match data.get("object") {
            Some(o @ Value::Object(_)) => o,
            Some(_) => return Err(invalid("data.object", "must be an object")),
            None => return Err(invalid("data.object", "is missing")),
        };
        let live_mode = match object.get("liveMode") {
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(invalid("liveMode", "must be true or false")),
            None => return Err(invalid("liveMode", "is missing")),
        };
        for field in ["orderId", "id"] {
            if let Some(Value::String(s)) = data_object.get(field)
                && s.len() > MAX_ORDER_ID_LEN
            {
                let name = if field == "id" {
                    "data.object.id"
                } else {
                    "data.object.orderId"
                };
                return Err(invalid(name, format!("is longer than {MAX_ORDER_ID_LEN} characters")));
            }
        }
        reject_repeated_keys(body)?;
        Ok(Self {
            id,
            event_type,
            live_mode,
            order_key: OrderKey::from_data_object(data_object),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fixture_parses_with_its_order_key() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/events");
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("the fixtures at {dir}: {e}"));
        let mut parsed = 0;
        for entry in entries {
            parsed += 1;
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let envelope = Envelope::parse(&bytes).unwrap();
            assert!(envelope.order_key.is_some(), "{:?}", envelope.id);
            assert!(EventType::SUPPORTED.contains(&envelope.event_type.as_str()));
        }
        assert_eq!(parsed, EventType::SUPPORTED.len(), "one fixture per event type");
    }

    #[test]
    fn a_repeated_key_the_relay_reads_is_refused() {
        let cases = [
            r#"{"id":"e1","id":"e2","type":"order.accepted","data":{"object":{"id":"o1"}},"liveMode":false}"#,
            r#"{"id":"e1","type":"order.accepted","type":"order.complete","data":{"object":{"id":"o1"}},"liveMode":false}"#,
            r#"{"id":"e1","type":"order.accepted","data":{"object":{"id":"o1","id":"o2"}},"liveMode":false}"#,
            r#"{"id":"e1","type":"order.accepted","data":{"object":{"id":"o1"}},"liveMode":false,"liveMode":true}"#,
        ];
        for body in cases {
            let error = Envelope::parse(body.as_bytes()).unwrap_err();
            assert!(error.message.contains("more than once"), "{body}: {error}");
        }
        let other_keys_repeat =
            r#"{"id":"e1","type":"order.accepted","x":1,"x":2,"data":{"object":{"id":"o1"}},"liveMode":false}"#;
        assert!(
            Envelope::parse(other_keys_repeat.as_bytes()).is_ok(),
            "keys the relay does not read pass through"
        );
    }

    #[test]
    fn an_overlong_order_id_is_named_as_too_long_not_missing() {
        let body = format!(
            r#"{{"id":"e1","type":"order.accepted","data":{{"object":{{"id":"{}"}}}},"liveMode":false}}"#,
            "o".repeat(300)
        );
        let error = Envelope::parse(body.as_bytes()).unwrap_err();
        assert_eq!(error.field, "data.object.id");
        assert!(error.message.contains("longer than 255"), "{error}");
    }

    #[test]
    fn each_missing_field_is_named() {
        let cases = [
            (
                r#"{"type":"order.accepted","data":{"object":{}},"liveMode":false}"#,
                "id",
            ),
            (r#"{"id":"e1","data":{"object":{}},"liveMode":false}"#, "type"),
            (r#"{"id":"e1","type":"order.accepted","liveMode":false}"#, "data"),
            (
                r#"{"id":"e1","type":"order.accepted","data":{},"liveMode":false}"#,
                "data.object",
            ),
            (
                r#"{"id":"e1","type":"order.accepted","data":{"object":{}}}"#,
                "liveMode",
            ),
            (r#"{"id":"e1""#, "body"),
            (r#"[1]"#, "body"),
        ];
        for (body, field) in cases {
            assert_eq!(Envelope::parse(body.as_bytes()).unwrap_err().field, field, "{body}");
        }
    }
}
