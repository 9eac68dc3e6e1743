//! The [`Source`] contract.

use std::fmt::Debug;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use crate::error::{ConnectorError, Result};
use crate::location::StoreLocation;
use crate::offset::SourceOffset;

/// An unbounded, replayable input of a continuous query.
///
/// # Contract
/// The engine calls, for each micro-batch:
/// 1. [`latest_offset`](Source::latest_offset) with the batch's start offset (the previous
///    batch's end; `None` for the first batch) to learn how far this batch may read;
/// 2. (it then writes the start and end offsets durably to the offsets log);
/// 3. [`read`](Source::read) of the range `(start, end]`;
/// 4. after the batch is committed, [`commit`](Source::commit) with its end offset.
///
/// `read` must return the same rows for a range it has handed out before, in this process or
/// after a restart: that is what lets the engine re-run a batch after a crash exactly. An
/// offset is a position, so `latest_offset` never returns one before `start`. Anything a source
/// must remember to replay (the list of files it saw) it keeps under its
/// [`SourceContext::state`] before returning an offset that covers it.
#[async_trait]
pub trait Source: Send + Sync + Debug {
    /// The schema of every record batch [`read`](Source::read) returns.
    fn schema(&self) -> SchemaRef;

    /// Called once before the first batch of an `available-now` trigger: from then on the
    /// source reports only what was available at this call. Fails for a source that is never
    /// exhausted (an unbounded generator).
    async fn prepare_available_now(&self) -> Result<()>;

    /// The end offset of the next batch starting after `start`, within the source's
    /// per-trigger limits; equal to `start` (or `None` at the beginning) when nothing is new.
    async fn latest_offset(&self, start: Option<&SourceOffset>) -> Result<Option<SourceOffset>>;

    /// Reads the records after `start` up to and including `end`.
    async fn read(&self, start: Option<&SourceOffset>, end: &SourceOffset) -> Result<SourceRead>;

    /// Reads like [`read`](Source::read), but only the columns of [`schema`](Source::schema)
    /// at `columns` (ascending indices): each batch has those columns, in that order, and
    /// all the rows `read` would give, so a query that uses few of a wide source's columns
    /// does not pay for the others. The default reads every column and drops the rest; a
    /// source that can skip the work of making a column (a generator, a columnar file)
    /// overrides it.
    async fn read_columns(
        &self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
        columns: &[usize],
    ) -> Result<SourceRead> {
        self.read(start, end).await?.project(columns)
    }

    /// Everything up to `end` is committed and will not be read again.
    async fn commit(&self, end: &SourceOffset) -> Result<()>;
}

/// What one [`Source::read`] produced.
#[derive(Debug, Default)]
pub struct SourceRead {
    /// The rows, in source order.
    pub batches: Vec<RecordBatch>,
    /// Rows lost to malformed input under `on_error = 'skip' | 'dead_letter'`: each bad
    /// record, and the rows of each bad file where the file says how many it held.
    pub bad_records: u64,
    /// Files that could not be read whole (a corrupt or truncated file, a schema that does
    /// not match), skipped or dead-lettered under `on_error`.
    pub bad_files: u64,
}

impl SourceRead {
    /// A read of `batches`, none of its input malformed.
    pub fn rows(batches: Vec<RecordBatch>) -> Self {
        Self {
            batches,
            ..Self::default()
        }
    }

    /// The same rows with only the columns at `columns` (see [`Source::read_columns`]).
    pub fn project(self, columns: &[usize]) -> Result<Self> {
        let batches = self
            .batches
            .iter()
            .map(|batch| batch.project(columns))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| ConnectorError::arrow("dropping the columns a query does not use", e))?;
        Ok(Self { batches, ..self })
    }
}

/// What a source gets when a query opens it.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// A directory in the query's checkpoint owned by this source, for logs it needs to replay.
    pub state: StoreLocation,
}
