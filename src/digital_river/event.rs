//! The envelope of a DR event: the few fields the relay needs, read from the raw bytes.
//!
//! The body is kept and forwarded byte for byte; only `id`, `type`, `liveMode` and `data.object`
//! are read, so fields DR adds or renames (`digitalriverVersion` / `digitalRiverVersion`,
//! `webhookIds`, ...) pass through untouched.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

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

/// The keys the relay reads, read in one pass over the bytes, strings borrowed where they hold no
/// escape. Each key is allowed once: serde refuses a repeated field of a struct. (A JSON object
/// with `id` twice is read by many parsers as the last one and by others as the first: the relay
/// would store one event and Salesforce could see another.) Every other key is skipped unread.
#[derive(Deserialize)]
struct ReadKeys<'a> {
    #[serde(default, borrow)]
    id: Scalar<'a>,
    #[serde(rename = "type", default, borrow)]
    event_type: Scalar<'a>,
    #[serde(rename = "liveMode", default, borrow)]
    live_mode: Scalar<'a>,
    #[serde(default, borrow)]
    data: Node<DataKeys<'a>>,
}

#[derive(Deserialize)]
struct DataKeys<'a> {
    #[serde(default, borrow)]
    object: Node<ObjectKeys<'a>>,
}

#[derive(Deserialize)]
struct ObjectKeys<'a> {
    #[serde(default, borrow)]
    id: Scalar<'a>,
    #[serde(rename = "orderId", default, borrow)]
    order_id: Scalar<'a>,
}

/// A JSON value where the envelope wants a string, a number or a boolean: anything else is only
/// noted as such (and skipped), so that the error can name the field.
#[derive(Default)]
enum Scalar<'a> {
    #[default]
    Missing,
    Text(Cow<'a, str>),
    Number(serde_json::Number),
    Bool(bool),
    Other,
}

/// A JSON value where the envelope wants an object.
#[derive(Default)]
enum Node<T> {
    #[default]
    Missing,
    Object(T),
    NotObject,
}

fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Text(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Number(v.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(serde_json::Number::from_f64(v).map_or(Scalar::Other, Scalar::Number))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|()| Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                skip_map(map).map(|()| Scalar::Other)
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Node<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for NodeVisitor<T> {
            type Value = Node<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Node::Object)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                skip_seq(seq).map(|()| Node::NotObject)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Node::NotObject)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Node::NotObject)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Node::NotObject)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Node::NotObject)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Node::NotObject)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Node::NotObject)
            }
        }
        deserializer.deserialize_any(NodeVisitor(std::marker::PhantomData))
    }
}

/// The text of a field that must be a string.
fn text<'s>(value: &'s Scalar, field: &'static str) -> Result<&'s str, EnvelopeError> {
    match value {
        Scalar::Text(s) => Ok(s),
        Scalar::Missing => Err(invalid(field, "is missing")),
        _ => Err(invalid(field, "must be a string")),
    }
}

/// What `serde_json` refused: a key the relay reads given twice, or bytes that are not JSON.
fn unreadable(e: serde_json::Error) -> EnvelopeError {
    if e.classify() == serde_json::error::Category::Data {
        let text = e.to_string();
        let key = text.split('`').nth(1).unwrap_or("a key");
        return invalid(
            "body",
            format!("`{key}` appears more than once; an event must be unambiguous"),
        );
    }
    invalid("body", format!("not valid JSON ({e})"))
}

impl Envelope {
    pub fn parse(body: &[u8]) -> Result<Self, EnvelopeError> {
        let keys = match serde_json::from_slice::<Node<ReadKeys>>(body).map_err(unreadable)? {
            Node::Object(keys) => keys,
            Node::Missing | Node::NotObject => return Err(invalid("body", "must be a JSON object")),
        };
        let id = EventId::parse(text(&keys.id, "id")?).map_err(|m| invalid("id", m))?;
        let event_type = EventType::parse(text(&keys.event_type, "type")?).map_err(|m| invalid("type", m))?;
        let data = match keys.data {
            Node::Object(data) => data,
            Node::NotObject => return Err(invalid("data", "must be an object")),
            Node::Missing => return Err(invalid("data", "is missing")),
        };
        let object = match data.object {
            Node::Object(object) => object,
            Node::NotObject => return Err(invalid("data.object", "must be an object")),
            Node::Missing => return Err(invalid("data.object", "is missing")),
        };
        let live_mode = match keys.live_mode {
            Scalar::Bool(b) => b,
            Scalar::Missing => return Err(invalid("liveMode", "is missing")),
            _ => return Err(invalid("liveMode", "must be true or false")),
        };
        for (value, name) in [
            (&object.order_id, "data.object.orderId"),
            (&object.id, "data.object.id"),
        ] {
            if let Scalar::Text(s) = value
                && s.len() > MAX_ORDER_ID_LEN
            {
                return Err(invalid(name, format!("is longer than {MAX_ORDER_ID_LEN} characters")));
            }
        }
        let order_key = [&object.order_id, &object.id]
            .into_iter()
            .find_map(|value| match value {
                Scalar::Text(s) => OrderKey::from_text(s),
                Scalar::Number(n) => OrderKey::from_text(&n.to_string()),
                _ => None,
            });
        Ok(Self {
            id,
            event_type,
            live_mode,
            order_key,
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
    fn a_wrong_kind_of_value_is_named_with_its_field() {
        let cases = [
            (
                r#"{"id":null,"type":"order.accepted","data":{"object":{}},"liveMode":false}"#,
                "id",
            ),
            (
                r#"{"id":7,"type":"order.accepted","data":{"object":{}},"liveMode":false}"#,
                "id",
            ),
            (
                r#"{"id":"e1","type":["order.accepted"],"data":{"object":{}},"liveMode":false}"#,
                "type",
            ),
            (
                r#"{"id":"e1","type":"order.accepted","data":"x","liveMode":false}"#,
                "data",
            ),
            (
                r#"{"id":"e1","type":"order.accepted","data":{"object":[1]},"liveMode":false}"#,
                "data.object",
            ),
            (
                r#"{"id":"e1","type":"order.accepted","data":{"object":{}},"liveMode":"no"}"#,
                "liveMode",
            ),
            (r#"["e1","order.accepted",{"object":{}},false]"#, "body"),
            (r#""e1""#, "body"),
        ];
        for (body, field) in cases {
            let error = Envelope::parse(body.as_bytes()).unwrap_err();
            assert_eq!(error.field, field, "{body}: {error}");
            assert!(!error.message.contains("more than once"), "{body}: {error}");
        }
    }

    #[test]
    fn the_order_key_is_the_order_id_when_there_is_one_else_the_object_id() {
        let parse = |object: &str| {
            let body = format!(
                r#"{{"id":"e1","type":"order.invoice.created","data":{{"object":{object}}},"liveMode":false}}"#
            );
            Envelope::parse(body.as_bytes())
                .unwrap()
                .order_key
                .map(|k| k.as_str().to_owned())
        };
        assert_eq!(
            parse(r#"{"id":"file_1","orderId":"240001"}"#).as_deref(),
            Some("240001")
        );
        assert_eq!(
            parse(r#"{"orderId":"240001","id":"file_1"}"#).as_deref(),
            Some("240001")
        );
        assert_eq!(parse(r#"{"id":"240001"}"#).as_deref(), Some("240001"));
        assert_eq!(parse(r#"{"id":""}"#), None);
        assert_eq!(parse(r#"{"id":true,"orderId":null}"#), None);
    }

    #[test]
    fn escaped_strings_and_numeric_order_ids_are_read_as_json_means_them() {
        let body = r#"{"id":"e\u0031","type":"order.\u0061ccepted","data":{"object":{"id":240001,"x":{"y":[1,2]}}},"liveMode":true}"#;
        let envelope = Envelope::parse(body.as_bytes()).unwrap();
        assert_eq!(envelope.id.as_str(), "e1");
        assert_eq!(envelope.event_type.as_str(), "order.accepted");
        assert!(envelope.live_mode);
        assert_eq!(envelope.order_key.unwrap().as_str(), "240001");
        let invoice = r#"{"id":"e1","type":"order.invoice.created","data":{"object":{"id":"file_1","orderId":"  "}},"liveMode":false}"#;
        let envelope = Envelope::parse(invoice.as_bytes()).unwrap();
        assert_eq!(
            envelope.order_key.unwrap().as_str(),
            "file_1",
            "a blank orderId falls back to the id"
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
