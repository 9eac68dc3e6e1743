//! [`BadRecords`]: what happens to a record that cannot be decoded.

use crate::error::{ConnectorError, Result};
use crate::options::{ConnectorOptions, OptionSpec};

/// The keys of the bad-record policy.
pub const ON_ERROR_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "on_error",
        help: "what to do with a malformed record: fail (default), skip (count it), dead_letter",
    },
    OptionSpec {
        key: "dead_letter_path",
        help: "directory receiving malformed records as JSON lines, with on_error = 'dead_letter'",
    },
];

/// The `on_error` policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnError {
    /// Stop the query with an error naming the record.
    Fail,
    /// Drop the record and count it.
    Skip,
    /// Drop the record, count it, and write it with the reason to the dead-letter directory.
    DeadLetter(String),
}

impl OnError {
    /// Reads `on_error` and `dead_letter_path`.
    pub fn from_options(options: &ConnectorOptions) -> Result<Self> {
        let policy = options
            .choice("on_error", &["fail", "skip", "dead_letter"])?
            .unwrap_or("fail");
        let path = options.get("dead_letter_path");
        match (policy, path) {
            ("dead_letter", Some(path)) => Ok(OnError::DeadLetter(path.to_string())),
            ("dead_letter", None) => Err(ConnectorError::Config(format!(
                "on_error = 'dead_letter' needs option 'dead_letter_path' for '{}'",
                options.object()
            ))),
            (_, Some(_)) => Err(ConnectorError::Config(format!(
                "option 'dead_letter_path' of '{}' needs on_error = 'dead_letter'",
                options.object()
            ))),
            ("skip", None) => Ok(OnError::Skip),
            _ => Ok(OnError::Fail),
        }
    }
}

/// A malformed record and why it was rejected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BadRecord {
    /// File and line (or row) of the record.
    pub location: String,
    /// Why it could not be decoded.
    pub reason: String,
    /// The record as it appeared in the input (for parquet, a description of the row).
    pub record: String,
}

/// Applies an [`OnError`] policy while decoding, collecting what was rejected.
#[derive(Debug)]
pub struct BadRecords {
    policy: OnError,
    rejected: Vec<BadRecord>,
}

impl BadRecords {
    /// A collector applying `policy`.
    pub fn new(policy: OnError) -> Self {
        Self {
            policy,
            rejected: Vec::new(),
        }
    }

    /// Handles one bad record: an error under `fail`, collected otherwise.
    pub fn reject(&mut self, record: BadRecord) -> Result<()> {
        if self.policy == OnError::Fail {
            return Err(ConnectorError::BadRecord {
                location: record.location,
                reason: format!(
                    "{}; set on_error = 'skip' or 'dead_letter' to go past malformed records",
                    record.reason
                ),
            });
        }
        self.rejected.push(record);
        Ok(())
    }

    /// The records rejected so far.
    pub fn rejected(&self) -> &[BadRecord] {
        &self.rejected
    }

    /// The policy in force.
    pub fn policy(&self) -> &OnError {
        &self.policy
    }

    /// Takes the records rejected so far.
    pub fn take(&mut self) -> Vec<BadRecord> {
        std::mem::take(&mut self.rejected)
    }
}
