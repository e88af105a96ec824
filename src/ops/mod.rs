//! The operations layer: `register`, `check`, `events` and `webhooks` as plain functions that
//! take validated settings and return typed reports and a typed error.
//!
//! Nothing here prints or exits: the command line ([`crate::cli`]) renders the reports and maps
//! [`OpsError`] to exit codes in one place, and the relay's admin API and status page can call the
//! same functions.

pub mod backfill;
pub mod check;
pub mod demo;
pub mod events;
pub mod keygen;
pub mod org_standin;
pub mod register;
pub mod samples;
pub mod sender;
pub mod store_copy;
pub mod trigger;
pub mod webhooks;

use crate::digital_river::DigitalRiverError;
use crate::settings::ConfigProblems;
use crate::store::StoreError;

/// Why an operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The configuration is invalid or incomplete for this operation.
    #[error(transparent)]
    Config(#[from] ConfigProblems),
    /// Digital River refused the call, or could not be reached.
    #[error(transparent)]
    DigitalRiver(#[from] DigitalRiverError),
    /// The request cannot be done as asked (an unknown event id, a replay of a pending event).
    #[error("{0}")]
    Refused(String),
    /// A server (the relay, DR, Salesforce) could not be reached.
    #[error("{0}")]
    Unreachable(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else, with its context.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}
