//! `trigger` and `healthcheck`: talking to a running relay from the command line.
//!
//! `trigger` sends realistic sample events to a relay exactly as Digital River would (what
//! `stripe trigger` is to Stripe): with the relay's own inbound credentials from the
//! configuration and a signature by the current signing secret, so a wrong secret shows up as the
//! 401 it is. `healthcheck` is the container's health probe: the image has no curl.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::OpsError;
use super::samples;
use super::sender::{DrSender, SenderAuth};
use crate::domain::{EventType, Mode};
use crate::http::paths;
use crate::salesforce::GrantType;
use crate::settings::Settings;
use crate::support::http::client_builder;
use crate::support::text::error_chain;

#[derive(Debug, Clone)]
pub struct TriggerOptions {
    pub event_type: EventType,
    pub count: u32,
    /// The order id every event carries; a fresh one per event when `None`.
    pub order: Option<String>,
    /// The relay's base URL; from the configuration when `None`.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerReport {
    pub url: String,
    pub sent: u32,
    pub acknowledged: u32,
    pub seconds: f64,
    pub per_second: f64,
}

/// The relay's base URL for commands on this machine: `relay.public_url`, else `relay.listen`
/// (an unspecified address becomes loopback).
pub fn local_relay_url(settings: &Settings) -> String {
    if let Some(url) = &settings.relay.public_url {
        return url.base().trim_end_matches('/').to_owned();
    }
    let listen = settings.relay.listen.as_str();
    let local = listen.replace("0.0.0.0:", "127.0.0.1:").replace("[::]:", "[::1]:");
    format!("http://{local}")
}

/// Sends `count` sample events; `progress(n)` after each acknowledged one.
pub async fn trigger(
    settings: &Settings,
    options: TriggerOptions,
    mut progress: impl FnMut(u32),
) -> Result<TriggerReport, OpsError> {
    let url = options.url.clone().unwrap_or_else(|| local_relay_url(settings));
    let inbound = &settings.relay.inbound;
    let auth = match (
        &inbound.client_id,
        &inbound.client_secret,
        &inbound.basic_username,
        &inbound.basic_password,
    ) {
        (Some(client_id), Some(client_secret), _, _) => SenderAuth::OAuth {
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            user: match inbound.grant_type {
                GrantType::Password => inbound.username.clone().zip(inbound.password.clone()),
                GrantType::ClientCredentials | GrantType::JwtBearer => None,
            },
        },
        (_, _, Some(user), Some(password)) => SenderAuth::Basic {
            user: user.clone(),
            password: password.clone(),
        },
        _ => SenderAuth::None,
    };
    // The samples are test-mode events (`liveMode: false`): signed with the test mode's secret.
    let secret = settings.digital_river.signing_secrets_for(Mode::Test).first().cloned();
    let sender = DrSender::new(&url, auth, secret)?;
    let started = Instant::now();
    let mut acknowledged = 0;
    for _ in 0..options.count {
        let body = samples::fresh(&options.event_type, options.order.as_deref().or(Some(&fresh_order())))?;
        let answer = sender.send(&body).await?;
        if !(200..300).contains(&answer.status) {
            return Err(OpsError::Refused(format!(
                "the relay at {url} answered {} {} after {acknowledged} acknowledged event(s){}",
                answer.status,
                answer.body,
                match answer.status {
                    401 =>
                        ": check the inbound credentials (relay.inbound_client_id / _secret, or basic_*) and digital_river.signing_secrets",
                    _ => "",
                }
            )));
        }
        acknowledged += 1;
        progress(acknowledged);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(TriggerReport {
        url,
        sent: options.count,
        acknowledged,
        seconds,
        per_second: f64::from(acknowledged) / seconds.max(1e-9),
    })
}

fn fresh_order() -> String {
    format!("{:012}", rand::random::<u64>() % 1_000_000_000_000)
}

/// `Ok` when the relay at `url` answers `/readyz` with 200.
pub async fn healthcheck(url: &str) -> Result<(), OpsError> {
    let http = client_builder(Duration::from_secs(3))
        .build()
        .map_err(|e| OpsError::Other(e.into()))?;
    // `127.0.0.1:18080` (relay.listen's form) means the relay on this machine, over HTTP.
    let base = if url.contains("://") {
        url.trim_end_matches('/').to_owned()
    } else {
        format!("http://{}", url.trim_end_matches('/'))
    };
    let target = format!("{base}{}", paths::READYZ);
    let response = http
        .get(&target)
        .send()
        .await
        .map_err(|e| OpsError::Unreachable(format!("{target}: {}", error_chain(&e))))?;
    match response.status().as_u16() {
        200 => Ok(()),
        status => Err(OpsError::Unreachable(format!(
            "{target} answered {status}: {}",
            response.text().await.unwrap_or_default()
        ))),
    }
}
