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
/// unfinished attempt at a later batch left behind. Then [`write`](Sink::write) is called
/// once per batch, in batch order. `write` must be idempotent per batch id: after a crash the
/// engine re-runs the last uncommitted batch with the same input, and writing it again must
/// not duplicate output. Once `write` returns, the batch's output must be durable.
#[async_trait]
pub trait Sink: Send + Sync + Debug {
    /// Prepares for writing rows of `schema`; `last_committed` is `None` for a new query.
    async fn open(&self, schema: SchemaRef, last_committed: Option<BatchId>) -> Result<()>;

    /// Writes the output of batch `batch_id`, replacing any earlier attempt at it.
    async fn write(&self, batch_id: BatchId, batches: Vec<RecordBatch>) -> Result<()>;
}

/// What a sink gets when a query opens it.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// The name of the sink (and of its query).
    pub name: String,
}
