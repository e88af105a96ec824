//! What every part of the house shares and none owns: the outbound HTTP client and its retry
//! rule ([`http`]), the clock ([`clock`]), and errors and answers as one line of text ([`text`]).
//!
//! Kept in one place so that a timeout, a retry delay or an excerpt length is decided once: the
//! DR client, the Salesforce sign-in and the delivery worker behave alike because they share it.

pub mod clock;
pub mod http;
pub mod text;
