//! The relay: an HTTP server that takes DR's events in ([`ingress`]), issues tokens for DR's
//! OAuth transport ([`token_endpoint`]), shows and replays stored events ([`admin`]), and runs the
//! delivery worker beside it ([`app`]).

pub mod admin;
pub mod app;
pub mod inbound_auth;
pub mod ingress;
pub mod token_endpoint;

pub use app::{AppState, Application, router};
