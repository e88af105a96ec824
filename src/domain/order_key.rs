/// The key that orders deliveries: events with the same key reach Salesforce in the order the
/// relay received them. It is `data.object.orderId` when present (invoices, credit memos), else
/// `data.object.id` (the order itself).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OrderKey(String);

impl OrderKey {
    /// Reads the key from an event's `data.object`; `None` when neither field is a usable string
    /// or number.
    pub fn from_data_object(object: &serde_json::Value) -> Option<Self> {
        ["orderId", "id"].iter().find_map(|field| match object.get(field) {
            Some(serde_json::Value::String(s)) => Self::from_text(s),
            Some(serde_json::Value::Number(n)) => Self::from_text(&n.to_string()),
            _ => None,
        })
    }

    /// A key from the text of `orderId` or `id` (a number's as JSON writes it); `None` when it is
    /// blank or longer than 255 bytes.
    pub fn from_text(text: &str) -> Option<Self> {
        (!text.trim().is_empty() && text.len() <= 255).then(|| Self(text.to_owned()))
    }

    /// Restores a key read back from the store.
    pub fn from_stored(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

super::text_newtype_fmt!(OrderKey);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn order_id_wins_over_the_object_id() {
        let invoice = json!({"id": "file_1", "orderId": "240001"});
        assert_eq!(OrderKey::from_data_object(&invoice).unwrap().as_str(), "240001");
        let order = json!({"id": "240001"});
        assert_eq!(OrderKey::from_data_object(&order).unwrap().as_str(), "240001");
        assert!(OrderKey::from_data_object(&json!({"id": ""})).is_none());
    }
}
