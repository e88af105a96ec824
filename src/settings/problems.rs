//! What is wrong with a configuration: every problem, each with its key, reported together.

use std::fmt;

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
