//! dr-sf-bridge: connects Digital River's order webhooks to the DR Salesforce Lightning app.
//!
//! `register` sets up DR's webhook (setup step 11); the relay receives events, stores them
//! durably and delivers them to Salesforce; the operations commands help the admin run it.

pub mod check;
pub mod cli;
pub mod command;
pub mod delivery;
pub mod digital_river;
pub mod domain;
pub mod events;
pub mod metrics;
pub mod register;
pub mod relay;
pub mod salesforce;
pub mod settings;
pub mod store;
pub mod table;
pub mod telemetry;
pub mod webhooks;
