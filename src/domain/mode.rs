//! Digital River's mode. Every merchant runs in two: test (`sk_test_` keys, `liveMode: false`)
//! and live. A test order must never reach a production org, nor a live order a sandbox, so the
//! mode travels with every stored event and picks the Salesforce target that may receive it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Test, Mode::Live];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Live => "live",
        }
    }

    /// The mode of an event's `liveMode`.
    pub fn of_event(live_mode: bool) -> Self {
        if live_mode { Self::Live } else { Self::Test }
    }

    /// The `liveMode` of this mode's events.
    pub fn is_live(self) -> bool {
        self == Self::Live
    }

    /// The mode a DR secret key works in: `sk_test_…` keys in test mode, the others in live mode.
    pub fn of_api_key(key: &str) -> Self {
        if key.starts_with("sk_test_") {
            Self::Test
        } else {
            Self::Live
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_follow_live_mode_and_key_prefixes() {
        assert_eq!(Mode::of_event(true), Mode::Live);
        assert_eq!(Mode::of_event(false), Mode::Test);
        assert!(Mode::Live.is_live() && !Mode::Test.is_live());
        assert_eq!(Mode::of_api_key("sk_test_abc"), Mode::Test);
        assert_eq!(Mode::of_api_key("sk_live_abc"), Mode::Live);
        assert_eq!(Mode::Test.to_string(), "test");
    }
}
