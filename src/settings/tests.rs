//! Every validation rule as one row: the values an admin set, and the key and words the admin
//! must see. The end-to-end suite (tests/integration/validation.rs) checks a few of them through
//! the binary: exit code 2, every problem listed, nothing written.

use super::*;

const SANDBOX_DOMAIN: &str = "https://acme--uat.sandbox.my.salesforce.com";

/// A complete sandbox configuration with the password grant.
fn valid() -> Vec<(&'static str, &'static str)> {
    vec![
        ("digital_river.api_key", "sk_test_0123456789abcdef"),
        ("salesforce.my_domain_url", SANDBOX_DOMAIN),
        ("salesforce.client_id", "3MVG9consumerKey"),
        ("salesforce.client_secret", "consumer-secret-value"),
        ("salesforce.username", "integration@acme.com.uat"),
        ("salesforce.password", "passwordSECURITYTOKEN"),
        ("relay.inbound_client_id", "dr-client"),
        ("relay.inbound_client_secret", "inbound-secret-value"),
        ("relay.inbound_token_key", "0123456789abcdef0123456789abcdef"),
        ("relay.public_url", "https://relay.acme.example"),
    ]
}

fn problems(changes: &[(&str, &str)], purpose: Purpose) -> Vec<Problem> {
    let mut overrides: Vec<(String, String)> = valid()
        .into_iter()
        .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    overrides.extend(changes.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let empty = tempfile::tempdir().unwrap();
    let options = LoadOptions {
        config_dir: Some(empty.path().to_owned()),
        overrides,
        ..Default::default()
    };
    match load(&options, purpose) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.0,
    }
}

struct Case {
    name: &'static str,
    set: &'static [(&'static str, &'static str)],
    purpose: Purpose,
    /// Each key that must have a problem, and words its message must hold.
    expect: &'static [(&'static str, &'static str)],
}

const REGISTER: Purpose = Purpose::Register(RegisterTarget::Salesforce);

const CASES: &[Case] = &[
    Case {
        name: "a signature tolerance that refuses DR's own events is refused",
        set: &[("digital_river.signature_tolerance_secs", "0")],
        purpose: Purpose::Relay,
        expect: &[("digital_river.signature_tolerance_secs", "use 30 or more")],
    },
    Case {
        name: "a jwt_bearer grant needs a key and a user, not a secret",
        set: &[
            ("salesforce.grant_type", "jwt_bearer"),
            ("salesforce.client_secret", ""),
            ("salesforce.password", ""),
            ("salesforce.username", ""),
        ],
        purpose: Purpose::Relay,
        expect: &[
            ("salesforce.private_key_file", "salesforce keygen"),
            ("salesforce.username", "jwt_bearer"),
        ],
    },
    Case {
        name: "a notification channel names what it lacks",
        set: &[
            ("notify.channels.ops.kind", "webhook"),
            ("notify.channels.mail.kind", "email"),
            ("notify.channels.pager.kind", "sms"),
        ],
        purpose: Purpose::Relay,
        expect: &[
            ("notify.channels.ops.url", "required"),
            ("notify.channels.mail.host", "required"),
            ("notify.channels.mail.to", "required"),
            ("notify.channels.pager.kind", "not one of `webhook`, `email`"),
        ],
    },
    Case {
        name: "a Lightning URL is refused, naming the My Domain form",
        set: &[(
            "salesforce.my_domain_url",
            "https://acme--uat.sandbox.lightning.force.com",
        )],
        purpose: REGISTER,
        expect: &[("salesforce.my_domain_url", SANDBOX_DOMAIN)],
    },
    Case {
        name: "client credentials on the login host",
        set: &[
            ("salesforce.grant_type", "client_credentials"),
            (
                "salesforce.token_url",
                "https://test.salesforce.com/services/oauth2/token",
            ),
        ],
        purpose: REGISTER,
        expect: &[
            ("salesforce.grant_type", "salesforce.token_url"),
            ("salesforce.grant_type", "My Domain"),
        ],
    },
    Case {
        name: "client credentials without a My Domain",
        set: &[
            ("salesforce.grant_type", "client_credentials"),
            ("salesforce.my_domain_url", ""),
        ],
        purpose: REGISTER,
        expect: &[("salesforce.my_domain_url", "client_credentials")],
    },
    Case {
        name: "a sandbox with the production token host",
        set: &[(
            "salesforce.token_url",
            "https://login.salesforce.com/services/oauth2/token",
        )],
        purpose: REGISTER,
        expect: &[("salesforce.token_url", "salesforce.environment = \"sandbox\"")],
    },
    Case {
        name: "production with the sandbox token host",
        set: &[
            ("salesforce.environment", "production"),
            ("salesforce.my_domain_url", "https://acme.my.salesforce.com"),
            (
                "salesforce.token_url",
                "https://test.salesforce.com/services/oauth2/token",
            ),
        ],
        purpose: REGISTER,
        expect: &[("salesforce.token_url", "salesforce.environment = \"production\"")],
    },
    Case {
        name: "production with a sandbox My Domain",
        set: &[("salesforce.environment", "production")],
        purpose: REGISTER,
        expect: &[("salesforce.my_domain_url", "sandbox host")],
    },
    Case {
        name: "plain http except for loopback",
        set: &[
            ("digital_river.api_base_url", "http://api.digitalriver.com"),
            ("salesforce.my_domain_url", "http://acme--uat.sandbox.my.salesforce.com"),
        ],
        purpose: REGISTER,
        expect: &[
            ("digital_river.api_base_url", "https://"),
            ("salesforce.my_domain_url", "https://"),
        ],
    },
    Case {
        name: "a misspelt key names the nearest one",
        set: &[("salesforce.client_idd", "3MVG9consumerKey")],
        purpose: Purpose::Store,
        expect: &[("salesforce.client_idd", "did you mean `salesforce.client_id`?")],
    },
    Case {
        name: "a misspelt section names the nearest key",
        set: &[("salesfroce.password", "x")],
        purpose: Purpose::Store,
        expect: &[("salesfroce.password", "did you mean `salesforce.password`?")],
    },
    Case {
        name: "a key like no other is still refused",
        set: &[("relay.colour_scheme", "dark")],
        purpose: Purpose::Store,
        expect: &[("relay.colour_scheme", "is not a setting")],
    },
    Case {
        name: "a misspelt event type names the real one",
        set: &[("digital_river.event_types", "order.acepted,order.complete")],
        purpose: REGISTER,
        expect: &[("digital_river.event_types", "did you mean `order.accepted`?")],
    },
    Case {
        name: "an event type the DR app does not handle",
        set: &[("digital_river.event_types", "refund.pending")],
        purpose: REGISTER,
        expect: &[("digital_river.event_types", "not one of the order events")],
    },
    Case {
        name: "a mode that is neither test nor live",
        set: &[("salesforce.mode", "production")],
        purpose: Purpose::Relay,
        expect: &[("salesforce.mode", "`test`, `live`")],
    },
    Case {
        name: "an empty event type list",
        set: &[("digital_river.event_types", "")],
        purpose: REGISTER,
        expect: &[("digital_river.event_types", "at least one event type")],
    },
    Case {
        name: "an api version that is neither default nor a date",
        set: &[("digital_river.api_version", "latest")],
        purpose: REGISTER,
        expect: &[("digital_river.api_version", "2021-12-13")],
    },
    Case {
        name: "more than two signing secrets",
        set: &[("digital_river.signing_secrets", "one,two,three")],
        purpose: Purpose::Relay,
        expect: &[("digital_river.signing_secrets", "more than two")],
    },
    Case {
        name: "values of the wrong type are each named, all at once",
        set: &[
            ("salesforce.max_in_flight", "eight"),
            ("delivery.breaker_threshold", "many"),
            ("relay.body_limit_bytes", "-5"),
        ],
        purpose: Purpose::Relay,
        expect: &[
            ("salesforce.max_in_flight", "eight"),
            ("delivery.breaker_threshold", "many"),
            ("relay.body_limit_bytes", "-5"),
        ],
    },
    Case {
        name: "more fixed deliveries at once than Salesforce allows",
        set: &[("salesforce.max_in_flight", "50"), ("salesforce.concurrency", "fixed")],
        purpose: Purpose::Relay,
        expect: &[("salesforce.max_in_flight", "10 concurrent")],
    },
    Case {
        name: "an adaptive ceiling past any org's limits",
        set: &[("salesforce.max_in_flight", "1000")],
        purpose: Purpose::Relay,
        expect: &[("salesforce.max_in_flight", "more than 256")],
    },
    Case {
        name: "a pacing scheme that does not exist, and a reserve that leaves the relay nothing",
        set: &[
            ("salesforce.concurrency", "turbo"),
            ("salesforce.api_reserve_percent", "95"),
        ],
        purpose: Purpose::Relay,
        expect: &[
            ("salesforce.concurrency", "`adaptive`, `fixed`"),
            ("salesforce.api_reserve_percent", "0 to 90"),
        ],
    },
    Case {
        name: "no deliveries at once",
        set: &[("salesforce.max_in_flight", "0")],
        purpose: Purpose::Relay,
        expect: &[("salesforce.max_in_flight", "at least 1")],
    },
    Case {
        name: "a webhook path outside apexrest",
        set: &[("salesforce.webhook_path", "/services/data/v60.0/")],
        purpose: Purpose::Relay,
        expect: &[("salesforce.webhook_path", "/services/apexrest/")],
    },
    Case {
        name: "a password grant without its user",
        set: &[("salesforce.username", ""), ("salesforce.password", "")],
        purpose: Purpose::Salesforce,
        expect: &[
            ("salesforce.username", "grant_type = \"password\""),
            ("salesforce.password", "required"),
        ],
    },
    Case {
        name: "a relay with no way to authenticate DR",
        set: &[("relay.inbound_client_id", "")],
        purpose: Purpose::Relay,
        expect: &[("relay.inbound_client_id", "authenticated DR")],
    },
    Case {
        name: "OAuth to the relay without a token key",
        set: &[("relay.inbound_token_key", "")],
        purpose: Purpose::Relay,
        expect: &[("relay.inbound_token_key", "32 characters")],
    },
    Case {
        name: "a short token key and a short admin token",
        set: &[("relay.inbound_token_key", "short"), ("relay.admin_token", "short")],
        purpose: Purpose::Relay,
        expect: &[("relay.inbound_token_key", "32"), ("relay.admin_token", "24")],
    },
    Case {
        name: "a guessable Basic password and client secret",
        set: &[
            ("relay.basic_username", "dr"),
            ("relay.basic_password", "x"),
            ("relay.inbound_client_secret", "short-secret"),
        ],
        purpose: Purpose::Relay,
        expect: &[
            ("relay.basic_password", "at least 16"),
            ("relay.inbound_client_secret", "at least 16"),
        ],
    },
    Case {
        name: "Basic auth with a user and no password",
        set: &[("relay.basic_username", "dr")],
        purpose: Purpose::Relay,
        expect: &[("relay.basic_password", "go together")],
    },
    Case {
        name: "a listen address that is not host:port",
        set: &[("relay.listen", "everywhere")],
        purpose: Purpose::Relay,
        expect: &[("relay.listen", "host:port")],
    },
    Case {
        name: "a public URL with a path",
        set: &[("relay.public_url", "https://relay.acme.example/webhooks/digitalriver")],
        purpose: Purpose::Register(RegisterTarget::Relay),
        expect: &[("relay.public_url", "without a path")],
    },
    Case {
        name: "registering the relay without its public URL",
        set: &[("relay.public_url", "")],
        purpose: Purpose::Register(RegisterTarget::Relay),
        expect: &[("relay.public_url", "required")],
    },
    Case {
        name: "a retry schedule entry that is not a duration",
        set: &[("delivery.retry_schedule", "0s,soon")],
        purpose: Purpose::Relay,
        expect: &[("delivery.retry_schedule", "soon")],
    },
    Case {
        name: "a collector address without a scheme",
        set: &[("telemetry.otlp_endpoint", "otel-collector:4318")],
        purpose: Purpose::Relay,
        expect: &[("telemetry.otlp_endpoint", "add http://")],
    },
    Case {
        name: "a sampling share over one",
        set: &[("telemetry.sample_ratio", "1.5")],
        purpose: Purpose::Relay,
        expect: &[("telemetry.sample_ratio", "0.0 (none) to 1.0")],
    },
    Case {
        name: "a storage URL of an unknown engine",
        set: &[("storage.url", "mysql://db/relay")],
        purpose: Purpose::Store,
        expect: &[("storage.url", "sqlite:// or postgres://")],
    },
    Case {
        name: "a SQLite URL without a path (an unset variable)",
        set: &[("storage.url", "sqlite://")],
        purpose: Purpose::Relay,
        expect: &[("storage.url", "lost on restart")],
    },
    Case {
        name: "an in-memory SQLite database",
        set: &[("storage.url", "sqlite://:memory:")],
        purpose: Purpose::Relay,
        expect: &[("storage.url", "in-memory")],
    },
    Case {
        name: "a SQLite URL naming a folder",
        set: &[("storage.url", "sqlite:///var/lib/")],
        purpose: Purpose::Store,
        expect: &[("storage.url", "folder")],
    },
    Case {
        name: "a PostgreSQL pool without connections",
        set: &[("storage.url", "postgres://relay@db/relay"), ("storage.pool_size", "0")],
        purpose: Purpose::Relay,
        expect: &[("storage.pool_size", "greater than 0")],
    },
    Case {
        name: "an unknown register target",
        set: &[("register.target", "dashboard")],
        purpose: Purpose::Store,
        expect: &[("register.target", "`salesforce`, `relay`")],
    },
    Case {
        name: "a DR command without the API key",
        set: &[("digital_river.api_key", "")],
        purpose: Purpose::DigitalRiverApi,
        expect: &[("digital_river.api_key", "sk_test_")],
    },
];

#[test]
fn the_valid_configuration_passes_for_every_purpose() {
    for purpose in [
        Purpose::DigitalRiverApi,
        REGISTER,
        Purpose::Register(RegisterTarget::Relay),
        Purpose::Salesforce,
        Purpose::Relay,
        Purpose::Store,
        Purpose::Check,
    ] {
        assert_eq!(problems(&[], purpose), Vec::new(), "{purpose:?}");
    }
}

#[test]
fn each_rule_names_its_key_and_what_to_do() {
    let mut failures = Vec::new();
    for case in CASES {
        let found = problems(case.set, case.purpose);
        for (key, words) in case.expect {
            let hit = found.iter().any(|p| p.key == *key && p.message.contains(words));
            if !hit {
                failures.push(format!(
                    "{}: no problem for {key} containing {words:?}; got {found:?}",
                    case.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn host_names_and_ipv6_are_valid_listen_addresses() {
    for listen in ["localhost:8080", "[::]:8080", "0.0.0.0:8080", "relay.internal:9000"] {
        assert_eq!(
            problems(&[("relay.listen", listen)], Purpose::Relay),
            Vec::new(),
            "{listen}"
        );
    }
    for listen in ["localhost", ":8080", "localhost:port", "a b:80"] {
        assert!(
            !problems(&[("relay.listen", listen)], Purpose::Relay).is_empty(),
            "{listen}"
        );
    }
}

#[test]
fn secret_file_keys_are_known() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "passwordSECURITYTOKEN\n").unwrap();
    let found = problems(
        &[
            ("salesforce.password", ""),
            ("salesforce.password_file", file.to_str().unwrap()),
        ],
        Purpose::Salesforce,
    );
    assert_eq!(found, Vec::new());
}

#[test]
fn a_database_password_is_never_shown_in_a_problem() {
    let found = problems(
        &[("storage.url", "mysql://relay:Sup3rSecretPw@db/relay")],
        Purpose::Store,
    );
    let text = format!("{found:?}");
    assert!(text.contains("storage.url"), "{text}");
    assert!(!text.contains("Sup3rSecretPw"), "{text}");
}

#[test]
fn a_key_that_is_invalid_is_not_also_reported_missing() {
    let found = problems(
        &[
            ("salesforce.grant_type", "client_credentials"),
            ("salesforce.my_domain_url", ""),
        ],
        REGISTER,
    );
    let keys: Vec<&str> = found.iter().map(|p| p.key.as_str()).collect();
    let mut unique = keys.clone();
    unique.dedup();
    assert_eq!(keys.len(), unique.len(), "{found:?}");
}
