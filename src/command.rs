//! What every command shares: its error type, which decides the process exit code, and the output
//! format.
//!
//! Exit codes are a contract with scripts: 0 success, 1 a check that did not pass or a request
//! that cannot be done (unknown event), 2 invalid configuration, 3 rejected by Digital River,
//! 4 network, server or store failure.

use std::process::ExitCode;

use crate::digital_river::DigitalRiverError;
use crate::settings::ConfigProblems;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Readable text and tables.
    #[default]
    Text,
    /// One JSON document, for scripts.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Config(#[from] ConfigProblems),
    #[error(transparent)]
    DigitalRiver(#[from] DigitalRiverError),
    /// The request cannot be done as asked (an unknown event id, a replay of a pending event).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CommandError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }

    pub fn code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            Self::DigitalRiver(e) if e.is_rejection() => 3,
            Self::DigitalRiver(_) => 4,
            Self::Refused(_) => 1,
            Self::Other(_) => 4,
        }
    }
}

/// An error and its causes on one line (`a: b: c`), skipping causes the text already contains.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let s = cause.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = cause.source();
    }
    text
}
