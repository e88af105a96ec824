//! Verification of the `DigitalRiver-Signature` header.
//!
//! DR signs `"{timestamp}.{raw body}"` with HMAC-SHA256 and the webhook's signing secret. The
//! header's exact grammar is not documented, so this module is lenient in how it is written
//! (`"<ts>, <sig>"`, `"t=<ts>,v0=<sig>"`, with or without spaces, Base64 or hex, several
//! signatures) and strict in what counts: the HMAC of the exact bytes received, compared in
//! constant time, with a timestamp inside the tolerance. Two secrets may be valid at once while DR
//! rotates them.

use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::Mode;

pub const HEADER: &str = "digitalriver-signature";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing signature")]
    Missing,
    #[error("malformed signature header")]
    Malformed,
    #[error("signature timestamp outside the tolerance")]
    Stale,
    #[error("signature does not match")]
    Mismatch,
}

impl SignatureError {
    /// A label for metrics and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "signature_missing",
            Self::Malformed => "signature_malformed",
            Self::Stale => "signature_stale",
            Self::Mismatch => "signature_mismatch",
        }
    }
}

pub struct SignatureVerifier {
    secrets: Vec<SecretString>,
    /// Each secret's HMAC with the key already taken in (its two padded key blocks hashed), cloned
    /// for each request instead of hashing the key again.
    keyed: Vec<Hmac<Sha256>>,
    tolerance: Duration,
}

struct ParsedHeader<'a> {
    timestamp: &'a str,
    signatures: Vec<Vec<u8>>,
}

fn decode_signature(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(text).ok();
    }
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines
        .iter()
        .find_map(|e| e.decode(text).ok())
        .filter(|bytes| bytes.len() == 32)
}

fn parse_header(header: &str) -> Option<ParsedHeader<'_>> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = match part.split_once('=') {
            // Base64 may end in '=': only a short alphabetic key counts as a key.
            Some((k, v))
                if !k.is_empty() && k.len() <= 16 && k.bytes().all(|b| b.is_ascii_alphanumeric()) && !v.is_empty() =>
            {
                (Some(k), v)
            }
            _ => (None, part),
        };
        let is_timestamp = value.len() <= 13 && value.bytes().all(|b| b.is_ascii_digit());
        match key {
            Some("t" | "ts" | "timestamp") | None if is_timestamp && timestamp.is_none() => timestamp = Some(value),
            _ => signatures.extend(decode_signature(value)),
        }
    }
    Some(ParsedHeader {
        timestamp: timestamp?,
        signatures,
    })
}

impl SignatureVerifier {
    pub fn new(secrets: Vec<SecretString>, tolerance: Duration) -> Self {
        let keyed = secrets
            .iter()
            .map(|secret| {
                Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).expect("HMAC takes any key")
            })
            .collect();
        Self {
            secrets,
            keyed,
            tolerance,
        }
    }

    fn secrets_equal(&self, other: &Self) -> bool {
        self.secrets.len() == other.secrets.len()
            && self
                .secrets
                .iter()
                .zip(&other.secrets)
                .all(|(a, b)| a.expose_secret() == b.expose_secret())
            && self.tolerance == other.tolerance
    }

    /// Whether signatures are required (a signing secret is configured).
    pub fn is_enabled(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// Checks `header` against the raw `body` at `now_secs` (Unix seconds).
    pub fn verify(&self, header: Option<&str>, body: &[u8], now_secs: i64) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let parsed = parse_header(header).ok_or(SignatureError::Malformed)?;
        if parsed.signatures.is_empty() {
            return Err(SignatureError::Malformed);
        }
        let mut ts: i64 = parsed.timestamp.parse().map_err(|_| SignatureError::Malformed)?;
        if ts > 100_000_000_000 {
            ts /= 1000; // milliseconds
        }
        if (now_secs - ts).unsigned_abs() > self.tolerance.as_secs() {
            return Err(SignatureError::Stale);
        }
        // One HMAC of the body per secret, whatever the number of signatures in the header.
        for keyed in &self.keyed {
            let mut mac = keyed.clone();
            mac.update(parsed.timestamp.as_bytes());
            mac.update(b".");
            mac.update(body);
            let expected = mac.finalize().into_bytes();
            if parsed
                .signatures
                .iter()
                .any(|signature| bool::from(expected[..].ct_eq(signature)))
            {
                return Ok(());
            }
        }
        Err(SignatureError::Mismatch)
    }
}

/// Each DR mode's verifier: test and live webhooks are signed with different secrets.
pub struct ModeVerifiers {
    test: SignatureVerifier,
    live: SignatureVerifier,
    /// Both modes check the same secrets (one webhook's): one HMAC answers for both.
    same_secrets: bool,
}

/// The modes whose secrets accept a request's signature (or that check none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedFor {
    test: bool,
    live: bool,
}

impl SignedFor {
    pub fn accepts(self, mode: Mode) -> bool {
        match mode {
            Mode::Test => self.test,
            Mode::Live => self.live,
        }
    }
}

impl ModeVerifiers {
    pub fn new(test: SignatureVerifier, live: SignatureVerifier) -> Self {
        let same_secrets = test.secrets_equal(&live);
        Self {
            test,
            live,
            same_secrets,
        }
    }

    /// The verifier of `mode`'s events.
    pub fn of(&self, mode: Mode) -> &SignatureVerifier {
        match mode {
            Mode::Test => &self.test,
            Mode::Live => &self.live,
        }
    }

    /// Whether any mode requires signatures.
    pub fn is_enabled(&self) -> bool {
        self.test.is_enabled() || self.live.is_enabled()
    }

    /// Checks the signature against each mode's secrets, before the body is read as an event: the
    /// modes it is good for, or why it is good for none. The event's `liveMode` must then be one
    /// of them, so an event cannot borrow the other mode's secret.
    pub fn verify(&self, header: Option<&str>, body: &[u8], now_secs: i64) -> Result<SignedFor, SignatureError> {
        let check = |v: &SignatureVerifier| {
            if v.is_enabled() {
                v.verify(header, body, now_secs)
            } else {
                Ok(())
            }
        };
        let test = check(&self.test);
        let live = if self.same_secrets { test } else { check(&self.live) };
        match (test, live) {
            (Err(e), Err(_)) => Err(e),
            (test, live) => Ok(SignedFor {
                test: test.is_ok(),
                live: live.is_ok(),
            }),
        }
    }
}

/// Signs like DR (for tests, `demo` and `trigger`): `"{timestamp}, {base64 signature}"`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("{timestamp}, {signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000;

    fn verifier(secrets: &[&str]) -> SignatureVerifier {
        SignatureVerifier::new(
            secrets.iter().map(|s| SecretString::from(*s)).collect(),
            Duration::from_secs(300),
        )
    }

    fn raw_signature(secret: &str, ts: &str, body: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn the_cartridge_format_verifies() {
        let body = br#"{"id":"e1"}"#;
        assert_eq!(
            verifier(&["whsec"]).verify(Some(&sign("whsec", NOW, body)), body, NOW),
            Ok(())
        );
    }

    #[test]
    fn key_value_hex_and_several_signatures_verify() {
        let body = b"{}";
        let sig = raw_signature("whsec", &NOW.to_string(), body);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&sig);
        let v = verifier(&["whsec"]);
        for header in [
            format!("t={NOW},v0={b64}"),
            format!("t={NOW}, v0={}", hex::encode(&sig)),
            format!("t={NOW},v0={},v1={b64}", hex::encode([0u8; 32])),
            format!("{NOW},{b64}"),
        ] {
            assert_eq!(v.verify(Some(&header), body, NOW), Ok(()), "{header}");
        }
    }

    #[test]
    fn one_verifier_checks_many_requests_each_on_its_own() {
        let v = verifier(&["whsec_old", "whsec"]);
        for (n, body) in [&b"{\"id\":1}"[..], b"{\"id\":2}", b""].into_iter().enumerate() {
            let now = NOW + n as i64;
            assert_eq!(v.verify(Some(&sign("whsec", now, body)), body, now), Ok(()));
            assert_eq!(v.verify(Some(&sign("whsec_old", now, body)), body, now), Ok(()));
            assert_eq!(
                v.verify(Some(&sign("whsec", now, body)), b"{\"id\":3}", now),
                Err(SignatureError::Mismatch),
                "another body"
            );
        }
    }

    #[test]
    fn invalid_signatures_are_refused_for_the_right_reason() {
        let body = b"{}";
        let v = verifier(&["whsec"]);
        assert_eq!(v.verify(None, body, NOW), Err(SignatureError::Missing));
        assert_eq!(v.verify(Some("garbage"), body, NOW), Err(SignatureError::Malformed));
        assert_eq!(
            v.verify(Some(&sign("other", NOW, body)), body, NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            v.verify(Some(&sign("whsec", NOW - 301, body)), body, NOW),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            v.verify(Some(&sign("whsec", NOW + 301, body)), body, NOW),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            v.verify(Some(&sign("whsec", NOW, body)), b"{ }", NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_previous_secret_is_accepted_during_rotation() {
        let body = b"{}";
        assert_eq!(
            verifier(&["new", "old"]).verify(Some(&sign("old", NOW, body)), body, NOW),
            Ok(())
        );
    }
}
