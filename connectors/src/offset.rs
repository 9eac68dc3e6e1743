//! Positions: [`BatchId`] numbers micro-batches, [`SourceOffset`] is a position in a source.

use serde::{Deserialize, Serialize};

use crate::error::{ConnectorError, Result};

/// The id of a micro-batch: 0, 1, 2, ... in the order the query runs them.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchId(pub u64);

impl BatchId {
    /// The batch after this one.
    pub fn next(self) -> BatchId {
        BatchId(self.0 + 1)
    }
}

impl std::fmt::Display for BatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A position in a source, opaque to the engine and stored as JSON in the offsets log.
/// A batch reads the rows after its start offset up to and including its end offset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SourceOffset(pub serde_json::Value);

impl SourceOffset {
    /// An offset that counts records, files or events from the start of the source.
    pub fn from_count(count: u64) -> Self {
        SourceOffset(serde_json::Value::from(count))
    }

    /// Reads a count offset written by [`SourceOffset::from_count`].
    pub fn as_count(&self) -> Result<u64> {
        self.0
            .as_u64()
            .ok_or_else(|| ConnectorError::Internal(format!("offset {} is not a count", self.0)))
    }

    /// The count of an optional start offset; `None` (the beginning) is 0.
    pub fn count_or_zero(offset: Option<&SourceOffset>) -> Result<u64> {
        offset.map_or(Ok(0), SourceOffset::as_count)
    }
}

impl std::fmt::Display for SourceOffset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
