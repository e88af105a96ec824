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
            && a.join_path("").eq_ignore_ascii_case(&b.join_path(""))
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

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::super::{LoadOptions, Purpose, Settings, load};
    use crate::domain::Mode;
    use crate::salesforce::SalesforceEnvironment;

    const SANDBOX: &str = "https://acme--uat.sandbox.my.salesforce.com";
    const PRODUCTION: &str = "https://acme.my.salesforce.com";

    fn org(mode: &str, domain: &str) -> Vec<(String, String)> {
        [
            ("my_domain_url", domain),
            ("client_id", "3MVG9consumerKey"),
            ("client_secret", "consumer-secret"),
            ("username", "integration@acme.com"),
            ("password", "passwordTOKEN"),
        ]
        .into_iter()
        .map(|(k, v)| (format!("salesforce.{mode}.{k}"), v.to_owned()))
        .collect()
    }

    fn two_orgs(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut all = org("test", SANDBOX);
        all.extend(org("live", PRODUCTION));
        all.extend([
            ("digital_river.test.api_key".to_owned(), "sk_test_abc".to_owned()),
            ("digital_river.live.api_key".to_owned(), "sk_live_abc".to_owned()),
        ]);
        all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        all
    }

    fn load_with(overrides: Vec<(String, String)>, purpose: Purpose) -> Result<Settings, Vec<String>> {
        let empty = tempfile::tempdir().unwrap();
        let options = LoadOptions {
            config_dir: Some(empty.path().to_owned()),
            overrides,
            ignore_environment: true,
            ..Default::default()
        };
        load(&options, purpose).map_err(|p| p.0.iter().map(|p| format!("{}: {}", p.key, p.message)).collect())
    }

    #[test]
    fn two_mode_sections_make_two_targets_bound_to_their_modes() {
        let settings = load_with(
            two_orgs(&[
                ("salesforce.max_in_flight", "6"),
                ("salesforce.live.request_timeout_secs", "9"),
            ]),
            Purpose::Salesforce,
        )
        .expect("valid");
        let targets = &settings.salesforce;
        assert!(targets.by_mode_sections());
        assert_eq!(targets.modes(), vec![Mode::Test, Mode::Live]);
        let test = targets.for_mode(Mode::Test).unwrap();
        let live = targets.for_mode(Mode::Live).unwrap();
        assert_eq!(test.environment, SalesforceEnvironment::Sandbox);
        assert_eq!(live.environment, SalesforceEnvironment::Production);
        assert_eq!(
            test.my_domain_url.as_ref().unwrap().host(),
            "acme--uat.sandbox.my.salesforce.com"
        );
        assert_eq!(live.my_domain_url.as_ref().unwrap().host(), "acme.my.salesforce.com");
        assert_eq!(
            (test.max_in_flight, live.max_in_flight),
            (6, 6),
            "shared keys fall back"
        );
        assert_eq!(live.request_timeout.as_secs(), 9);
        assert_eq!(test.request_timeout.as_secs(), 30, "the default");
        assert_eq!(
            live.credentials().unwrap().token_url.base(),
            "https://login.salesforce.com/services/oauth2/token"
        );
        let dr = &settings.digital_river;
        assert_eq!(dr.api_key_for(Mode::Live).unwrap().expose_secret(), "sk_live_abc");
        assert_eq!(dr.api_key_for(Mode::Test).unwrap().expose_secret(), "sk_test_abc");
    }

    #[test]
    fn one_org_keeps_working_as_before() {
        let mut overrides: Vec<(String, String)> = org("x", SANDBOX)
            .into_iter()
            .map(|(k, v)| (k.replace("salesforce.x.", "salesforce."), v))
            .collect();
        overrides.push(("digital_river.api_key".into(), "sk_test_abc".into()));
        let settings = load_with(overrides, Purpose::Check).expect("valid");
        assert!(!settings.salesforce.by_mode_sections());
        assert_eq!(settings.salesforce.modes(), vec![Mode::Test]);
        assert_eq!(settings.salesforce.primary().section, "salesforce");
        assert!(
            settings.digital_river.api_key_for(Mode::Live).is_err(),
            "a test key is not a live key"
        );
        assert!(settings.dr_key(Mode::Test).is_ok());
    }

    #[test]
    fn each_mistake_with_two_orgs_is_named_by_its_key() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (
                &[("salesforce.client_id", "shared")],
                "salesforce.client_id",
                "move it to salesforce.test.client_id or salesforce.live.client_id",
            ),
            (
                &[("salesforce.live.my_domain_url", SANDBOX)],
                "salesforce.live.my_domain_url",
                "same org",
            ),
            (
                &[("salesforce.live.client_secret", "")],
                "salesforce.live.client_secret",
                "is required",
            ),
            (
                &[("digital_river.live.api_key", "sk_test_oops")],
                "digital_river.live.api_key",
                "is a test key",
            ),
            (
                &[
                    ("digital_river.signing_secrets", "whsec_a"),
                    ("digital_river.test.signing_secrets", "whsec_t"),
                    ("digital_river.live.signing_secrets", "whsec_l"),
                ],
                "digital_river.signing_secrets",
                "never used",
            ),
            (
                &[("salesforce.live.enviroment", "production")],
                "salesforce.live.enviroment",
                "did you mean",
            ),
        ];
        for (set, key, words) in cases {
            let problems = load_with(two_orgs(set), Purpose::Relay).expect_err("refused");
            assert!(
                problems
                    .iter()
                    .any(|p| p.starts_with(&format!("{key}:")) && p.contains(words)),
                "{key} / {words}: {problems:#?}"
            );
        }
    }

    #[test]
    fn each_mode_has_its_own_signing_secrets() {
        let settings = load_with(
            two_orgs(&[
                ("digital_river.test.signing_secrets", "whsec_test"),
                ("digital_river.live.signing_secrets", "whsec_live,whsec_live_old"),
            ]),
            Purpose::Salesforce,
        )
        .expect("valid");
        let of = |mode| -> Vec<String> {
            settings
                .digital_river
                .signing_secrets_for(mode)
                .iter()
                .map(|s| s.expose_secret().to_owned())
                .collect()
        };
        assert_eq!(of(Mode::Test), ["whsec_test"]);
        assert_eq!(of(Mode::Live), ["whsec_live", "whsec_live_old"]);
    }

    #[test]
    fn a_mode_sections_secret_may_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("live-password");
        std::fs::write(&file, "fromTheFile\n").unwrap();
        let mut overrides = two_orgs(&[]);
        overrides.retain(|(k, _)| k != "salesforce.live.password");
        overrides.push(("salesforce.live.password_file".into(), file.display().to_string()));
        let settings = load_with(overrides, Purpose::Salesforce).expect("valid");
        let live = settings.salesforce.for_mode(Mode::Live).unwrap();
        assert_eq!(live.password.as_ref().unwrap().expose_secret(), "fromTheFile");
    }
}
