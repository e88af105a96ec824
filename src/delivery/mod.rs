//! Delivery to Salesforce: what to do after each attempt ([`policy`]), the worker that claims
//! due events and delivers them ([`worker`]), a refused sign-in kept across restarts
//! ([`sign_in`]), and what each target looks like for the status page ([`health`]).

pub mod health;
pub mod pacing;
pub mod policy;
pub mod sign_in;
pub mod worker;

pub use health::{TargetHealth, TargetSnapshot, TargetView};
pub use pacing::Pacer;
pub use policy::{CircuitBreaker, RetryPolicy};
pub use sign_in::SignInMemory;
pub use worker::Worker;
