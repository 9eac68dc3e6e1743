//! [`KeyedTable`]: an operator's state as one row per key (a streaming aggregation's groups),
//! over its [`OperatorState`]. The table owns what every such operator would otherwise do
//! itself: routing rows to the state partition of their key, finding the committed rows of a
//! batch's keys (get many), and turning a partition's upserts, deletes and untouched rows into
//! its next state (compacted) and the delta to checkpoint. The operator computes the rows.
//!
//! The first `keys` columns of the table's schema identify a row; the partition of a row is
//! a stable hash of its routing columns, which the operator chooses (a subset of the keys
//! that groups rows that must meet, such as a session window's keys without its bounds).

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::compute::filter_record_batch;
use arrow::compute::kernels::boolean::not;
use arrow::datatypes::SchemaRef;
use arrow::row::Row;
use datafusion::common::HashSet;

use super::delta::{delta_of, diff, key_converter, split_by_key};
use super::store::{OperatorState, StagedPartition, compact};
use crate::error::{Result, WeirError};

fn arrow_error(e: arrow::error::ArrowError) -> WeirError {
    WeirError::Internal(format!("updating a keyed state table: {e}"))
}

/// One operator's table of one row per key, over its committed state.
#[derive(Debug, Clone)]
pub(crate) struct KeyedTable {
    state: Arc<OperatorState>,
    schema: SchemaRef,
    keys: usize,
}

/// The committed rows of one partition, split by whether a batch touches their keys.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    /// Rows whose key the batch brings: to merge with the batch's rows.
    pub touched: Vec<RecordBatch>,
    /// The others, in the record batches they are in (not copied where whole).
    pub untouched: Vec<RecordBatch>,
}

impl KeyedTable {
    /// The table kept in `state`, of rows with `schema`, whose first `keys` columns are the key.
    pub(crate) fn new(state: Arc<OperatorState>, schema: SchemaRef, keys: usize) -> Self {
        Self {
            state,
            schema,
            keys,
        }
    }

    /// The schema of its rows.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The committed rows of each partition.
    pub(crate) fn committed(&self) -> Vec<Vec<RecordBatch>> {
        self.state.committed()
    }

    /// `rows` split into one part per partition by a stable hash of `routing` columns.
    pub(crate) fn route(&self, rows: &RecordBatch, routing: &[usize]) -> Result<Vec<RecordBatch>> {
        split_by_key(rows, routing, self.state.partitions())
    }

    /// Get many: splits a partition's committed rows `old` into those whose key is among the
    /// keys of `rows` (their first `keys` columns) and the others.
    pub(crate) fn touched_by(&self, old: Vec<RecordBatch>, rows: &RecordBatch) -> Result<Touched> {
        if self.keys == 0 {
            // One row for all (a global aggregate), touched by every batch.
            return Ok(Touched {
                touched: old,
                untouched: Vec::new(),
            });
        }
        let converter = key_converter(&self.schema, self.keys)?;
        let new_keys = converter
            .convert_columns(&rows.columns()[..self.keys])
            .map_err(arrow_error)?;
        let mut keys: HashSet<Row<'_>> = HashSet::with_capacity(new_keys.num_rows());
        keys.extend(new_keys.iter());
        let mut split = Touched::default();
        for batch in old {
            let old_keys = converter
                .convert_columns(&batch.columns()[..self.keys])
                .map_err(arrow_error)?;
            let mask = BooleanArray::from(BooleanBuffer::collect_bool(old_keys.num_rows(), |i| {
                keys.contains(&old_keys.row(i))
            }));
            match mask.true_count() {
                0 => split.untouched.push(batch),
                n if n == batch.num_rows() => split.touched.push(batch),
                _ => {
                    split
                        .touched
                        .push(filter_record_batch(&batch, &mask).map_err(arrow_error)?);
                    let others = not(&mask).map_err(arrow_error)?;
                    split
                        .untouched
                        .push(filter_record_batch(&batch, &others).map_err(arrow_error)?);
                }
            }
        }
        Ok(split)
    }

    /// A partition's next state: `kept` (rows the batch did not change, or changed rows
    /// already in it) plus `upserts`, with `deletes` gone from it; its delta records the
    /// upserts and deletes. `kept` must not hold the deleted rows.
    pub(crate) fn change(
        &self,
        mut kept: Vec<RecordBatch>,
        upserts: RecordBatch,
        deletes: RecordBatch,
    ) -> Result<StagedPartition> {
        let delta = delta_of(&self.schema, upserts.clone(), deletes)?;
        kept.extend((upserts.num_rows() > 0).then_some(upserts));
        Ok(StagedPartition {
            state: compact(&self.schema, kept).map_err(arrow_error)?,
            delta,
        })
    }

    /// A partition whose state the batch replaced whole (`old` by `new`, where rows may change
    /// keys, as merged session windows do): the delta is worked out by comparing the two.
    pub(crate) fn replace(&self, old: &[RecordBatch], new: RecordBatch) -> Result<StagedPartition> {
        let delta = diff(&self.schema, self.keys, old, std::slice::from_ref(&new))?;
        Ok(StagedPartition {
            state: vec![new],
            delta,
        })
    }

    /// Records what the batch in flight computed for each partition.
    pub(crate) fn stage(&self, partitions: Vec<StagedPartition>) {
        self.state
            .stage(Arc::clone(&self.schema), self.keys, partitions);
    }
}
