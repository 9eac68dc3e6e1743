//! [`BadRecords`]: what happens to a record that cannot be decoded.

use bytes::Bytes;

use crate::error::{ConnectorError, Result};
use crate::location::StoreLocation;
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
    /// The policy's name in `on_error`.
    pub fn name(&self) -> &'static str {
        match self {
            OnError::Fail => "fail",
            OnError::Skip => "skip",
            OnError::DeadLetter(_) => "dead_letter",
        }
    }

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
    /// One record, or a whole file (or its unread rest).
    pub extent: Extent,
}

impl BadRecord {
    /// One record at `location`, shown as `record`.
    pub fn record(location: String, reason: String, record: String) -> Self {
        Self {
            location,
            reason,
            record,
            extent: Extent::Record,
        }
    }

    /// A file (or its rest) that could not be read, holding `rows` rows when that is known.
    pub fn file(location: &str, reason: String, rows: Option<u64>) -> Self {
        Self {
            location: location.to_string(),
            reason,
            record: String::new(),
            extent: Extent::File { rows },
        }
    }

    /// The rows lost with this rejection (0 for a file whose row count is unknown).
    pub fn rows(&self) -> u64 {
        match self.extent {
            Extent::Record => 1,
            Extent::File { rows } => rows.unwrap_or(0),
        }
    }
}

/// What a [`BadRecord`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Extent {
    /// One record (a line, a row, a message).
    Record,
    /// A whole file, or the part of it after a corruption: `rows` rows, or `None` when the
    /// file is too damaged to say (its footer is unreadable).
    File {
        /// The rows lost, when the file says.
        rows: Option<u64>,
    },
}

/// What the rejections of one read add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rejected {
    /// Rows lost: bad records, and the rows of bad files where known.
    pub rows: u64,
    /// Files rejected whole or in part.
    pub files: u64,
}

impl Rejected {
    /// Adds up `records`.
    pub fn of(records: &[BadRecord]) -> Self {
        Self {
            rows: records.iter().map(BadRecord::rows).sum(),
            files: records
                .iter()
                .filter(|r| matches!(r.extent, Extent::File { .. }))
                .count() as u64,
        }
    }
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
        if let Extent::File { rows } = record.extent {
            let rows = rows.map_or_else(|| "an unknown number of".to_string(), |n| n.to_string());
            tracing::warn!(file = %record.location, reason = %record.reason,
                "skipping {rows} rows of a file that cannot be read (on_error = '{}')",
                self.policy.name());
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

/// Writes `rejected` as JSON lines to `<name>.bad.jsonl` in the dead-letter directory `dir`:
/// a name derived from what was read (a file, a partition's range, a batch), so that a
/// re-run batch rewrites its dead letters rather than adding them twice.
pub async fn write_dead_letters(
    dir: &StoreLocation,
    name: &str,
    rejected: &[BadRecord],
) -> Result<()> {
    let mut out = Vec::new();
    for record in rejected {
        serde_json::to_writer(&mut out, record)
            .map_err(|e| ConnectorError::Internal(format!("encoding a dead letter: {e}")))?;
        out.push(b'\n');
    }
    dir.put(&format!("{name}.bad.jsonl"), Bytes::from(out))
        .await
}
