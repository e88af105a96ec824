/// The key that orders deliveries: events with the same key reach Salesforce in the order the
/// relay received them. It is `data.object.orderId` when present (invoices, credit memos), else
/// `data.object.id` (the order itself).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OrderKey(String);

impl OrderKey {
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
