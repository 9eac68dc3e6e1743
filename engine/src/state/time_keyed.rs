//! [`TimeKeyedTable`]: the store's table of many rows per key, kept until the watermark
//! passes them (a join side's buffered rows; later dedup and sessions).
//!
//! Each row is stored under a row id unique for the life of the checkpoint (the batch that
//! brought it, then its position in the batch: [`row_ids`]), with a `matched` flag an operator
//! may set once (a join row that found a partner). The table is split into the query's state
//! partitions by the operator's key ([`TimeKeyedTable::route`]), so that all rows of a key are
//! in one partition. A batch [`advance`](TimeKeyedTable::advance)s each partition: adds the new
//! rows, sets flags, evicts rows; the table works out the state delta (new rows and rows whose
//! flag was set as upserts, evicted rows as deletes by row id) and keeps the batches no row of
//! which changed as they are, uncopied.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, UInt64Array};
use arrow::compute::kernels::boolean::{and, and_not, not, or};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::delta::{delta_of, split_by_key_arrays};
use super::store::{OperatorState, StagedPartition, compact};
use crate::error::{Result, WeirError};

/// The row id column.
const ROW_ID: &str = "__weir_row";
/// The matched flag column.
const MATCHED: &str = "__weir_matched";
/// Leading columns before the operator's own: row id and flag.
pub(crate) const TIME_KEYED_PREFIX: usize = 2;

fn arrow_error(e: arrow::error::ArrowError) -> WeirError {
    WeirError::Internal(format!("updating a time-keyed state table: {e}"))
}

/// The row ids of `rows` new rows brought by batch `batch`: unique across batches and stable
/// when the batch is re-run.
pub(crate) fn row_ids(batch: u64, rows: usize) -> UInt64Array {
    let base = batch << 32;
    (0..rows as u64).map(|i| base | i).collect()
}

/// One operator's table of rows (see the module docs), over its committed state.
#[derive(Debug, Clone)]
pub(crate) struct TimeKeyedTable {
    state: Arc<OperatorState>,
    /// `[row id, matched, the operator's columns...]`.
    schema: SchemaRef,
}

/// What [`TimeKeyedTable::advance`] made of one partition.
#[derive(Debug)]
pub(crate) struct Advanced {
    /// The partition's state after the batch, and its delta.
    pub staged: StagedPartition,
    /// The rows evicted (stored schema), with their flags as they were at the end.
    pub evicted: Vec<RecordBatch>,
}

impl TimeKeyedTable {
    /// The table kept in `state`, of rows with `columns`.
    pub(crate) fn new(state: Arc<OperatorState>, columns: &Schema) -> Self {
        let mut fields = vec![
            Field::new(ROW_ID, DataType::UInt64, false),
            Field::new(MATCHED, DataType::Boolean, false),
        ];
        fields.extend(columns.fields().iter().map(|f| f.as_ref().clone()));
        Self {
            state,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    /// The partitions' committed rows, in the stored schema.
    pub(crate) fn committed(&self) -> Vec<Vec<RecordBatch>> {
        self.state.committed()
    }

    /// `rows` (the operator's columns) with row ids from `batch` and unset flags, split into
    /// the state partitions by `keys` (arrays computed from the rows).
    pub(crate) fn route(
        &self,
        batch: u64,
        rows: &RecordBatch,
        keys: &[ArrayRef],
    ) -> Result<Vec<RecordBatch>> {
        let n = rows.num_rows();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(row_ids(batch, n)),
            Arc::new(BooleanArray::from(vec![false; n])),
        ];
        columns.extend(rows.columns().iter().cloned());
        let stored =
            RecordBatch::try_new(Arc::clone(&self.schema), columns).map_err(arrow_error)?;
        split_by_key_arrays(&stored, keys, self.state.partitions())
    }

    /// One partition after a batch: `rows` are its committed batches followed by the batch's
    /// new rows; for each, `matched` says which rows found a partner in this batch (their flag
    /// is set) and `evict` which rows leave the state.
    pub(crate) fn advance(
        &self,
        rows: Vec<RecordBatch>,
        new_rows: usize,
        matched: Vec<Option<BooleanArray>>,
        evict: Vec<Option<BooleanArray>>,
    ) -> Result<Advanced> {
        let old = rows.len() - new_rows;
        let (mut kept, mut upserts, mut deletes, mut evicted) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, ((batch, matched), evict)) in rows.into_iter().zip(matched).zip(evict).enumerate() {
            let is_new = i >= old;
            let flags = batch.column(1).as_boolean();
            // The flags after the batch, and the old rows whose flag it set.
            let (batch, flipped) = match &matched {
                Some(m) if m.true_count() > 0 => {
                    let set = or(flags, m).map_err(arrow_error)?;
                    let flipped = and_not(m, flags).map_err(arrow_error)?;
                    let mut columns = batch.columns().to_vec();
                    columns[1] = Arc::new(set);
                    let updated = RecordBatch::try_new(Arc::clone(&self.schema), columns)
                        .map_err(arrow_error)?;
                    (updated, Some(flipped))
                }
                _ => (batch, None),
            };
            let stays = match &evict {
                Some(e) if e.true_count() > 0 => {
                    evicted.push(filter_record_batch(&batch, e).map_err(arrow_error)?);
                    if !is_new {
                        deletes.push(filter_record_batch(&batch, e).map_err(arrow_error)?);
                    }
                    Some(not(e).map_err(arrow_error)?)
                }
                _ => None,
            };
            let remaining = match &stays {
                Some(mask) => filter_record_batch(&batch, mask).map_err(arrow_error)?,
                None => batch.clone(),
            };
            if is_new {
                upserts.push(remaining.clone());
            } else if let Some(flipped) = flipped {
                let changed = match &stays {
                    Some(mask) => and(&flipped, mask).map_err(arrow_error)?,
                    None => flipped,
                };
                if changed.true_count() > 0 {
                    upserts.push(filter_record_batch(&batch, &changed).map_err(arrow_error)?);
                }
            }
            if remaining.num_rows() > 0 {
                kept.push(remaining);
            }
        }
        let upserts = concat_batches(&self.schema, &upserts).map_err(arrow_error)?;
        let deletes = concat_batches(&self.schema, &deletes).map_err(arrow_error)?;
        let delta = delta_of(&self.schema, upserts, deletes)?;
        let state = compact(&self.schema, kept).map_err(arrow_error)?;
        Ok(Advanced {
            staged: StagedPartition { state, delta },
            evicted,
        })
    }

    /// Records the batch's partitions as the operator's staged state.
    pub(crate) fn stage(&self, partitions: Vec<StagedPartition>) {
        self.state.stage(Arc::clone(&self.schema), 1, partitions);
    }
}

/// The matched flags of stored rows.
pub(crate) fn matched_flags(rows: &RecordBatch) -> &BooleanArray {
    rows.column(1).as_boolean()
}

/// The operator's columns of stored rows.
pub(crate) fn user_columns(rows: &RecordBatch) -> Vec<ArrayRef> {
    rows.columns()[TIME_KEYED_PREFIX..].to_vec()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::array::Int64Array;

    use super::*;

    fn table() -> TimeKeyedTable {
        let dir = tempfile::tempdir().unwrap();
        let location =
            weir_connectors::StoreLocation::parse(&dir.path().to_string_lossy(), true).unwrap();
        let state = crate::state::QueryState::new(location, 1);
        let columns = Schema::new(vec![Field::new("v", DataType::Int64, false)]);
        TimeKeyedTable::new(state.operator("t"), &columns)
    }

    fn values(batches: &[RecordBatch]) -> Vec<(u64, bool, i64)> {
        batches
            .iter()
            .flat_map(|b| {
                let ids = b.column(0).as_primitive::<arrow::datatypes::UInt64Type>();
                let flags = b.column(1).as_boolean();
                let v = b.column(2).as_primitive::<arrow::datatypes::Int64Type>();
                (0..b.num_rows())
                    .map(|i| (ids.value(i), flags.value(i), v.value(i)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn a_batch_adds_rows_sets_flags_and_evicts_with_a_delta_of_just_that() {
        let table = table();
        let rows = |batch, v: Vec<i64>| {
            let r = RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)])),
                vec![Arc::new(Int64Array::from(v))],
            )
            .unwrap();
            table.route(batch, &r, &[]).unwrap().remove(0)
        };
        let first = table
            .advance(vec![rows(0, vec![1, 2, 3])], 1, vec![None], vec![None])
            .unwrap();
        let old = first.staged.state;
        // Batch 1: row 1 of batch 0 matched, row 0 evicted; one new row, evicted at once.
        let advanced = table
            .advance(
                vec![old[0].clone(), rows(1, vec![4, 5])],
                1,
                vec![Some(BooleanArray::from(vec![false, true, false])), None],
                vec![
                    Some(BooleanArray::from(vec![true, false, false])),
                    Some(BooleanArray::from(vec![false, true])),
                ],
            )
            .unwrap();
        assert_eq!(
            values(&advanced.staged.state),
            vec![(1, true, 2), (2, false, 3), (1 << 32, false, 4)]
        );
        assert_eq!(
            values(&advanced.evicted),
            vec![(0, false, 1), ((1 << 32) | 1, false, 5)]
        );
        let delta = &advanced.staged.delta;
        let deleted = delta.column(3).as_boolean();
        let ids = delta
            .column(0)
            .as_primitive::<arrow::datatypes::UInt64Type>();
        let changes: Vec<(u64, bool)> = (0..delta.num_rows())
            .map(|i| (ids.value(i), deleted.value(i)))
            .collect();
        assert_eq!(changes, vec![(1, false), (1 << 32, false), (0, true)]);
    }
}
