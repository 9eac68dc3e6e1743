//! The [`Sink`] contract.

use std::fmt::Debug;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use crate::error::Result;
use crate::offset::BatchId;

/// The output of a continuous query.
///
/// # Contract
/// [`open`](Sink::open) is called once when the query starts, before any write, with the
/// last batch whose commit is durable in the checkpoint; the sink removes whatever an
/// unfinished attempt at a later batch left behind. For a query whose checkpoint is new it is
/// called before the checkpoint is created, so a sink can refuse output that belongs to
/// another query without leaving a checkpoint behind. Then [`write`](Sink::write) is called
/// once per batch, in batch order. `write` must be idempotent per batch id: after a crash the
/// engine re-runs the last uncommitted batch with the same input, and writing it again must
/// not duplicate output. Once `write` returns, the batch's output must be durable.
#[async_trait]
pub trait Sink: Send + Sync + Debug {
    /// Prepares for writing; see [`SinkOpen`].
    async fn open(&self, open: SinkOpen) -> Result<()>;

    /// Writes the output of batch `batch_id`, replacing any earlier attempt at it.
    async fn write(&self, batch_id: BatchId, batches: Vec<RecordBatch>) -> Result<()>;

    /// Called before [`open`](Sink::open) when a query resumes a checkpoint whose output had
    /// other columns (`previous`, each `name: type`) than the query's `schema` now (its
    /// filter or projection changed): `Ok` if this sink can hold both, or an error saying
    /// why not. By default a sink takes any change (each record stands alone).
    fn check_schema_change(&self, previous: &[String], schema: &SchemaRef) -> Result<()> {
        let _ = (previous, schema);
        Ok(())
    }
}

/// The columns of `schema` as `name: type`, as checkpoints record a query's output.
pub fn column_list(schema: &SchemaRef) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect()
}

/// Which rows each batch emits (Spark's output modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Rows that will never change: each is emitted once.
    Append,
    /// The rows that changed in this batch.
    Update,
    /// The whole result, every batch.
    Complete,
}

/// What [`Sink::open`] is told.
#[derive(Debug, Clone)]
pub struct SinkOpen {
    /// The schema of every batch to be written.
    pub schema: SchemaRef,
    /// The last batch whose commit is durable; `None` if no batch was committed yet.
    pub last_committed: Option<BatchId>,
    /// Whether the query's checkpoint is being created now (a query never run before).
    pub new_query: bool,
    /// How the query emits rows; a sink refuses a mode it cannot store correctly.
    pub output_mode: OutputMode,
}

/// What a sink gets when a query opens it.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// The name of the sink (and of its query).
    pub name: String,
}
