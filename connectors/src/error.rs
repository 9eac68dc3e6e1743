//! The error type of the connectors. Variants say whose fault it is: the user's options
//! ([`ConnectorError::Config`]), the input data ([`ConnectorError::BadRecord`]), an external
//! system ([`ConnectorError::Io`], retrying may help), a damaged checkpoint
//! ([`ConnectorError::DamagedCheckpoint`]), or Weir itself ([`ConnectorError::Internal`]).

use arrow::error::ArrowError;

/// Errors raised by sources, sinks and formats.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// A connector option is missing, unknown or has a bad value.
    #[error("{0}")]
    Config(String),
    /// A record or file could not be decoded; `location` names the file and line or row.
    #[error("bad record at {location}: {reason}")]
    BadRecord {
        /// File and line (or row) of the record.
        location: String,
        /// Why it could not be read.
        reason: String,
    },
    /// Reading or writing `location` failed in the storage layer.
    #[error("i/o error on {location}: {source}")]
    Io {
        /// The path or URL involved.
        location: String,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An Arrow or Parquet operation failed for `context`.
    #[error("{context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: ArrowError,
    },
    /// A source's log in the query's checkpoint is missing or damaged (the user's data,
    /// not a bug): restoring it from a backup or a new checkpoint helps, retrying does not.
    #[error(
        "{0}: the checkpoint is damaged; restore it from a backup, or start the query with a new checkpoint (and a new output location)"
    )]
    DamagedCheckpoint(String),
    /// A bug in Weir: an invariant did not hold.
    #[error("internal error (a bug in Weir): {0}")]
    Internal(String),
}

impl ConnectorError {
    /// An i/o error on `location`.
    pub fn io(
        location: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ConnectorError::Io {
            location: location.into(),
            source: Box::new(source),
        }
    }

    /// An Arrow error while doing `context`.
    pub fn arrow(context: impl Into<String>, source: ArrowError) -> Self {
        ConnectorError::Arrow {
            context: context.into(),
            source,
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;
