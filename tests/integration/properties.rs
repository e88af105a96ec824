//! Properties of the parsers that face the network, over generated input: the signature header,
//! the event envelope and the token form never panic, and accept only what they should.
//! (The `fuzz/` targets drive the same functions with coverage guidance.)

use std::time::Duration;

use dr_sf_bridge::digital_river::signature::sign;
use dr_sf_bridge::digital_river::{Envelope, SignatureVerifier};
use dr_sf_bridge::http::inbound_auth::InboundAuth;
use dr_sf_bridge::salesforce::GrantType;
use dr_sf_bridge::settings::InboundSettings;
use proptest::prelude::*;
use secrecy::SecretString;

const SECRET: &str = "whsec_property_secret";
const NOW: i64 = 1_700_000_000;

fn verifier() -> SignatureVerifier {
    SignatureVerifier::new(vec![SecretString::from(SECRET)], Duration::from_secs(300))
}

fn inbound() -> InboundAuth {
    InboundAuth::new(&InboundSettings {
        grant_type: GrantType::Password,
        client_id: Some("digitalriver".into()),
        client_secret: Some(SecretString::from("client-secret-0123456789")),
        username: Some("dr-user".into()),
        password: Some(SecretString::from("dr-password-0123456789")),
        token_key: Some(SecretString::from("relay-token-key-0123456789-abcdefghij")),
        token_ttl: Duration::from_secs(600),
        basic_username: None,
        basic_password: None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_signature_header_is_answered_without_panic(header in ".{0,300}", body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = verifier().verify(Some(&header), &body, NOW);
    }

    #[test]
    fn only_the_signed_body_verifies(body in prop::collection::vec(any::<u8>(), 0..512), other in prop::collection::vec(any::<u8>(), 0..512), skew in -299i64..299) {
        let header = sign(SECRET, NOW + skew, &body);
        prop_assert!(verifier().verify(Some(&header), &body, NOW).is_ok());
        prop_assert!(verifier().verify(Some(&header.replace(' ', "")), &body, NOW).is_ok(), "with or without the space");
        if other != body {
            prop_assert!(verifier().verify(Some(&header), &other, NOW).is_err());
        }
        let millis = sign(SECRET, (NOW + skew) * 1000, &body);
        prop_assert!(verifier().verify(Some(&millis), &body, NOW).is_ok(), "timestamps in milliseconds");
    }

    #[test]
    fn a_signature_outside_the_tolerance_never_verifies(body in prop::collection::vec(any::<u8>(), 0..64), skew in 301i64..1_000_000) {
        prop_assert!(verifier().verify(Some(&sign(SECRET, NOW - skew, &body)), &body, NOW).is_err());
        prop_assert!(verifier().verify(Some(&sign(SECRET, NOW + skew, &body)), &body, NOW).is_err());
        prop_assert!(verifier().verify(Some(&sign(SECRET, (NOW - skew) * 1000, &body)), &body, NOW).is_err());
    }

    #[test]
    fn any_bytes_are_parsed_or_refused_without_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Envelope::parse(&body);
    }

    #[test]
    fn any_json_is_parsed_or_refused_by_name(value in json_value(4)) {
        let body = value.to_string();
        match Envelope::parse(body.as_bytes()) {
            Ok(envelope) => prop_assert_eq!(Some(envelope.id.as_str()), value["id"].as_str()),
            Err(e) => prop_assert!(!e.field.is_empty() && !e.message.is_empty()),
        }
    }

    #[test]
    fn any_token_form_is_answered_and_only_the_right_credentials_get_a_token(
        form in prop::collection::vec(("(grant_type|client_id|client_secret|username|password|[a-z]{1,8})", ".{0,40}"), 0..8)
    ) {
        let auth = inbound();
        let form: Vec<(String, String)> = form.into_iter().collect();
        if auth.issue(&form, &axum::http::HeaderMap::new()).is_ok() {
            let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
            prop_assert_eq!(field("client_secret"), Some("client-secret-0123456789"));
        }
    }
}

/// JSON values up to `depth` levels, biased towards the envelope's own keys.
fn json_value(depth: u32) -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        "[a-z._ -]{0,20}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("(id|type|data|object|liveMode|orderId|[a-z]{1,5})", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn millisecond_timestamps_are_judged_at_the_tolerance_edge_like_seconds() {
    let body = b"{\"id\":\"edge\"}";
    for (age, verifies) in [(300, true), (301, false), (-300, true), (-301, false)] {
        let seconds = sign(SECRET, NOW - age, body);
        let millis = sign(SECRET, (NOW - age) * 1000, body);
        assert_eq!(
            verifier().verify(Some(&seconds), body, NOW).is_ok(),
            verifies,
            "{age} s in seconds"
        );
        assert_eq!(
            verifier().verify(Some(&millis), body, NOW).is_ok(),
            verifies,
            "{age} s in milliseconds"
        );
    }
}
