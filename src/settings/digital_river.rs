//! `[digital_river]`: the DR API, the subscription, and the signing secrets.

use std::time::Duration;

use super::problems::{Collector, ConfigProblems, Reader};
use crate::digital_river::ApiOptions;
use crate::domain::{EventType, ServiceUrl};
use crate::support::http::Backoff;
use secrecy::SecretString;

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
    /// Delay before the first such retry, doubling after (milliseconds in the configuration).
    pub retry_base_delay: Duration,
}

impl DigitalRiverSettings {
    pub(super) fn read(r: &mut Reader) -> Self {
        let raw_base_url = r.text("digital_river.api_base_url");
        let api_base_url = r
            .problems
            .parse("digital_river.api_base_url", ServiceUrl::parse(&raw_base_url));
        let raw_types = r.list("digital_river.event_types");
        let raw_secrets = r.list("digital_river.signing_secrets");
        let api_version = r.text("digital_river.api_version").trim().to_owned();
        let signature_tolerance_secs: u64 = r.get("digital_river.signature_tolerance_secs");
        let request_timeout_secs: u64 = r.get("digital_river.request_timeout_secs");
        let max_retries = r.get("digital_river.max_retries");
        let retry_base_delay_ms: u64 = r.get("digital_river.retry_base_delay_ms");
        let api_key = r.secret("digital_river.api_key");
        let c = &mut r.problems;
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
        let signing_secrets: Vec<SecretString> = raw_secrets
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .map(SecretString::from)
            .collect();
        if signing_secrets.len() > 2 {
            c.push(
                "digital_river.signing_secrets",
                "holds more than two secrets; keep the current one and, during a rotation, the previous one",
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
        if self.api_key.is_none() {
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
