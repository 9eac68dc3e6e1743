//! The `memory` connector: a source fed by `INSERT INTO` or by code ([`MemoryStream`]), and a
//! sink whose output embedding code and ad hoc queries can read ([`MemoryOutput`]).
//!
//! Both live as long as the engine that made them, not across processes: the memory source is
//! replayable while the engine runs (enough to restart a query from its checkpoint within
//! the process, which is what tests do), and the memory sink keeps the committed output of
//! every batch, replacing a batch's output when it is re-run (in complete mode, only the last
//! batch's output: the whole result). In update mode the table is the log of updates.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use crate::error::{ConnectorError, Result};
use crate::offset::{BatchId, SourceOffset};
use crate::options::OptionSpec;
use crate::sink::{OutputMode, Sink, SinkOpen};
use crate::source::{Source, SourceRead};

/// Options of the `memory` source.
pub const MEMORY_SOURCE_OPTIONS: &[OptionSpec] = &[OptionSpec {
    key: "max_records_per_trigger",
    help: "at most this many rows per batch (default: all)",
}];

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The rows appended to one `memory` source.
#[derive(Debug)]
pub struct MemoryStream {
    schema: SchemaRef,
    batches: Mutex<Vec<RecordBatch>>,
}

impl MemoryStream {
    /// An empty stream of `schema`.
    pub fn new(schema: SchemaRef) -> Self {
        Self {
            schema,
            batches: Mutex::new(Vec::new()),
        }
    }

    /// The schema of the stream.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Appends rows, all visible to readers at once. Columns are matched by position and cast
    /// to the stream's types (so `Utf8` rows fill a `VARCHAR` column, which is `Utf8View`).
    pub fn append(&self, batch: RecordBatch) -> Result<()> {
        let context = "the inserted rows do not match the source's columns";
        if batch.num_columns() != self.schema.fields().len() {
            return Err(ConnectorError::Config(format!(
                "{context}: {} columns given, {} expected",
                batch.num_columns(),
                self.schema.fields().len()
            )));
        }
        let columns = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(column, field)| arrow::compute::cast(column, field.data_type()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| ConnectorError::arrow(context, e))?;
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|e| ConnectorError::arrow(context, e))?;
        lock(&self.batches).push(batch);
        Ok(())
    }

    /// Rows appended so far.
    pub fn len(&self) -> u64 {
        lock(&self.batches)
            .iter()
            .map(|b| b.num_rows() as u64)
            .sum()
    }

    /// Whether no row was appended yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows `first..end` in append order.
    fn slice(&self, first: u64, end: u64) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        let mut position = 0u64;
        for batch in lock(&self.batches).iter() {
            let rows = batch.num_rows() as u64;
            let (lo, hi) = (first.max(position), end.min(position + rows));
            if lo < hi {
                out.push(batch.slice((lo - position) as usize, (hi - lo) as usize));
            }
            position += rows;
        }
        out
    }
}

/// A query's reader of a [`MemoryStream`]; offsets count rows.
#[derive(Debug)]
pub struct MemorySource {
    stream: Arc<MemoryStream>,
    max_records_per_trigger: Option<u64>,
    frozen_at: Mutex<Option<u64>>,
}

impl MemorySource {
    /// A reader of `stream`.
    pub fn new(stream: Arc<MemoryStream>, max_records_per_trigger: Option<u64>) -> Self {
        Self {
            stream,
            max_records_per_trigger,
            frozen_at: Mutex::new(None),
        }
    }
}

#[async_trait]
impl Source for MemorySource {
    fn schema(&self) -> SchemaRef {
        self.stream.schema()
    }

    async fn prepare_available_now(&self) -> Result<()> {
        *lock(&self.frozen_at) = Some(self.stream.len());
        Ok(())
    }

    async fn latest_offset(&self, start: Option<&SourceOffset>) -> Result<Option<SourceOffset>> {
        let first = SourceOffset::count_or_zero(start)?;
        let available = lock(&self.frozen_at).unwrap_or_else(|| self.stream.len());
        let end = match self.max_records_per_trigger {
            Some(max) => available.min(first + max),
            None => available,
        };
        Ok(if end > first {
            Some(SourceOffset::from_count(end))
        } else {
            start.cloned()
        })
    }

    async fn read(&self, start: Option<&SourceOffset>, end: &SourceOffset) -> Result<SourceRead> {
        let batches = self
            .stream
            .slice(SourceOffset::count_or_zero(start)?, end.as_count()?);
        Ok(SourceRead::rows(batches))
    }

    async fn commit(&self, _end: &SourceOffset) -> Result<()> {
        Ok(())
    }
}

/// The output of a `memory` sink: every committed batch's rows, by batch id.
#[derive(Debug, Default)]
pub struct MemoryOutput {
    batches: Mutex<BTreeMap<BatchId, Vec<RecordBatch>>>,
    schema: Mutex<Option<SchemaRef>>,
}

impl MemoryOutput {
    /// All rows written so far, in batch order.
    pub fn rows(&self) -> Vec<RecordBatch> {
        lock(&self.batches).values().flatten().cloned().collect()
    }

    /// The rows of each batch, by batch id.
    pub fn batches(&self) -> BTreeMap<BatchId, Vec<RecordBatch>> {
        lock(&self.batches).clone()
    }

    /// The schema of the output, once the query writing it has started.
    pub fn schema(&self) -> Option<SchemaRef> {
        lock(&self.schema).clone()
    }
}

/// The `memory` sink writing to a [`MemoryOutput`].
#[derive(Debug)]
pub struct MemorySink {
    output: Arc<MemoryOutput>,
    /// In complete mode each batch's output replaces the table.
    replace: std::sync::atomic::AtomicBool,
}

impl MemorySink {
    /// A sink writing to `output`.
    pub fn new(output: Arc<MemoryOutput>) -> Self {
        Self {
            output,
            replace: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl Sink for MemorySink {
    /// The sink reads as one table, which has one schema.
    fn check_schema_change(&self, previous: &[String], schema: &SchemaRef) -> Result<()> {
        Err(ConnectorError::Config(format!(
            "the memory sink holds rows with the columns [{}], but the changed query writes \
             [{}]; its table has one schema: start the changed query as a new sink",
            previous.join(", "),
            crate::sink::column_list(schema).join(", ")
        )))
    }

    async fn open(&self, open: SinkOpen) -> Result<()> {
        let complete = open.output_mode == OutputMode::Complete;
        self.replace
            .store(complete, std::sync::atomic::Ordering::Relaxed);
        *lock(&self.output.schema) = Some(open.schema);
        lock(&self.output.batches)
            .retain(|batch, _| open.last_committed.is_some_and(|c| *batch <= c));
        Ok(())
    }

    async fn write(&self, batch_id: BatchId, batches: Vec<RecordBatch>) -> Result<()> {
        let mut output = lock(&self.output.batches);
        if self.replace.load(std::sync::atomic::Ordering::Relaxed) {
            output.clear();
        }
        output.insert(batch_id, batches);
        Ok(())
    }
}
