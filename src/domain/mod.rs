//! Types that are valid by construction.
//!
//! Every value that crosses the edge of the program (configuration, command line, HTTP bodies) is
//! parsed once into one of these types; past the edge, code never handles a raw string where a type
//! exists, so a malformed event type or a Lightning URL cannot reach the Digital River API or the
//! delivery worker.

/// `Display` as the bare text and `Debug` as `Name(text)` for a newtype over a `String`.
macro_rules! text_newtype_fmt {
    ($name:ident) => {
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}
pub(crate) use text_newtype_fmt;

mod event_id;
mod event_type;
mod mode;
mod order_key;
mod salesforce_url;
mod service_url;

pub use event_id::EventId;
pub use event_type::EventType;
pub use mode::Mode;
pub use order_key::OrderKey;
pub use salesforce_url::SalesforceUrl;
pub use service_url::{ServiceUrl, is_loopback_host};
