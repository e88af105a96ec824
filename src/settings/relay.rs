//! `[relay]`: where the relay listens, who may post to it, and the admin API's token.

use std::time::Duration;

use super::problems::{Collector, ConfigProblems, Reader};
use crate::domain::ServiceUrl;
use crate::salesforce::GrantType;
use secrecy::{ExposeSecret, SecretString};

/// What DR must present to post events: an OAuth client (and user) for the relay's token
/// endpoint, or Basic credentials; read from the `[relay]` section's `inbound_*` and `basic_*` keys.
#[derive(Debug, Clone)]
pub struct InboundSettings {
    /// The grant DR uses at the relay's `/oauth2/token`.
    pub grant_type: GrantType,
    /// Client id DR presents.
    pub client_id: Option<String>,
    /// Client secret DR presents.
    pub client_secret: Option<SecretString>,
    /// User name DR presents with the password grant.
    pub username: Option<String>,
    /// Password DR presents with the password grant.
    pub password: Option<SecretString>,
    /// Key that signs the relay's tokens, shared by every instance.
    pub token_key: Option<SecretString>,
    /// Lifetime of the relay's tokens (seconds in the configuration).
    pub token_ttl: Duration,
    /// Basic auth user name, instead of OAuth.
    pub basic_username: Option<String>,
    /// Basic auth password.
    pub basic_password: Option<SecretString>,
}

/// What `register --target relay` tells DR to present at the relay's `/oauth2/token`.
#[derive(Debug, Clone)]
pub struct InboundOAuth {
    pub public_url: ServiceUrl,
    pub client_id: String,
    pub client_secret: SecretString,
    pub grant_type: GrantType,
    /// `Some` with the password grant.
    pub user: Option<(String, SecretString)>,
}

/// `host:port` with a numeric port: an IP address (IPv6 in brackets) or a host name.
fn is_host_and_port(listen: &str) -> bool {
    if listen.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = listen.rsplit_once(':') else {
        return false;
    };
    port.parse::<u16>().is_ok()
        && !host.is_empty()
        && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// The shortest client secret or password the relay accepts from DR.
pub const MIN_SECRET_CHARS: usize = 16;

#[derive(Debug)]
pub struct RelaySettings {
    /// Address the relay binds (host:port).
    pub listen: String,
    /// The URL DR reaches the relay at (for `register --target relay`).
    pub public_url: Option<ServiceUrl>,
    /// Larger request bodies get 413, in bytes.
    pub body_limit_bytes: usize,
    /// What DR must present: OAuth client (and user) or Basic credentials.
    pub inbound: InboundSettings,
    /// Bearer token of the admin API (`/admin/...`) and the status page's sign-in (`/ui/`); neither
    /// exists when unset.
    pub admin_token: Option<SecretString>,
    /// Bound on a graceful shutdown (seconds in the configuration).
    pub shutdown_timeout: Duration,
    /// What a client connection may take from the relay.
    pub limits: ConnectionLimits,
    /// Failed authentications per client address and minute before it gets 429.
    pub max_auth_failures_per_minute: u32,
    /// The header naming the client address behind a proxy; `None`: the peer address.
    pub client_ip_header: Option<String>,
}

/// What one client may take from the relay before it is cut off.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; past it a fast 503.
    pub max_connections: usize,
    /// Time to send a request head, from opening or the previous answer (seconds in the configuration).
    pub header_timeout: Duration,
    /// Time one request may take, body included (seconds in the configuration).
    pub request_timeout: Duration,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
}

impl RelaySettings {
    pub(super) fn read(r: &mut Reader) -> Self {
        let public_url = r.parse("relay.public_url", ServiceUrl::parse);
        let mut grant_type: Option<GrantType> =
            r.one_of("relay.inbound_grant_type", "`client_credentials`, `password`");
        if grant_type == Some(GrantType::JwtBearer) {
            r.problems.push(
                "relay.inbound_grant_type",
                "`jwt_bearer` is not one of `client_credentials`, `password` (DR's webhook signs in to the relay with these two only)",
            );
            grant_type = None;
        }
        let listen = r.text("relay.listen");
        let body_limit_bytes: usize = r.get("relay.body_limit_bytes");
        let token_ttl_secs: u64 = r.get("relay.inbound_token_ttl_secs");
        let shutdown_timeout_secs: u64 = r.get("relay.shutdown_timeout_secs");
        let max_connections: usize = r.get("relay.max_connections");
        let header_timeout_secs: u64 = r.get("relay.header_timeout_secs");
        let request_timeout_secs: u64 = r.get("relay.request_timeout_secs");
        let max_header_bytes: usize = r.get("relay.max_header_bytes");
        let max_auth_failures_per_minute: u32 = r.get("relay.max_auth_failures_per_minute");
        let client_ip_header = r
            .optional_text("relay.client_ip_header")
            .map(|h| h.to_ascii_lowercase());
        let basic_username = r.optional_text("relay.basic_username");
        let basic_password = r.secret("relay.basic_password");
        let token_key = r.secret("relay.inbound_token_key");
        let admin_token = r.secret("relay.admin_token");
        let client_id = r.optional_text("relay.inbound_client_id");
        let client_secret = r.secret("relay.inbound_client_secret");
        let username = r.optional_text("relay.inbound_username");
        let password = r.secret("relay.inbound_password");
        let c = &mut r.problems;
        if let Some(url) = &public_url
            && (url.url().path() != "/" || url.url().query().is_some())
        {
            c.push(
                "relay.public_url",
                "must be the relay's base URL without a path (the relay adds its own paths)",
            );
        }
        if !is_host_and_port(listen.trim()) {
            c.push(
                "relay.listen",
                format!("`{listen}` is not a host:port address such as 127.0.0.1:8080, localhost:8080 or [::]:8080"),
            );
        }
        if body_limit_bytes < 1024 {
            c.push("relay.body_limit_bytes", "must be at least 1024");
        }
        c.positive("relay.inbound_token_ttl_secs", token_ttl_secs);
        c.positive("relay.max_connections", max_connections as u64);
        c.positive("relay.header_timeout_secs", header_timeout_secs);
        c.positive("relay.request_timeout_secs", request_timeout_secs);
        c.positive(
            "relay.max_auth_failures_per_minute",
            u64::from(max_auth_failures_per_minute),
        );
        if !(1024..=1024 * 1024).contains(&max_header_bytes) {
            c.push("relay.max_header_bytes", "must be between 1024 and 1048576");
        }
        if let Some(name) = &client_ip_header
            && axum::http::HeaderName::from_bytes(name.as_bytes()).is_err()
        {
            c.push("relay.client_ip_header", format!("`{name}` is not a header name"));
        }
        if basic_username.is_some() != basic_password.is_some() {
            c.push(
                "relay.basic_password",
                "relay.basic_username and relay.basic_password go together",
            );
        }
        // Secrets the relay checks must resist guessing (failed attempts are throttled as well).
        for (key, secret, least) in [
            ("relay.admin_token", &admin_token, 24),
            ("relay.inbound_token_key", &token_key, 32),
            ("relay.inbound_client_secret", &client_secret, MIN_SECRET_CHARS),
            ("relay.inbound_password", &password, MIN_SECRET_CHARS),
            ("relay.basic_password", &basic_password, MIN_SECRET_CHARS),
        ] {
            if secret
                .as_ref()
                .is_some_and(|s| s.expose_secret().chars().count() < least)
            {
                c.push(key, format!("must be at least {least} characters"));
            }
        }
        RelaySettings {
            listen: listen.trim().to_owned(),
            public_url,
            body_limit_bytes,
            inbound: InboundSettings {
                grant_type: grant_type.unwrap_or(GrantType::ClientCredentials),
                client_id,
                client_secret,
                username,
                password,
                token_key,
                token_ttl: Duration::from_secs(token_ttl_secs.max(1)),
                basic_username,
                basic_password,
            },
            admin_token,
            shutdown_timeout: Duration::from_secs(shutdown_timeout_secs),
            limits: ConnectionLimits {
                max_connections: max_connections.max(1),
                header_timeout: Duration::from_secs(header_timeout_secs.max(1)),
                request_timeout: Duration::from_secs(request_timeout_secs.max(1)),
                max_header_bytes: max_header_bytes.clamp(1024, 1024 * 1024),
            },
            max_auth_failures_per_minute: max_auth_failures_per_minute.max(1),
            client_ip_header,
        }
    }

    /// What `register --target relay` tells DR to present at the relay's token endpoint.
    pub fn inbound_oauth(&self) -> Result<InboundOAuth, ConfigProblems> {
        let mut c = Collector::default();
        let why = "for DR's OAuth transport to the relay";
        let inbound = &self.inbound;
        let public_url = c
            .require(
                "relay.public_url",
                &self.public_url,
                "(the https:// URL DR reaches the relay at)",
            )
            .cloned();
        let client_id = c.require("relay.inbound_client_id", &inbound.client_id, why).cloned();
        let client_secret = c
            .require("relay.inbound_client_secret", &inbound.client_secret, why)
            .cloned();
        let user = match inbound.grant_type {
            GrantType::ClientCredentials | GrantType::JwtBearer => None,
            GrantType::Password => {
                let why = "with relay.inbound_grant_type = \"password\"";
                let u = c.require("relay.inbound_username", &inbound.username, why).cloned();
                let p = c.require("relay.inbound_password", &inbound.password, why).cloned();
                u.zip(p)
            }
        };
        match (public_url, client_id, client_secret) {
            (Some(public_url), Some(client_id), Some(client_secret)) => c.finish(InboundOAuth {
                public_url,
                client_id,
                client_secret,
                grant_type: inbound.grant_type,
                user,
            }),
            _ => Err(ConfigProblems(c.0)),
        }
    }

    /// What running the relay needs: a way to authenticate DR.
    pub(super) fn require_for_relay(&self, c: &mut Collector) {
        let inbound = &self.inbound;
        let has_oauth = inbound.client_id.is_some();
        let has_basic = inbound.basic_username.is_some();
        if !has_oauth && !has_basic {
            c.push("relay.inbound_client_id", "is required: the relay accepts events only from an authenticated DR (set inbound_client_id/inbound_client_secret/inbound_token_key, or basic_username/basic_password)");
        }
        if has_oauth {
            if inbound.client_secret.is_none() {
                c.push(
                    "relay.inbound_client_secret",
                    "is required with relay.inbound_client_id",
                );
            }
            if inbound.token_key.is_none() {
                c.push_new(
                    "relay.inbound_token_key",
                    "is required with relay.inbound_client_id (at least 32 characters; shared by every relay instance)",
                );
            }
            if inbound.grant_type == GrantType::Password && (inbound.username.is_none() || inbound.password.is_none()) {
                c.push("relay.inbound_username", "relay.inbound_username and relay.inbound_password are required with relay.inbound_grant_type = \"password\"");
            }
        }
    }
}
