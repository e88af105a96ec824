//! The relay's HTTP door: it takes DR's events in ([`ingress`]), issues tokens for DR's OAuth
//! transport ([`token_endpoint`]), shows and replays stored events ([`admin`]), and answers
//! health and metrics ([`health`]).
//!
//! Each area owns its routes; [`router`] merges them, [`state`] is what they share, and
//! [`paths`] names every route once. [`server`] is the accept loop with its connection limits.
//! The door starts nothing and delivers nothing: [`crate::app`] builds it beside the delivery
//! workers, and it sees each Salesforce target only through the read-only
//! [`crate::delivery::TargetView`].

pub mod admin;
pub mod connections;
pub mod health;
pub mod inbound_auth;
pub mod ingress;
pub mod paths;
pub mod router;
pub mod server;
pub mod state;
pub mod throttle;
pub mod token_endpoint;

pub use router::{areas, router, with_layers};
pub use state::AppState;
