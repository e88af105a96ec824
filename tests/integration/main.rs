//! Integration tests: the real binary and library against stand-ins for Digital River and
//! Salesforce that answer like the real services (see ../shared/reference/).

mod check;
mod helpers;
mod register;
mod salesforce_auth;
mod salesforce_delivery;
mod salesforce_standin;
mod validation;
mod webhooks;
