//! Who is signed in to the status page: a signed, expiring cookie, and the CSRF token that every
//! form which changes something must carry.
//!
//! Nothing is kept on the server. The cookie holds an expiry and a random nonce, signed with a key
//! derived from the admin token: relays that share a token (several instances behind one address)
//! accept each other's sessions, and changing the token signs everyone out. The CSRF token is
//! derived from the session's nonce, so a page from another site can neither read nor guess it,
//! and the cookie itself is `SameSite=Strict` besides.

use std::time::Duration;

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "drsf_session";
/// How long a sign-in lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks sessions; holds only a key derived from the admin token, never the token.
pub struct Sessions {
    key: SecretString,
    /// The cookie is sent only over https.
    secure: bool,
}

/// A valid session from a request's cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    nonce: String,
    pub expires_ms: i64,
}

impl Sessions {
    pub fn new(admin_token: &SecretString, secure: bool) -> Self {
        let mut mac = HmacSha256::new_from_slice(admin_token.expose_secret().as_bytes()).expect("any key length");
        mac.update(b"dr-sf-bridge status page sessions v1");
        let key = hex::encode(mac.finalize().into_bytes());
        Self {
            key: SecretString::from(key),
            secure,
        }
    }

    fn sign(&self, purpose: &str, parts: &[&str]) -> String {
        let mut mac = HmacSha256::new_from_slice(self.key.expose_secret().as_bytes()).expect("any key length");
        mac.update(purpose.as_bytes());
        for part in parts {
            mac.update(b"|");
            mac.update(part.as_bytes());
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// A new session from `now_ms`: its `Set-Cookie` value.
    pub fn start(&self, now_ms: i64) -> String {
        let nonce = hex::encode(rand::random::<[u8; 16]>());
        let expires = (now_ms + SESSION_TTL.as_millis() as i64).to_string();
        let mac = self.sign("session", &[&expires, &nonce]);
        self.cookie(&format!("{expires}.{nonce}.{mac}"), SESSION_TTL.as_secs())
    }

    /// The `Set-Cookie` value that ends a session.
    pub fn end(&self) -> String {
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age_secs: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={value}; Path=/ui; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}")
    }

    /// The session a request's cookie holds, if it is signed by this key and not expired.
    pub fn current(&self, headers: &HeaderMap, now_ms: i64) -> Option<Session> {
        let value = cookie_value(headers, COOKIE)?;
        let mut parts = value.splitn(3, '.');
        let (expires, nonce, mac) = (parts.next()?, parts.next()?, parts.next()?);
        let expected = self.sign("session", &[expires, nonce]);
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return None;
        }
        let expires_ms: i64 = expires.parse().ok()?;
        (expires_ms > now_ms).then(|| Session {
            nonce: nonce.to_owned(),
            expires_ms,
        })
    }

    /// The CSRF token of a session, for its forms.
    pub fn csrf(&self, session: &Session) -> String {
        self.sign("csrf", &[&session.nonce])
    }

    /// Whether `given` is the session's CSRF token.
    pub fn csrf_matches(&self, session: &Session, given: Option<&str>) -> bool {
        given.is_some_and(|given| bool::from(self.csrf(session).as_bytes().ct_eq(given.as_bytes())))
    }
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with_cookie(set_cookie: &str) -> HeaderMap {
        let pair = set_cookie.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {pair}")).unwrap(),
        );
        headers
    }

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_under_its_token() {
        let sessions = Sessions::new(&SecretString::from("admin-token-of-32-characters-xx"), false);
        let cookie = sessions.start(1_000);
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains("Secure"));
        let headers = with_cookie(&cookie);
        let session = sessions.current(&headers, 2_000).expect("valid");
        assert_eq!(session.expires_ms, 1_000 + SESSION_TTL.as_millis() as i64);
        assert!(sessions.current(&headers, session.expires_ms).is_none(), "expired");
        let rotated = Sessions::new(&SecretString::from("another-admin-token-of-32-chars"), true);
        assert!(rotated.current(&headers, 2_000).is_none(), "another token's key");
        assert!(rotated.start(0).contains("; Secure"));
    }

    #[test]
    fn a_tampered_cookie_is_no_session() {
        let sessions = Sessions::new(&SecretString::from("admin-token-of-32-characters-xx"), false);
        let cookie = sessions.start(1_000);
        let longer = cookie.replacen("drsf_session=", "drsf_session=9", 1);
        assert!(sessions.current(&with_cookie(&longer), 2_000).is_none());
        assert!(sessions.current(&with_cookie("drsf_session=1.2.3"), 0).is_none());
        assert!(sessions.current(&HeaderMap::new(), 0).is_none());
    }

    #[test]
    fn the_csrf_token_belongs_to_its_session() {
        let sessions = Sessions::new(&SecretString::from("admin-token-of-32-characters-xx"), false);
        let one = sessions.current(&with_cookie(&sessions.start(0)), 1).unwrap();
        let two = sessions.current(&with_cookie(&sessions.start(0)), 1).unwrap();
        let token = sessions.csrf(&one);
        assert!(sessions.csrf_matches(&one, Some(&token)));
        assert!(!sessions.csrf_matches(&two, Some(&token)));
        assert!(!sessions.csrf_matches(&one, None));
        assert!(!sessions.csrf_matches(&one, Some("")));
    }
}
