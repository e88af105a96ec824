//! The relay's route paths, defined once: the router serves them and `register --target relay`
//! tells DR about them.

/// Where DR posts events.
pub const WEBHOOK: &str = "/webhooks/digitalriver";
/// The token endpoint of DR's OAuth transport.
pub const TOKEN: &str = "/oauth2/token";
/// Liveness: the process answers.
pub const HEALTHZ: &str = "/healthz";
/// Readiness: the store can commit.
pub const READYZ: &str = "/readyz";
/// Prometheus metrics.
pub const METRICS: &str = "/metrics";
/// The admin API's stored events.
pub const ADMIN_EVENTS: &str = "/admin/events";
/// Bulk replay of stored events (`?status=dead&since=2h`).
pub const ADMIN_EVENTS_REPLAY: &str = "/admin/events/replay";
/// One stored event.
pub const ADMIN_EVENT: &str = "/admin/events/{id}";
/// Replay of one stored event.
pub const ADMIN_EVENT_REPLAY: &str = "/admin/events/{id}/replay";
