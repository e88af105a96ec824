//! What every request handler shares.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::inbound_auth::InboundAuth;
use super::throttle::AuthThrottle;
use crate::digital_river::SignatureVerifier;
use crate::domain::EventType;
use crate::metrics::Metrics;
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub inbound: Arc<InboundAuth>,
    pub signatures: Arc<SignatureVerifier>,
    pub subscription: Arc<HashSet<EventType>>,
    /// The DR mode whose events are delivered; the other mode's are kept as `rejected_mode`.
    pub mode: crate::salesforce::Mode,
    /// Larger request bodies get 413, in bytes.
    pub body_limit: usize,
    pub metrics: Arc<Metrics>,
    /// Wakes the delivery worker when an event is stored or replayed.
    pub wake: Arc<Notify>,
    /// The admin API's bearer token; no admin API without it.
    pub admin_token: Option<secrecy::SecretString>,
    /// Longest time one request may take.
    pub request_timeout: Duration,
    /// Slows down clients whose authentications keep failing.
    pub throttle: Arc<AuthThrottle>,
    /// The header naming the client address behind a proxy.
    pub client_ip_header: Option<String>,
}
