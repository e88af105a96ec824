//! The command line, run as the real binary against a stand-in for Digital River.

mod helpers;
mod register;
mod validation;
mod webhooks;
