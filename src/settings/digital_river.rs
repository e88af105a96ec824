//! `[digital_river]`: the DR API, the subscription, and the signing secrets.
//!
//! DR runs each merchant in two modes, each with its own secret key and its own webhooks (so its
//! own signing secrets). One mode's key and secrets go at the top of the section; a relay serving
//! both modes gives each its own in `[digital_river.test]` and `[digital_river.live]`, so that a
//! test event signed with the live webhook's secret is refused.

use std::time::Duration;

use super::problems::{Collector, ConfigProblems, Reader};
use crate::digital_river::ApiOptions;
use crate::domain::{EventType, Mode, ServiceUrl};
use crate::support::http::Backoff;
use secrecy::{ExposeSecret, SecretString};

/// The smallest signature tolerance that does not refuse DR's own fresh events.
const MIN_SIGNATURE_TOLERANCE_SECS: u64 = 30;

#[derive(Debug)]
pub struct DigitalRiverSettings {
    /// Base URL of DR's API (`https://api.digitalriver.com`).
    pub api_base_url: ServiceUrl,
    /// DR secret key; required by the commands that call DR's API.
    pub api_key: Option<SecretString>,
    /// `apiVersion` of the webhook `register` creates: `default` or a date.
    pub api_version: String,
    /// The subscription, and the types the relay delivers (others are ignored).
    pub event_types: Vec<EventType>,
    /// Signing secrets, current first; empty: signatures are not checked.
    pub signing_secrets: Vec<SecretString>,
    /// Maximum age of a signature timestamp (seconds in the configuration).
    pub signature_tolerance: Duration,
    /// Timeout of one DR API call (seconds in the configuration).
    pub request_timeout: Duration,
    /// Retries of a DR API call after a 429, a 5xx or a connection error.
    pub max_retries: u32,
    /// Each mode's own key and signing secrets (`[digital_river.test]`, `[digital_river.live]`).
    pub modes: Vec<ModeKeys>,
    /// Delay before the first such retry, doubling after (milliseconds in the configuration).
    pub retry_base_delay: Duration,
}

/// One DR mode's secret key and webhook signing secrets.
#[derive(Debug, Default)]
pub struct ModeKeys {
    pub mode: Option<Mode>,
    /// The mode's secret key (`sk_test_…` in test mode).
    pub api_key: Option<SecretString>,
    /// The signing secrets of the mode's webhook, current first.
    pub signing_secrets: Vec<SecretString>,
}

fn read_signing_secrets(r: &mut Reader, key: &str) -> Vec<SecretString> {
    let secrets: Vec<SecretString> = r
        .list(key)
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .map(SecretString::from)
        .collect();
    if secrets.len() > 2 {
        r.problems.push(
            key,
            "holds more than two secrets; keep the current one and, during a rotation, the previous one",
        );
    }
    secrets
}

impl ModeKeys {
    fn read(r: &mut Reader, mode: Mode) -> Self {
        let section = format!("digital_river.{mode}");
        let api_key = r.secret(&format!("{section}.api_key"));
        if let Some(key) = &api_key
            && Mode::of_api_key(key.expose_secret()) != mode
        {
            r.problems.push(
                &format!("{section}.api_key"),
                format!(
                    "is a {} key but this is the {mode} mode's section (test keys start with sk_test_)",
                    Mode::of_api_key(key.expose_secret())
                ),
            );
        }
        Self {
            mode: Some(mode),
            api_key,
            signing_secrets: read_signing_secrets(r, &format!("{section}.signing_secrets")),
        }
    }
}

impl DigitalRiverSettings {
    /// The signing secrets that sign `mode`'s events: the mode's own, else the section's.
    pub fn signing_secrets_for(&self, mode: Mode) -> &[SecretString] {
        match self.mode_keys(mode) {
            Some(keys) if !keys.signing_secrets.is_empty() => &keys.signing_secrets,
            _ => &self.signing_secrets,
        }
    }

    fn mode_keys(&self, mode: Mode) -> Option<&ModeKeys> {
        self.modes.iter().find(|k| k.mode == Some(mode))
    }

    /// The DR key of `mode`: the mode's own, else the section's when it is a key of that mode.
    pub fn api_key_for(&self, mode: Mode) -> Result<&SecretString, ConfigProblems> {
        if let Some(key) = self.mode_keys(mode).and_then(|k| k.api_key.as_ref()) {
            return Ok(key);
        }
        match &self.api_key {
            Some(key) if Mode::of_api_key(key.expose_secret()) == mode => Ok(key),
            _ => Err(ConfigProblems::single(
                &format!("digital_river.{mode}.api_key"),
                format!(
                    "is required to register the {mode} mode's webhook (the DR secret key of {mode} mode{})",
                    if mode == Mode::Test { ", sk_test_..." } else { "" }
                ),
            )),
        }
    }

    pub(super) fn read(r: &mut Reader) -> Self {
        let raw_base_url = r.text("digital_river.api_base_url");
        let api_base_url = r
            .problems
            .parse("digital_river.api_base_url", ServiceUrl::parse(&raw_base_url));
        let raw_types = r.list("digital_river.event_types");
        let signing_secrets = read_signing_secrets(r, "digital_river.signing_secrets");
        let modes: Vec<ModeKeys> = Mode::ALL.into_iter().map(|mode| ModeKeys::read(r, mode)).collect();
        let api_version = r.text("digital_river.api_version").trim().to_owned();
        let signature_tolerance_secs: u64 = r.get("digital_river.signature_tolerance_secs");
        let request_timeout_secs: u64 = r.get("digital_river.request_timeout_secs");
        let max_retries = r.get("digital_river.max_retries");
        let retry_base_delay_ms: u64 = r.get("digital_river.retry_base_delay_ms");
        let api_key = r.secret("digital_river.api_key");
        let c = &mut r.problems;
        if signature_tolerance_secs < MIN_SIGNATURE_TOLERANCE_SECS {
            c.push(
                "digital_river.signature_tolerance_secs",
                format!(
                    "{signature_tolerance_secs} s would refuse events DR signed moments ago (its clock and retries \
                     differ from this machine's by seconds): use {MIN_SIGNATURE_TOLERANCE_SECS} or more (default 300)"
                ),
            );
        }
        let mut event_types = Vec::new();
        for raw in raw_types.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            if !EventType::SUPPORTED.contains(&raw) {
                let hint = match super::problems::nearest(raw, &EventType::SUPPORTED) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("the DR app handles {}", EventType::SUPPORTED.join(", ")),
                };
                c.push(
                    "digital_river.event_types",
                    format!("`{raw}` is not one of the order events the DR Salesforce app handles; {hint}"),
                );
                continue;
            }
            if let Some(t) = c.parse("digital_river.event_types", EventType::parse(raw))
                && !event_types.contains(&t)
            {
                event_types.push(t);
            }
        }
        if raw_types.iter().all(|t| t.trim().is_empty()) {
            c.push(
                "digital_river.event_types",
                format!(
                    "is empty; subscribe to at least one event type (default: {})",
                    EventType::SUPPORTED.join(", ")
                ),
            );
        }
        if api_version != "default" && !is_dated_version(&api_version) {
            c.push(
                "digital_river.api_version",
                format!("`{api_version}` is neither \"default\" nor a date such as 2021-12-13"),
            );
        }
        if !signing_secrets.is_empty() && modes.iter().all(|k| !k.signing_secrets.is_empty()) {
            c.push(
                "digital_river.signing_secrets",
                "is never used: digital_river.test.signing_secrets and digital_river.live.signing_secrets are both set",
            );
        }
        DigitalRiverSettings {
            api_base_url: api_base_url
                .unwrap_or_else(|| ServiceUrl::parse("https://api.digitalriver.com").expect("constant")),
            api_key,
            api_version,
            event_types,
            signing_secrets,
            signature_tolerance: Duration::from_secs(signature_tolerance_secs),
            request_timeout: Duration::from_secs(request_timeout_secs.max(1)),
            max_retries,
            modes,
            retry_base_delay: Duration::from_millis(retry_base_delay_ms),
        }
    }

    pub fn api_key(&self) -> Result<&SecretString, ConfigProblems> {
        self.api_key.as_ref().ok_or_else(|| {
            ConfigProblems::single(
                "digital_river.api_key",
                "is required (DR secret key, sk_test_... or live)",
            )
        })
    }

    /// How the DR API client reaches DR.
    pub fn api_options(&self) -> ApiOptions {
        ApiOptions {
            base_url: self.api_base_url.clone(),
            request_timeout: self.request_timeout,
            retry: Backoff {
                retries: self.max_retries,
                base: self.retry_base_delay,
            },
        }
    }

    pub(super) fn require_api_key(&self, c: &mut Collector) {
        if self.api_key.is_none() && self.modes.iter().all(|k| k.api_key.is_none()) {
            c.push(
                "digital_river.api_key",
                "is required (DR secret key, sk_test_... in test mode)",
            );
        }
    }
}

fn is_dated_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, ch)| i == 4 || i == 7 || ch.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_versions_are_recognised() {
        assert!(is_dated_version("2021-12-13"));
        assert!(!is_dated_version("2021-1213"));
        assert!(!is_dated_version("latest"));
    }
}
