//! Who may post events to the relay: DR with a token from the relay's own `/oauth2/token` (DR's
//! OAuth transport), or with Basic credentials.
//!
//! Tokens are HS256 JWTs signed with `relay.inbound_token_key`: any relay instance that shares
//! the key accepts them, also after a restart, with no shared state. Secrets are compared through
//! their SHA-256 digests in constant time, so neither their content nor their length leaks
//! through timing.

use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::salesforce::GrantType;
use crate::settings::InboundSettings;
use crate::support::clock::unix_secs;

const ISSUER: &str = "dr-sf-bridge";
const AUDIENCE: &str = "dr-sf-bridge/webhooks";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    iat: u64,
    exp: u64,
}

/// Why a request was not let in; the label goes to metrics, never to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    BadToken,
    BadBasic,
}

impl AuthFailure {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "auth_missing",
            Self::BadToken => "auth_bad_token",
            Self::BadBasic => "auth_bad_basic",
        }
    }
}

/// An RFC 6749 error answer of the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    pub status: u16,
    pub error: &'static str,
    pub description: &'static str,
}

#[derive(Debug, Serialize)]
pub struct IssuedToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

pub struct InboundAuth {
    oauth: Option<OAuthClient>,
    basic: Option<(String, SecretString)>,
}

struct OAuthClient {
    client_id: String,
    client_secret: SecretString,
    user: Option<(String, SecretString)>,
    grant_type: GrantType,
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

/// Compares through SHA-256 digests in constant time: neither content nor length leaks.
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// `Authorization: Basic` decoded into user and password.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The token of `Authorization: Bearer`.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn form_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl InboundAuth {
    pub fn new(inbound: &InboundSettings) -> Self {
        let oauth = match (&inbound.client_id, &inbound.client_secret, &inbound.token_key) {
            (Some(client_id), Some(client_secret), Some(key)) => Some(OAuthClient {
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                user: inbound.username.clone().zip(inbound.password.clone()),
                grant_type: inbound.grant_type,
                encoding: EncodingKey::from_secret(key.expose_secret().as_bytes()),
                decoding: DecodingKey::from_secret(key.expose_secret().as_bytes()),
                ttl: inbound.token_ttl,
            }),
            _ => None,
        };
        let basic = inbound.basic_username.clone().zip(inbound.basic_password.clone());
        Self { oauth, basic }
    }

    pub fn oauth_enabled(&self) -> bool {
        self.oauth.is_some()
    }

    /// Lets a request to `/webhooks/digitalriver` in, or says why not.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<(), AuthFailure> {
        if let (Some(token), Some(oauth)) = (bearer(headers), &self.oauth) {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_audience(&[AUDIENCE]);
            validation.set_issuer(&[ISSUER]);
            validation.leeway = 5;
            return match jsonwebtoken::decode::<Claims>(token, &oauth.decoding, &validation) {
                Ok(data) if data.claims.sub == oauth.client_id => Ok(()),
                _ => Err(AuthFailure::BadToken),
            };
        }
        if let (Some((user, password)), Some((want_user, want_password))) = (basic_credentials(headers), &self.basic) {
            let user_ok = same_secret(&user, want_user);
            let password_ok = same_secret(&password, want_password.expose_secret());
            return if user_ok & password_ok {
                Ok(())
            } else {
                Err(AuthFailure::BadBasic)
            };
        }
        if headers.contains_key(axum::http::header::AUTHORIZATION) {
            return Err(if self.oauth.is_some() {
                AuthFailure::BadToken
            } else {
                AuthFailure::BadBasic
            });
        }
        Err(AuthFailure::Missing)
    }

    /// Answers a token request (form fields, and the request's headers for Basic client auth).
    pub fn issue(&self, form: &[(String, String)], headers: &HeaderMap) -> Result<IssuedToken, TokenError> {
        let Some(oauth) = &self.oauth else {
            return Err(TokenError {
                status: 400,
                error: "unsupported_grant_type",
                description: "OAuth is not configured",
            });
        };
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let grant_type = field("grant_type").ok_or(TokenError {
            status: 400,
            error: "invalid_request",
            description: "grant_type is required",
        })?;
        let grant_allowed = match grant_type {
            "client_credentials" => true,
            "password" => oauth.grant_type == GrantType::Password,
            _ => false,
        };
        if !grant_allowed {
            return Err(TokenError {
                status: 400,
                error: "unsupported_grant_type",
                description: "grant type not supported",
            });
        }
        // RFC 6749 2.3.1: client credentials in the body or in a Basic header (form-encoded).
        let (client_id, client_secret) = match (field("client_id"), field("client_secret")) {
            (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
            _ => match basic_credentials(headers) {
                Some((id, secret)) => (form_decode(&id), form_decode(&secret)),
                None => {
                    return Err(TokenError {
                        status: 401,
                        error: "invalid_client",
                        description: "client authentication failed",
                    });
                }
            },
        };
        let id_ok = same_secret(&client_id, &oauth.client_id);
        let secret_ok = same_secret(&client_secret, oauth.client_secret.expose_secret());
        if !(id_ok & secret_ok) {
            return Err(TokenError {
                status: 401,
                error: "invalid_client",
                description: "client authentication failed",
            });
        }
        if grant_type == "password" {
            let (Some(username), Some(password)) = (field("username"), field("password")) else {
                return Err(TokenError {
                    status: 400,
                    error: "invalid_request",
                    description: "username and password are required",
                });
            };
            let valid = oauth.user.as_ref().is_some_and(|(u, p)| {
                let user_ok = same_secret(username, u);
                let password_ok = same_secret(password, p.expose_secret());
                user_ok & password_ok
            });
            if !valid {
                return Err(TokenError {
                    status: 400,
                    error: "invalid_grant",
                    description: "invalid resource owner credentials",
                });
            }
        }
        let now = unix_secs();
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: oauth.client_id.clone(),
            iat: now,
            exp: now + oauth.ttl.as_secs(),
        };
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &oauth.encoding).map_err(|_| TokenError {
                status: 500,
                error: "server_error",
                description: "could not issue a token",
            })?;
        Ok(IssuedToken {
            access_token,
            token_type: "Bearer",
            expires_in: oauth.ttl.as_secs(),
        })
    }
}
