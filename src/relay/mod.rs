//! The relay: an HTTP server that takes DR's events in ([`ingress`]), issues tokens for DR's
//! OAuth transport ([`token_endpoint`]), shows and replays stored events ([`admin`]), answers
//! health and metrics ([`health`]), and runs the delivery worker beside it ([`startup`]).
//!
//! Each area owns its routes; [`router`] merges them, [`state`] is what they share, and
//! [`paths`] names every route once. [`server`] is the accept loop with its connection limits.

pub mod admin;
pub mod health;
pub mod inbound_auth;
pub mod ingress;
pub mod paths;
pub mod router;
pub mod server;
pub mod startup;
pub mod state;
pub mod throttle;
pub mod token_endpoint;
pub mod ui;

pub use router::router;
pub use startup::{Application, shutdown_signal};
pub use state::AppState;
