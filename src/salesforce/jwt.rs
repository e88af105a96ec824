//! The OAuth 2.0 JWT bearer flow: Salesforce's sign-in for servers, with no shared secret.
//!
//! The relay signs a short assertion (RS256: `iss` the consumer key, `sub` the integration user,
//! `aud` the login host of the org's environment, `exp` within three minutes, a fresh `jti`)
//! with a private key whose certificate is uploaded to the connected app, and trades it at the
//! token endpoint for the same token answer the other grants get. Salesforce ends the
//! username-password flow in Winter '27; this flow is what it recommends instead.
//!
//! A key is checked when the settings are read — unreadable, encrypted, not RSA, shorter than
//! 2,048 bits — so that a mistake is named before any request. Two keys may be given (the second,
//! `next_private_key`, for a rotation without a gap): the grant tries the one that last worked,
//! and the other when Salesforce refuses it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

/// The OAuth `grant_type` of the flow.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Salesforce accepts an assertion that expires within this long.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(180);
/// The smallest RSA key Salesforce takes for a connected app's certificate.
pub const MIN_KEY_BITS: usize = 2048;

/// What is wrong with a private key, before anything is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    #[error("is not a PEM private key (expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)")]
    NotPem,
    #[error(
        "is encrypted with a passphrase, which the relay cannot type: decrypt it once \
         (`openssl pkey -in key.pem -out key-plain.pem`) and keep the file mode 0600"
    )]
    Encrypted,
    #[error("is a {0} key; the JWT bearer flow signs with RSA (RS256): make one with `dr-sf-bridge salesforce keygen`")]
    NotRsa(String),
    #[error(
        "is an RSA key of {0} bits; Salesforce needs {MIN_KEY_BITS} or more: make one with `dr-sf-bridge salesforce keygen`"
    )]
    TooShort(usize),
    #[error("cannot be read as an RSA private key: {0}")]
    Unreadable(String),
}

/// A checked RSA private key, with the settings key it came from.
#[derive(Clone)]
pub struct SigningKey {
    /// `salesforce.private_key` or `salesforce.next_private_key` (of the org's section).
    pub name: String,
    pem: SecretString,
    pub bits: usize,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .field("bits", &self.bits)
            .field("pem", &"[REDACTED]")
            .finish()
    }
}

impl SigningKey {
    /// Checks `pem` (PKCS#8 or PKCS#1): RSA, unencrypted, 2,048 bits or more.
    pub fn parse(name: &str, pem: &SecretString) -> Result<Self, KeyProblem> {
        let text = pem.expose_secret().trim();
        let label = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("-----BEGIN "))
            .and_then(|l| l.strip_suffix("-----"))
            .ok_or(KeyProblem::NotPem)?;
        if label == "ENCRYPTED PRIVATE KEY" || text.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(KeyProblem::Encrypted);
        }
        let bits = match label {
            "PRIVATE KEY" => rsa::RsaPrivateKey::from_pkcs8_pem(text).map_err(|e| match e {
                rsa::pkcs8::Error::PublicKey(_) | rsa::pkcs8::Error::KeyMalformed => {
                    KeyProblem::Unreadable(e.to_string())
                }
                _ if !is_rsa_pkcs8(text) => KeyProblem::NotRsa("non-RSA PKCS#8".into()),
                _ => KeyProblem::Unreadable(e.to_string()),
            }),
            "RSA PRIVATE KEY" => {
                rsa::RsaPrivateKey::from_pkcs1_pem(text).map_err(|e| KeyProblem::Unreadable(e.to_string()))
            }
            "EC PRIVATE KEY" => return Err(KeyProblem::NotRsa("EC".into())),
            "OPENSSH PRIVATE KEY" => return Err(KeyProblem::NotRsa("OpenSSH-format".into())),
            "CERTIFICATE" | "PUBLIC KEY" | "RSA PUBLIC KEY" => {
                return Err(KeyProblem::Unreadable(format!(
                    "it is a {} — give the private key (the certificate goes to the connected app)",
                    label.to_ascii_lowercase()
                )));
            }
            _ => return Err(KeyProblem::NotPem),
        }?
        .size()
            * 8;
        if bits < MIN_KEY_BITS {
            return Err(KeyProblem::TooShort(bits));
        }
        Ok(Self {
            name: name.to_owned(),
            pem: SecretString::from(text.to_owned()),
            bits,
        })
    }

    /// A digest of the key, to tell one key from another (the sign-in memory's fingerprint).
    pub fn digest_into(&self, digest: &mut impl sha2::Digest) {
        digest.update(self.pem.expose_secret().as_bytes());
    }
}

/// Whether a PKCS#8 PEM holds an RSA key (its algorithm identifier), when the RSA parser refused
/// it for another reason.
fn is_rsa_pkcs8(pem: &str) -> bool {
    use rsa::pkcs8::der::Decode;
    let Ok((_, document)) = rsa::pkcs8::SecretDocument::from_pem(pem) else {
        return true;
    };
    rsa::pkcs8::PrivateKeyInfo::from_der(document.as_bytes())
        .map(|info| info.algorithm.oid == rsa::pkcs1::ALGORITHM_OID)
        .unwrap_or(true)
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    iat: u64,
    jti: String,
}

/// A signed assertion for `consumer_key` and `username`, addressed to `audience`, issued at
/// `now_secs` (Unix seconds).
pub fn assertion(
    key: &SigningKey,
    consumer_key: &str,
    username: &str,
    audience: &str,
    now_secs: u64,
) -> Result<String, KeyProblem> {
    let encoding = EncodingKey::from_rsa_pem(key.pem.expose_secret().as_bytes())
        .map_err(|e| KeyProblem::Unreadable(e.to_string()))?;
    let claims = Claims {
        iss: consumer_key,
        sub: username,
        aud: audience,
        exp: now_secs + ASSERTION_LIFETIME.as_secs(),
        iat: now_secs,
        jti: hex::encode(rand::random::<[u8; 16]>()),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &encoding)
        .map_err(|e| KeyProblem::Unreadable(e.to_string()))
}

/// The org's keys in the order to try them: the one that signed in last first.
#[derive(Debug)]
pub struct KeyRing {
    pub keys: Vec<SigningKey>,
    preferred: AtomicUsize,
}

impl Clone for KeyRing {
    fn clone(&self) -> Self {
        Self {
            keys: self.keys.clone(),
            preferred: AtomicUsize::new(self.preferred.load(Ordering::Relaxed)),
        }
    }
}

impl KeyRing {
    pub fn new(keys: Vec<SigningKey>) -> Self {
        Self {
            keys,
            preferred: AtomicUsize::new(0),
        }
    }

    /// Indexes of the keys, the preferred one first.
    pub fn order(&self) -> Vec<usize> {
        if self.keys.is_empty() {
            return Vec::new();
        }
        let first = self
            .preferred
            .load(Ordering::Relaxed)
            .min(self.keys.len().saturating_sub(1));
        std::iter::once(first)
            .chain((0..self.keys.len()).filter(|i| *i != first))
            .collect()
    }

    /// The key at `index` signed in: it is tried first from now on.
    pub fn signed_in_with(&self, index: usize) {
        self.preferred.store(index, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[test]
    fn keys_that_are_not_unencrypted_rsa_pem_are_named_before_any_request() {
        assert_eq!(
            SigningKey::parse("k", &secret("hello")).unwrap_err(),
            KeyProblem::NotPem
        );
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----";
        assert_eq!(
            SigningKey::parse("k", &secret(encrypted)).unwrap_err(),
            KeyProblem::Encrypted
        );
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nMIIB\n-----END RSA PRIVATE KEY-----";
        assert_eq!(
            SigningKey::parse("k", &secret(legacy)).unwrap_err(),
            KeyProblem::Encrypted
        );
        let ec = "-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----";
        assert!(matches!(
            SigningKey::parse("k", &secret(ec)).unwrap_err(),
            KeyProblem::NotRsa(_)
        ));
        let certificate = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
        let problem = SigningKey::parse("k", &secret(certificate)).unwrap_err().to_string();
        assert!(problem.contains("give the private key"), "{problem}");
    }

    #[test]
    fn a_short_rsa_key_is_refused_with_its_size() {
        use rsa::pkcs8::EncodePrivateKey;
        let short = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let pem = short.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        assert_eq!(
            SigningKey::parse("k", &secret(&pem)).unwrap_err(),
            KeyProblem::TooShort(1024)
        );
    }

    #[test]
    fn the_key_ring_tries_the_key_that_worked_first() {
        assert!(KeyRing::new(Vec::new()).order().is_empty());
        let ring = KeyRing {
            keys: vec![
                SigningKey {
                    name: "a".into(),
                    pem: secret("x"),
                    bits: 2048,
                };
                2
            ],
            preferred: AtomicUsize::new(0),
        };
        assert_eq!(ring.order(), vec![0, 1]);
        ring.signed_in_with(1);
        assert_eq!(ring.order(), vec![1, 0]);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = SigningKey {
            name: "salesforce.private_key".into(),
            pem: secret("-----BEGIN PRIVATE KEY-----SECRETBYTES"),
            bits: 2048,
        };
        assert!(!format!("{key:?}").contains("SECRETBYTES"));
    }
}
