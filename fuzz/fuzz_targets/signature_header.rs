//! The `DigitalRiver-Signature` header and body, as any client may send them.
#![no_main]

use std::time::Duration;

use dr_sf_bridge::digital_river::SignatureVerifier;
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;

fuzz_target!(|input: (&str, &[u8])| {
    let (header, body) = input;
    let verifier = SignatureVerifier::new(
        vec![SecretString::from("whsec_current"), SecretString::from("whsec_previous")],
        Duration::from_secs(300),
    );
    let _ = verifier.verify(Some(header), body, 1_700_000_000);
});
