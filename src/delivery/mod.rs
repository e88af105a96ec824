//! Delivery to Salesforce: one org and its parts ([`target`]), what to do after each attempt
//! ([`policy`] for the event, [`breaker`] for the org), how many deliveries at once the org takes
//! ([`pacing`]), the worker that claims due events and delivers them ([`worker`]), a refused
//! sign-in kept across restarts ([`sign_in`]), and what each target looks like for the status page
//! ([`health`]).

pub mod breaker;
pub mod health;
pub mod pacing;
pub mod policy;
pub mod sign_in;
pub mod target;
pub mod worker;

pub use breaker::CircuitBreaker;
pub use health::{TargetHealth, TargetSnapshot};
pub use pacing::Pacer;
pub use policy::RetryPolicy;
pub use sign_in::SignInMemory;
pub use target::{Target, TargetView};
pub use worker::{Round, Worker};
