//! Salesforce's sign-in vocabulary: environments, grant types, token hosts, and the complete set
//! of values one grant needs.

use secrecy::SecretString;
use serde::Deserialize;

use super::jwt::KeyRing;
use crate::domain::{Mode, ServiceUrl};

/// The production login host (password grant, production orgs).
pub const LOGIN_HOST: &str = "login.salesforce.com";
/// The sandbox login host (password grant, sandboxes).
pub const TEST_HOST: &str = "test.salesforce.com";
/// The token endpoint's path on every Salesforce host.
pub const TOKEN_PATH: &str = "/services/oauth2/token";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SalesforceEnvironment {
    Sandbox,
    Production,
}

impl SalesforceEnvironment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Production => "production",
        }
    }

    /// The login host: the password grant's token host, and the JWT bearer flow's audience.
    pub fn login_host(self) -> &'static str {
        match self {
            Self::Sandbox => TEST_HOST,
            Self::Production => LOGIN_HOST,
        }
    }
}

impl SalesforceEnvironment {
    /// The kind of org that takes a mode's events unless said otherwise.
    pub fn of_mode(mode: Mode) -> Self {
        match mode {
            Mode::Test => Self::Sandbox,
            Mode::Live => Self::Production,
        }
    }

    /// The mode an org of this environment takes: a sandbox test events, production live ones.
    pub fn mode(self) -> Mode {
        match self {
            Self::Sandbox => Mode::Test,
            Self::Production => Mode::Live,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    Password,
    ClientCredentials,
    /// The OAuth 2.0 JWT bearer flow (the relay only: DR's webhook cannot sign in with it).
    JwtBearer,
}

impl GrantType {
    /// The OAuth `grant_type` value, as DR's `oauth.grantType` and Salesforce expect it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::ClientCredentials => "client_credentials",
            Self::JwtBearer => "jwt_bearer",
        }
    }
}

/// The complete set of values a Salesforce grant needs; built only from validated settings.
#[derive(Debug, Clone)]
pub struct SalesforceCredentials {
    pub token_url: ServiceUrl,
    pub client_id: String,
    /// `None` only with the JWT bearer flow, which has no shared secret.
    pub client_secret: Option<SecretString>,
    pub grant: SalesforceGrant,
}

#[derive(Debug, Clone)]
pub enum SalesforceGrant {
    Password {
        username: String,
        password: SecretString,
    },
    ClientCredentials,
    JwtBearer {
        username: String,
        /// The assertion's `aud`: the login host of the org's environment, as a URL.
        audience: String,
        keys: KeyRing,
    },
}

impl SalesforceCredentials {
    /// A short digest of every credential value: equal while nothing changed, different once the
    /// admin fixes a password or secret. 64 bits of SHA-256, too few to test guesses against.
    pub fn fingerprint(&self) -> String {
        use secrecy::ExposeSecret;
        use sha2::{Digest, Sha256};
        let mut digest = Sha256::new();
        for part in [
            self.token_url.base(),
            &self.client_id,
            self.client_secret.as_ref().map_or("", |s| s.expose_secret()),
        ] {
            digest.update(part.as_bytes());
            digest.update([0]);
        }
        match &self.grant {
            SalesforceGrant::Password { username, password } => {
                digest.update(username.as_bytes());
                digest.update([0]);
                digest.update(password.expose_secret().as_bytes());
            }
            SalesforceGrant::JwtBearer {
                username,
                audience,
                keys,
            } => {
                for part in [username, audience] {
                    digest.update(part.as_bytes());
                    digest.update([0]);
                }
                for key in &keys.keys {
                    key.digest_into(&mut digest);
                    digest.update([0]);
                }
            }
            SalesforceGrant::ClientCredentials => {}
        }
        hex::encode(&digest.finalize()[..8])
    }
}

impl SalesforceGrant {
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::Password { .. } => GrantType::Password,
            Self::ClientCredentials => GrantType::ClientCredentials,
            Self::JwtBearer { .. } => GrantType::JwtBearer,
        }
    }
}
