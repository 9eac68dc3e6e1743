//! The matching pairs of one state partition in one batch: new rows of each side against the
//! other side's rows, by key, then the join's residual condition.
//!
//! DataFusion's `HashJoinExec` would rebuild its hash table over the state on every call and
//! does not say which input rows matched; a streaming join needs to know which state rows
//! found a partner (their `matched` flag, for outer and semi joins) and to keep its state's
//! hash indexes between batches. So the pairs are found with the indexes of `state_keys.rs` (an
//! `arrow` row encoding of the keys, as `HashJoinExec` and the aggregate's group keys use),
//! and the condition is DataFusion's physical expression over `[left, right]`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{filter, take};
use arrow::datatypes::{SchemaRef, UInt32Type};
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;

/// The joined rows `[left columns, right columns]` of the pairs `(left row, right row)` that
/// meet `condition`, and which pairs those are.
pub(super) struct Joined {
    pub rows: RecordBatch,
    pub left: UInt32Array,
    pub right: UInt32Array,
}

/// Joins `left` and `right` rows pairwise and keeps the pairs meeting `condition`.
pub(super) fn join_pairs(
    joined_schema: &SchemaRef,
    left: &[ArrayRef],
    right: &[ArrayRef],
    left_rows: Vec<u32>,
    right_rows: Vec<u32>,
    condition: Option<&Arc<dyn PhysicalExpr>>,
) -> Result<Joined> {
    let (left_rows, right_rows) = (UInt32Array::from(left_rows), UInt32Array::from(right_rows));
    let mut columns = Vec::with_capacity(left.len() + right.len());
    for column in left {
        columns.push(take(column, &left_rows, None)?);
    }
    for column in right {
        columns.push(take(column, &right_rows, None)?);
    }
    let rows = RecordBatch::try_new_with_options(
        Arc::clone(joined_schema),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(left_rows.len())),
    )?;
    let Some(condition) = condition else {
        return Ok(Joined {
            rows,
            left: left_rows,
            right: right_rows,
        });
    };
    let verdict = condition.evaluate(&rows)?.into_array(rows.num_rows())?;
    let Some(verdict) = verdict.as_any().downcast_ref::<BooleanArray>() else {
        return Err(datafusion::error::DataFusionError::Internal(
            "a join condition that is not a boolean".to_string(),
        ));
    };
    // A null verdict is not a match.
    let keep = match verdict.null_count() {
        0 => verdict.clone(),
        _ => verdict.iter().map(|v| Some(v == Some(true))).collect(),
    };
    Ok(Joined {
        rows: arrow::compute::filter_record_batch(&rows, &keep)?,
        left: filter(&left_rows, &keep)?
            .as_primitive::<UInt32Type>()
            .clone(),
        right: filter(&right_rows, &keep)?
            .as_primitive::<UInt32Type>()
            .clone(),
    })
}

/// A mask of `rows` rows with the rows in `matched` set.
pub(super) fn mask(rows: usize, matched: &UInt32Array) -> Option<BooleanArray> {
    if matched.is_empty() {
        return None;
    }
    let mut flags = vec![false; rows];
    for i in matched.values() {
        flags[*i as usize] = true;
    }
    Some(BooleanArray::from(flags))
}
