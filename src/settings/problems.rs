//! What is wrong with a configuration: every problem, each with its key, reported together.

use std::fmt;

use secrecy::SecretString;

/// One invalid or missing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

/// Every problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigProblems(pub Vec<Problem>);

impl ConfigProblems {
    pub fn single(key: &str, message: impl Into<String>) -> Self {
        Self(vec![Problem {
            key: key.to_owned(),
            message: message.into(),
        }])
    }
}

impl fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            write!(f, "\n  - {}: {}", p.key, p.message)?;
        }
        Ok(())
    }
}

/// Gathers problems while every section is checked, so that all are reported at once.
#[derive(Debug, Default)]
pub struct Collector(pub(crate) Vec<Problem>);

impl Collector {
    pub fn push(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// The parsed value, or `None` with the problem recorded under `key`.
    pub fn parse<T>(&mut self, key: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|m| self.push(key, m)).ok()
    }

    /// Adds `problems` whose key has no problem yet (a key that is invalid is not also "required").
    pub fn extend_new(&mut self, problems: impl IntoIterator<Item = Problem>) {
        for p in problems {
            if !self.0.iter().any(|q| q.key == p.key) {
                self.0.push(p);
            }
        }
    }

    pub fn push_new(&mut self, key: &str, message: impl Into<String>) {
        self.extend_new([Problem {
            key: key.to_owned(),
            message: message.into(),
        }]);
    }

    /// The value, or `None` with "is required {why}" recorded under `key`.
    pub fn require<'a, T>(&mut self, key: &str, value: &'a Option<T>, why: &str) -> Option<&'a T> {
        if value.is_none() {
            self.push(key, format!("is required {why}"));
        }
        value.as_ref()
    }

    pub fn positive(&mut self, key: &str, value: u64) {
        if value == 0 {
            self.push(key, "must be greater than 0");
        }
    }

    /// Whether `key` has a problem already.
    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|p| p.key == key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was collected, else every problem.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigProblems> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(ConfigProblems(self.0))
        }
    }
}

/// Reads one key at a time from the layered configuration, parsing as it goes and recording a
/// problem under the key for each value that does not fit — so that a bad number, a bad URL
/// and a missing secret are all reported together, which deserializing into a struct (that
/// stops at the first bad value) cannot do.
pub struct Reader<'a> {
    config: &'a config::Config,
    pub problems: Collector,
    /// Every key a section asked for: the known keys, to tell typos from settings.
    read: std::collections::BTreeSet<String>,
}

impl<'a> Reader<'a> {
    pub fn new(config: &'a config::Config) -> Self {
        Self {
            config,
            problems: Collector::default(),
            read: Default::default(),
        }
    }

    /// Reports every key the layers set that no section reads (a typo in a file or a `DRSF__`
    /// variable), naming the nearest known key. `also_known` are keys read elsewhere.
    pub fn report_unknown_keys(&mut self, also_known: &[String]) {
        let mut given = Vec::new();
        if let Ok(table) = self
            .config
            .clone()
            .try_deserialize::<config::Map<String, config::Value>>()
        {
            collect_keys("", table, &mut given);
        }
        let known: Vec<&str> = self
            .read
            .iter()
            .map(String::as_str)
            .chain(also_known.iter().map(String::as_str))
            .collect();
        for key in given {
            if known.contains(&key.as_str()) {
                continue;
            }
            let variable = |key: &str| format!("DRSF__{}", key.replace('.', "__").to_uppercase());
            let typed = std::env::var_os(variable(&key)).map(|_| variable(&key));
            let message = match (nearest(&key, &known), typed) {
                (Some(near), Some(typed)) => format!(
                    "is not a setting (the variable {typed}); did you mean `{near}` ({})?",
                    variable(near)
                ),
                (Some(near), None) => format!("is not a setting; did you mean `{near}`?"),
                (None, Some(typed)) => {
                    format!("is not a setting (the variable {typed}; config/default.toml lists every key)")
                }
                (None, None) => "is not a setting (config/default.toml lists every key)".to_owned(),
            };
            self.problems.push(&key, message);
        }
    }

    fn value(&mut self, key: &str) -> Option<config::Value> {
        self.read.insert(key.to_owned());
        self.config
            .get::<config::Value>(key)
            .ok()
            .filter(|v| !matches!(v.kind, config::ValueKind::Nil))
    }

    /// The entries of `key`, each with its name and the prefix of its keys: named tables
    /// (`[notify.channels.ops]`, keys `notify.channels.ops.*`) or an array of tables
    /// (`[[notify.channels]]`, keys `notify.channels[0].*`, named by their `name`, else by their
    /// place from 1). Empty when absent.
    pub fn entries(&mut self, key: &str) -> Vec<(String, String)> {
        match self.value(key).map(|v| v.kind) {
            Some(config::ValueKind::Table(table)) => table
                .keys()
                .map(|name| (name.clone(), format!("{key}.{name}")))
                .collect(),
            Some(config::ValueKind::Array(items)) => (0..items.len())
                .map(|i| {
                    let prefix = format!("{key}[{i}]");
                    let name = self
                        .optional_text(&format!("{prefix}.name"))
                        .unwrap_or_else(|| (i + 1).to_string());
                    (name, prefix)
                })
                .collect(),
            Some(_) => {
                self.problems.push(
                    key,
                    "must be named tables ([notify.channels.ops]) or an array of tables ([[notify.channels]])",
                );
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// Whether the layers give `key` a value (a table counts).
    pub fn is_set(&mut self, key: &str) -> bool {
        self.value(key).is_some()
    }

    /// A value of any type serde reads (numbers, booleans); the default when it does not fit.
    pub fn get<T: serde::de::DeserializeOwned + Default>(&mut self, key: &str) -> T {
        self.read.insert(key.to_owned());
        match self.config.get::<T>(key) {
            Ok(value) => value,
            Err(config::ConfigError::NotFound(_)) => T::default(),
            Err(e) => {
                let text = e.to_string();
                let message = text.split(" for key `").next().unwrap_or(&text);
                self.problems.push(key, message);
                T::default()
            }
        }
    }

    /// The text as written (`""` when absent).
    pub fn text(&mut self, key: &str) -> String {
        self.get::<Option<String>>(key).unwrap_or_default()
    }

    /// The text trimmed, `None` when absent or blank.
    pub fn optional_text(&mut self, key: &str) -> Option<String> {
        Some(self.text(key).trim().to_owned()).filter(|s| !s.is_empty())
    }

    /// A secret, `None` when absent or empty.
    pub fn secret(&mut self, key: &str) -> Option<SecretString> {
        Some(self.text(key)).filter(|s| !s.is_empty()).map(SecretString::from)
    }

    /// A list given as a list (files) or as one comma-separated string (environment, where an
    /// empty value means an empty list).
    pub fn list(&mut self, key: &str) -> Vec<String> {
        let Some(value) = self.value(key) else {
            return Vec::new();
        };
        match value.kind {
            config::ValueKind::Array(items) => items
                .into_iter()
                .map(|item| item.into_string().unwrap_or_default())
                .collect(),
            _ => value
                .into_string()
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }

    /// The trimmed text parsed by `parse`; `None` when absent or when it does not parse.
    pub fn parse<T>(&mut self, key: &str, parse: impl FnOnce(&str) -> Result<T, String>) -> Option<T> {
        let raw = self.optional_text(key)?;
        self.problems.parse(key, parse(&raw))
    }

    /// One of the names `allowed` lists (a serde enum in snake_case).
    pub fn one_of<T: serde::de::DeserializeOwned>(&mut self, key: &str, allowed: &str) -> Option<T> {
        let raw = self.text(key);
        let parsed = one_of(&raw, allowed);
        self.problems.parse(key, parsed)
    }
}

/// `raw` as one of the names `allowed` lists (a serde enum in snake_case).
pub fn one_of<T: serde::de::DeserializeOwned>(raw: &str, allowed: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(raw.trim().to_owned()))
        .map_err(|_| format!("`{raw}` is not one of {allowed}"))
}

/// Every leaf key of a table, dotted (`salesforce.client_id`).
fn collect_keys(prefix: &str, table: config::Map<String, config::Value>, keys: &mut Vec<String>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        match value.kind {
            config::ValueKind::Table(inner) => collect_keys(&key, inner, keys),
            config::ValueKind::Array(items)
                if !items.is_empty() && items.iter().all(|i| matches!(i.kind, config::ValueKind::Table(_))) =>
            {
                for (i, item) in items.into_iter().enumerate() {
                    if let config::ValueKind::Table(inner) = item.kind {
                        collect_keys(&format!("{key}[{i}]"), inner, keys);
                    }
                }
            }
            _ => keys.push(key),
        }
    }
}

/// The candidate closest to `word` by edit distance, when it is close enough to be a typo of it.
pub fn nearest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .min()
        .filter(|(distance, _)| *distance <= (word.chars().count() / 3).max(2))
        .map(|(_, c)| c)
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}
