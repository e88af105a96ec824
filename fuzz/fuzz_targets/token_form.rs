//! A form posted to the relay's `/oauth2/token`, with an optional Basic header.
#![no_main]

use std::time::Duration;

use dr_sf_bridge::http::inbound_auth::InboundAuth;
use dr_sf_bridge::salesforce::GrantType;
use dr_sf_bridge::settings::InboundSettings;
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

fuzz_target!(|input: (&[u8], &str)| {
    let (form, authorization) = input;
    let auth = InboundAuth::new(&InboundSettings {
        grant_type: GrantType::Password,
        client_id: Some("digitalriver".into()),
        client_secret: Some(SecretString::from("client-secret-0123456789")),
        username: Some("dr-user".into()),
        password: Some(SecretString::from("dr-password-0123456789")),
        token_key: Some(SecretString::from("relay-token-key-0123456789-abcdefghij")),
        token_ttl: Duration::from_secs(600),
        basic_username: None,
        basic_password: None,
    });
    let fields: Vec<(String, String)> = dr_sf_bridge::http::token_endpoint::parse_form(form);
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(value) = axum::http::HeaderValue::from_str(authorization) {
        headers.insert(axum::http::header::AUTHORIZATION, value);
    }
    let _ = auth.issue(&fields, &headers);
});
