//! What every request handler shares.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::inbound_auth::InboundAuth;
use super::throttle::AuthThrottle;
use crate::delivery::TargetView;
use crate::digital_river::ModeVerifiers;
use crate::domain::{EventType, Mode};
use crate::metrics::Metrics;
use crate::reconcile::silence::LastReceived;
use crate::store::Store;

/// The handlers' shared parts behind one `Arc`: axum clones the state for every request, and one
/// reference count is cheaper than a dozen and two heap copies (the admin token, the header name).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub inbound: Arc<InboundAuth>,
    /// Each mode's signing secrets.
    pub signatures: Arc<ModeVerifiers>,
    pub subscription: Arc<HashSet<EventType>>,
    /// The DR modes some Salesforce target takes; other events are kept as `rejected_mode`.
    pub modes: Arc<[Mode]>,
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
    /// Each Salesforce target's parts the status page reads.
    pub targets: Arc<[TargetView]>,
    /// The relay is reached over https (`relay.public_url`): its cookies are `Secure`.
    pub secure_cookies: bool,
    /// When DR's webhook last brought an event of each mode (the watchdog's "silent").
    pub last_received: Arc<LastReceived>,
}
