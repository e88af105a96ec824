//! Delivery to Salesforce: what to do after each attempt ([`policy`]) and the worker that claims
//! due events and delivers them ([`worker`]).

pub mod policy;
pub mod worker;

pub use policy::{CircuitBreaker, RetryPolicy};
pub use worker::Worker;
