//! Realistic Digital River events, one per order event type (the shared fixtures, compiled in),
//! for `demo` and `trigger`: each use gets a fresh event id, and the order id it is given.

use serde_json::Value;

use super::OpsError;
use crate::domain::EventType;

/// One sample per [`EventType::SUPPORTED`], in its order (a test holds them to that, and to the
/// shared fixtures they are copies of).
const SAMPLES: [&str; EventType::SUPPORTED.len()] = [
    include_str!("samples/order.accepted.json"),
    include_str!("samples/order.cancelled.json"),
    include_str!("samples/order.complete.json"),
    include_str!("samples/order.pending_payment.json"),
    include_str!("samples/order.review_opened.json"),
    include_str!("samples/order.blocked.json"),
    include_str!("samples/order.credit_memo.created.json"),
    include_str!("samples/order.invoice.created.json"),
];

/// The event types there is a sample of.
pub fn types() -> impl Iterator<Item = &'static str> {
    EventType::SUPPORTED.into_iter()
}

fn sample(event_type: &str) -> Option<&'static str> {
    let index = EventType::SUPPORTED.iter().position(|t| *t == event_type)?;
    Some(SAMPLES[index])
}

/// A sample event of `event_type` with a fresh id and, when given, the order id `order`.
pub fn fresh(event_type: &EventType, order: Option<&str>) -> Result<Vec<u8>, OpsError> {
    let text = sample(event_type.as_str()).ok_or_else(|| {
        OpsError::Refused(format!(
            "there is no sample of `{event_type}`; samples: {}",
            types().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let mut event: Value = serde_json::from_str(text).expect("the samples are JSON");
    event["id"] = Value::String(random_id());
    if let Some(order) = order {
        let object = &mut event["data"]["object"];
        let field = if object.get("orderId").is_some() {
            "orderId"
        } else {
            "id"
        };
        object[field] = Value::String(order.to_owned());
    }
    Ok(serde_json::to_vec_pretty(&event).expect("a JSON value serializes"))
}

/// An id shaped like DR's (a UUID).
pub fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digital_river::Envelope;

    #[test]
    fn every_supported_type_has_a_fresh_sample_with_the_given_order() {
        for event_type in EventType::supported() {
            let a = Envelope::parse(&fresh(&event_type, Some("ord-1")).unwrap()).unwrap();
            let b = Envelope::parse(&fresh(&event_type, None).unwrap()).unwrap();
            assert_eq!(a.event_type, event_type);
            assert_ne!(a.id, b.id, "fresh ids");
            assert_eq!(a.order_key.unwrap().as_str(), "ord-1");
        }
        assert!(fresh(&EventType::parse("refund.pending").unwrap(), None).is_err());
    }

    #[test]
    fn the_shipped_samples_are_the_shared_fixtures_of_their_types() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/events");
        for (event_type, shipped) in EventType::SUPPORTED.iter().zip(SAMPLES) {
            let path = fixtures.join(format!("{event_type}.json"));
            let fixture = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("the shared fixture {} must exist: {e}", path.display()));
            assert_eq!(
                shipped, fixture,
                "src/ops/samples/{event_type}.json differs from its fixture"
            );
            let parsed: serde_json::Value = serde_json::from_str(shipped).unwrap();
            assert_eq!(parsed["type"], *event_type, "the sample in {event_type}'s place");
        }
    }
}
