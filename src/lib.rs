//! dr-sf-bridge: connects Digital River's order webhooks to the DR Salesforce Lightning app.
//!
//! `register` sets up DR's webhook (setup step 11); the relay receives events, stores them
//! durably and delivers them to Salesforce; the operations commands help the admin run it.
//!
//! # Layout
//!
//! From the bottom up; each room imports only rooms above it in this list, never one below.
//!
//! - [`domain`]: values valid by construction (`EventId`, `EventType`, `OrderKey`, URLs).
//! - [`support`]: the HTTP client builder, retries, the one [`support::clock::Clock`], error text.
//! - [`salesforce`], [`digital_river`]: the two remote parties — clients and their vocabulary.
//! - [`settings`]: layered configuration, one file per section, every problem reported at once.
//! - [`store`]: durable events and attempts behind one trait, its migrations (one list for both
//!   engines) and replay; [`metrics`], [`telemetry`].
//! - [`delivery`]: one [`delivery::Target`] per org (client, retry rules, breaker, pacer, sign-in
//!   memory, health) and its [`delivery::Worker`], whose loop is a series of claim rounds.
//! - [`reconcile`]: DR's Events API against the store — the relay's sweeps and `events backfill`
//!   store what the webhook never brought, through the webhook's own insert.
//! - [`http`]: the door — the accept loop with its limits (`server`), one router per area
//!   (ingress, token endpoint, admin API, health); it sees targets only through the read-only
//!   [`delivery::TargetView`]. [`status_page`]: `/ui/`, on the door's state and paths.
//! - [`app`]: the composition root — the only room that builds the parts and starts tasks.
//! - [`ops`]: register, check, events, webhooks, demo, trigger as typed functions; [`cli`]:
//!   parsing, rendering, exit codes.
//!
//! One event's path: `http/server.rs` (connection limits) → `http/ingress.rs` (authenticate,
//! verify `digital_river/signature.rs`, parse `digital_river/event.rs`) → `store/sqlite/` (committed,
//! then 202) → `delivery/worker.rs` (a claim round) → `salesforce/client.rs` (token from
//! `salesforce/auth.rs`, POST to Apex) → `delivery/policy.rs` (delivered, retry or dead) →
//! `store/sqlite/` (attempt recorded).

pub mod app;
pub mod cli;
pub mod conditions;
pub mod delivery;
pub mod digital_river;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod reconcile;
pub mod salesforce;
pub mod settings;
pub mod status_page;
pub mod store;
pub mod support;
pub mod telemetry;
