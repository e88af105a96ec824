//! Delivery to Salesforce: what to do after each attempt ([`policy`]), the worker that claims
//! due events and delivers them ([`worker`]), and a refused sign-in kept across restarts
//! ([`sign_in`]).

pub mod pacing;
pub mod policy;
pub mod sign_in;
pub mod worker;

pub use pacing::Pacer;
pub use policy::{CircuitBreaker, RetryPolicy};
pub use sign_in::SignInMemory;
pub use worker::Worker;
