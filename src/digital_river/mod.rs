//! Everything that speaks Digital River: the Webhooks API client used by `register`, `webhooks`
//! and `check`, and (for the relay) the event envelope and the signature check.

pub mod api;

pub use api::{DigitalRiverClient, DigitalRiverError, Secrets, Webhook, WebhookSpec, WebhookSpecOAuth};
