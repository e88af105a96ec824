//! The Salesforce targets: one org, or two — a sandbox for DR's test events and production for
//! live ones — served by one relay.
//!
//! One org is configured in `[salesforce]` as always. Two are configured in `[salesforce.test]`
//! and `[salesforce.live]`, each with its own org URL, grant and credentials; the keys every org
//! shares (grant type, limits, timeouts, the Apex path) may stay in `[salesforce]`. An org's
//! own keys at the top beside mode sections would be ambiguous — which org do they belong to? —
//! so they are refused, as is the same org named for both modes: the two must never mix.

use super::problems::{Collector, Reader};
use super::salesforce::SalesforceSettings;
use crate::domain::Mode;

/// Keys that identify one org and its credentials: never shared between two targets.
const ORG_KEYS: [&str; 7] = [
    "my_domain_url",
    "token_url",
    "client_id",
    "client_secret",
    "username",
    "password",
    "mode",
];

/// One or two Salesforce orgs, each bound to a DR mode; never two of the same mode.
#[derive(Debug)]
pub struct SalesforceTargets(Vec<SalesforceSettings>);

impl SalesforceTargets {
    pub(super) fn read(r: &mut Reader) -> Self {
        let sections: Vec<Mode> = Mode::ALL
            .into_iter()
            .filter(|mode| r.is_set(&format!("salesforce.{mode}")))
            .collect();
        if sections.is_empty() {
            return Self(vec![SalesforceSettings::read(r, "salesforce", None)]);
        }
        for name in ORG_KEYS {
            let key = format!("salesforce.{name}");
            if r.is_set(&key) {
                let modes: Vec<String> = sections.iter().map(|m| format!("salesforce.{m}.{name}")).collect();
                r.problems.push(
                    &key,
                    format!(
                        "with [salesforce.test] / [salesforce.live] each org has its own section: move it to {}",
                        modes.join(" or ")
                    ),
                );
            }
        }
        // `environment` at the top is what the env files set for one org; a mode section has its own.
        r.is_set("salesforce.environment");
        let targets: Vec<SalesforceSettings> = sections
            .into_iter()
            .map(|mode| SalesforceSettings::read(r, &format!("salesforce.{mode}"), Some(mode)))
            .collect();
        if let [test, live] = targets.as_slice()
            && let (Some(a), Some(b)) = (&test.my_domain_url, &live.my_domain_url)
            && a.host().eq_ignore_ascii_case(b.host())
        {
            r.problems.push(
                &live.key("my_domain_url"),
                format!(
                    "is the same org as {}: test and live events must go to different orgs (a sandbox and production)",
                    test.key("my_domain_url")
                ),
            );
        }
        Self(targets)
    }

    pub fn iter(&self) -> impl Iterator<Item = &SalesforceSettings> {
        self.0.iter()
    }

    /// The target that takes `mode`'s events, if one does.
    pub fn for_mode(&self, mode: Mode) -> Option<&SalesforceSettings> {
        self.0.iter().find(|t| t.mode == mode)
    }

    /// The modes some target takes.
    pub fn modes(&self) -> Vec<Mode> {
        self.0.iter().map(|t| t.mode).collect()
    }

    /// The first target: the one org of a single-target configuration.
    pub fn primary(&self) -> &SalesforceSettings {
        &self.0[0]
    }

    /// Whether the configuration names one target per mode section (`[salesforce.test]`, ...).
    pub fn by_mode_sections(&self) -> bool {
        self.primary().section != "salesforce"
    }

    /// What delivering to every target needs.
    pub(super) fn require_for_delivery(&self, c: &mut Collector) {
        for target in &self.0 {
            if target.kind_is_valid(c) {
                target.require_for_delivery(c);
            }
        }
    }
}
