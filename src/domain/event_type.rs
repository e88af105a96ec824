use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Digital River event type such as `order.accepted`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(String);

impl EventType {
    /// The eight order events the DR Salesforce app handles: the default subscription.
    pub const SUPPORTED: [&'static str; 8] = [
        "order.accepted",
        "order.cancelled",
        "order.complete",
        "order.pending_payment",
        "order.review_opened",
        "order.blocked",
        "order.credit_memo.created",
        "order.invoice.created",
    ];

    /// Accepts dot-separated lowercase words (`order.credit_memo.created`), 1 to 100 characters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let valid = !raw.is_empty()
            && raw.len() <= 100
            && raw.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            });
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "`{raw}` is not a Digital River event type (expected dot-separated lowercase words such as `order.accepted`)"
            ))
        }
    }

    /// The default subscription, in the order DR's documentation lists it.
    pub fn supported() -> Vec<EventType> {
        Self::SUPPORTED.iter().map(|t| Self((*t).to_owned())).collect()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventType({})", self.0)
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eight_supported_types_parse() {
        for t in EventType::SUPPORTED {
            assert_eq!(EventType::parse(t).unwrap().as_str(), t);
        }
    }

    #[test]
    fn malformed_types_are_refused() {
        for bad in [
            "",
            "Order.Accepted",
            "order..accepted",
            "order.accepted ",
            ".order",
            "order/accepted",
        ] {
            assert!(EventType::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
