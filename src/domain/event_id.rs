/// The `id` of a Digital River event: the key the relay deduplicates on.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EventId(String);

impl EventId {
    /// Accepts 1 to 255 printable ASCII characters without spaces (DR sends UUIDs).
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > 255 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be 1 to 255 printable characters without spaces".to_owned());
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

super::text_newtype_fmt!(EventId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_parses_and_blank_or_spaced_ids_do_not() {
        assert!(EventId::parse("e5bf7399-49ba-4ea6-a217-65e8efcaee86").is_ok());
        assert!(EventId::parse("").is_err());
        assert!(EventId::parse("a b").is_err());
        assert!(EventId::parse(&"x".repeat(256)).is_err());
    }
}
