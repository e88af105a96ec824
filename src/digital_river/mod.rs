//! Everything that speaks Digital River: the Webhooks API client used by `register`, `webhooks`
//! and `check`, the Events API (`events backfill`), and for the relay the event envelope and the signature check.

pub mod api;
pub mod event;
pub mod events_api;
pub mod signature;

pub use api::{ApiOptions, DigitalRiverClient, DigitalRiverError, Secrets, Webhook, WebhookSpec, WebhookSpecOAuth};
pub use event::{Envelope, EnvelopeError};
pub use signature::{ModeVerifiers, SignatureError, SignatureVerifier, SignedFor};
