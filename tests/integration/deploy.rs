//! The deployment files (`deploy/compose`, `deploy/kubernetes`) configure a relay this binary
//! accepts: every `DRSF_…` variable they set is a real key, and with their values (the compose
//! file's `${…}` from `example.env`) and a file behind each `…_FILE`, the relay's configuration
//! validates with no problem. Their shape is checked by their own tools in `.ci/run`.

use std::collections::BTreeMap;
use std::path::Path;

use dr_sf_bridge::settings::{LoadOptions, OWN_VARIABLES, Purpose, load};

fn deploy_file(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `KEY=value` lines of an env file.
fn env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// `${NAME:?why}` and `${NAME:-default}` as compose fills them from `env`.
fn interpolated(value: &str, env: &BTreeMap<String, String>) -> String {
    let Some(inner) = value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) else {
        return value.to_owned();
    };
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner.split(":?").next().unwrap(), None),
    };
    env.get(name)
        .cloned()
        .or(default.map(str::to_owned))
        .unwrap_or_else(|| panic!("{name} is neither in example.env nor defaulted"))
}

/// The relay's variables in compose's `environment:` map (`    DRSF__X: value`).
fn compose_variables() -> Vec<(String, String)> {
    let env = env_file(&deploy_file("compose/example.env"));
    deploy_file("compose/compose.yaml")
        .lines()
        .filter_map(|l| l.trim().split_once(": "))
        .filter(|(name, _)| name.starts_with("DRSF"))
        .map(|(name, value)| (name.to_owned(), interpolated(value.trim(), &env)))
        .collect()
}

/// The container's `env:` list in the Deployment (`- name: DRSF__X` then `value: …`).
fn kubernetes_variables() -> Vec<(String, String)> {
    let text = deploy_file("kubernetes/deployment.yaml");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter_map(|pair| {
            let name = pair[0].strip_prefix("- name: ")?;
            let value = pair[1].strip_prefix("value: ")?;
            name.starts_with("DRSF").then(|| (name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Validates a relay's configuration made of `variables`, each secret file written with a
/// plausible secret.
fn problems_of(variables: &[(String, String)]) -> Vec<(String, String)> {
    let secrets = tempfile::tempdir().unwrap();
    let mut overrides = Vec::new();
    for (name, value) in variables {
        if OWN_VARIABLES.contains(&name.as_str()) {
            continue;
        }
        let key = name
            .strip_prefix("DRSF__")
            .unwrap_or_else(|| panic!("{name}: not DRSF__SECTION__KEY nor one of {OWN_VARIABLES:?}"))
            .to_lowercase()
            .replace("__", ".");
        let value = if key.ends_with("_file") {
            let file = secrets.path().join(key.replace('.', "-"));
            let secret = if key.contains("api_key") {
                "sk_test_0123456789abcdef0123456789abcdef"
            } else {
                "0123456789abcdef0123456789abcdef0123456789abcdef"
            };
            std::fs::write(&file, secret).unwrap();
            file.to_str().unwrap().to_owned()
        } else {
            value.clone()
        };
        overrides.push((key, value));
    }
    let options = LoadOptions {
        config_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("config")),
        overrides,
        ignore_environment: true,
        ..Default::default()
    };
    match load(&options, Purpose::Relay) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.0.into_iter().map(|p| (p.key, p.message)).collect(),
    }
}

#[test]
fn the_compose_file_configures_a_relay_that_validates() {
    let variables = compose_variables();
    assert!(variables.len() >= 15, "the relay's environment is read: {variables:?}");
    assert!(variables.iter().any(|(n, _)| n == "DRSF__STORAGE__PASSWORD_FILE"));
    assert_eq!(problems_of(&variables), Vec::<(String, String)>::new());
}

#[test]
fn the_kubernetes_deployment_configures_a_relay_that_validates() {
    let variables = kubernetes_variables();
    assert!(variables.len() >= 15, "the container's env is read: {variables:?}");
    assert_eq!(problems_of(&variables), Vec::<(String, String)>::new());
}

#[test]
fn a_misspelt_variable_in_a_deploy_file_would_be_caught() {
    let mut variables = compose_variables();
    variables.push(("DRSF__SALESFORCE__CLIENT_SECRETFILE".into(), "/run/secrets/x".into()));
    let problems = problems_of(&variables);
    assert!(
        problems.iter().any(|(key, _)| key.contains("client_secretfile")),
        "{problems:?}"
    );
}
