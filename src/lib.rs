//! dr-sf-bridge: connects Digital River's order webhooks to the DR Salesforce Lightning app.
//!
//! `register` sets up DR's webhook (setup step 11); the relay receives events, stores them
//! durably and delivers them to Salesforce; the operations commands help the admin run it.
//!
//! # Layout
//!
//! - [`domain`]: values valid by construction (`EventId`, `EventType`, `OrderKey`, URLs).
//! - [`settings`]: layered configuration, one file per section, every problem reported at once.
//! - [`digital_river`], [`salesforce`]: the two remote parties — clients and their vocabulary.
//! - [`store`]: durable events and attempts behind one trait; [`delivery`]: retry rules and worker.
//! - [`relay`]: the accept loop with its limits (`server`), one router per area, start-up;
//!   [`metrics`], [`telemetry`].
//! - [`ops`]: register, check, events, webhooks, demo, trigger as typed functions; [`cli`]:
//!   parsing, rendering, exit codes. [`support`]: the HTTP client builder, retries, the clock,
//!   error text.
//!
//! One event's path: `relay/server.rs` (connection limits) → `relay/ingress.rs` (authenticate,
//! verify `digital_river/signature.rs`, parse `digital_river/event.rs`) → `store/sqlite/` (committed,
//! then 202) → `delivery/worker.rs` (claim) → `salesforce/client.rs` (token from
//! `salesforce/auth.rs`, POST to Apex) → `delivery/policy.rs` (delivered, retry or dead) →
//! `store/sqlite/` (attempt recorded).

pub mod app;
pub mod cli;
pub mod delivery;
pub mod digital_river;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod ops;
pub mod salesforce;
pub mod settings;
pub mod status_page;
pub mod store;
pub mod support;
pub mod telemetry;
