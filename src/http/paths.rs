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
/// The status page's overview (every status page path starts with `/ui/`).
pub const UI_HOME: &str = "/ui/";
/// The status page without its trailing slash: redirected to [`UI_HOME`].
pub const UI_BARE: &str = "/ui";
pub const UI_SIGN_IN: &str = "/ui/sign-in";
pub const UI_SIGN_OUT: &str = "/ui/sign-out";
/// The stored events, filtered and paged.
pub const UI_EVENTS: &str = "/ui/events";
pub const UI_EVENT: &str = "/ui/events/{id}";
/// Replaying one event: GET asks for confirmation, POST replays.
pub const UI_EVENT_REPLAY: &str = "/ui/events/{id}/replay";
/// Delivering one pending event now instead of at its next scheduled attempt (POST).
pub const UI_EVENT_RETRY_NOW: &str = "/ui/events/{id}/retry-now";
/// Replaying every dead event since a time: GET asks for confirmation, POST replays.
pub const UI_REPLAY_DEAD: &str = "/ui/replay";

/// The status page's address of one event (`/ui/events/<id>`), or of one of its sub-pages.
pub fn ui_event(id: &str, rest: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("{UI_EVENTS}/{id}{rest}")
}
