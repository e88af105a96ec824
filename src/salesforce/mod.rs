//! Everything that speaks Salesforce: the sign-in vocabulary ([`credentials`]), sign-in
//! ([`auth`]: grants and the shared token cache) and delivery to the DR package's Apex REST
//! resource ([`client`]), and the DR package's own failure records ([`failed_events`]).

pub mod auth;
pub mod client;
pub mod credentials;
pub mod failed_events;
mod hints;
pub mod jwt;

pub use auth::{AuthError, SalesforceAuth, TokenCache};
pub use client::{ApexClient, ApiUsage, DeliveryAttempt, DeliveryOutcome};
pub use credentials::{
    GrantType, LOGIN_HOST, SalesforceCredentials, SalesforceEnvironment, SalesforceGrant, TEST_HOST, TOKEN_PATH,
};
pub use hints::{PASSWORD_FLOW_ENDS, PASSWORD_FLOW_WAYS_OUT};
