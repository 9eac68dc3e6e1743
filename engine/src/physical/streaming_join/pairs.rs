//! The matching pairs of one state partition in one batch: new rows of each side against the
//! other side's rows, by key, then the join's residual condition.
//!
//! DataFusion's `HashJoinExec` would rebuild its hash table on every call and does not say
//! which input rows matched; a streaming join needs both: which state rows found a partner
//! (their `matched` flag, for outer and semi joins) and a build side that is the batch's few
//! new rows rather than the state. So the pairs are found here with an `arrow` row encoding
//! of the keys (as `HashJoinExec` and the aggregate's group keys use) and a hash map over the
//! new rows, and the condition is DataFusion's physical expression over `[left, right]`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{and, filter, is_not_null, take};
use arrow::datatypes::SchemaRef;
use arrow::datatypes::UInt32Type;
use arrow::row::{RowConverter, Rows};
use datafusion::error::Result;
use datafusion::physical_expr::PhysicalExpr;

/// Rows of one side, with their keys in row format (`None`: a null key, matching nothing).
pub(super) struct Keyed {
    /// The side's columns.
    pub columns: Vec<ArrayRef>,
    pub rows: usize,
    keys: Rows,
    valid: Option<BooleanArray>,
}

impl Keyed {
    /// `columns` keyed by `keys` (arrays computed from them).
    pub(super) fn new(
        converter: &RowConverter,
        columns: Vec<ArrayRef>,
        rows: usize,
        keys: &[ArrayRef],
    ) -> Result<Self> {
        let mut valid: Option<BooleanArray> = None;
        for key in keys {
            if key.null_count() > 0 {
                let present = is_not_null(key)?;
                valid = Some(match valid {
                    Some(v) => and(&v, &present)?,
                    None => present,
                });
            }
        }
        Ok(Self {
            columns,
            rows,
            keys: converter.convert_columns(keys)?,
            valid,
        })
    }

    fn has_key(&self, row: usize) -> bool {
        self.valid.as_ref().is_none_or(|v| v.value(row))
    }
}

/// A hash index of one side's new rows by key.
pub(super) struct KeyIndex<'a> {
    rows: HashMap<&'a [u8], Vec<u32>>,
}

impl<'a> KeyIndex<'a> {
    pub(super) fn new(side: &'a Keyed) -> Self {
        let mut rows: HashMap<&[u8], Vec<u32>> = HashMap::with_capacity(side.rows);
        for i in 0..side.rows {
            if side.has_key(i) {
                rows.entry(side.keys.row(i).data())
                    .or_default()
                    .push(i as u32);
            }
        }
        Self { rows }
    }

    /// The pairs `(probe row, indexed row)` with equal keys.
    pub(super) fn probe(&self, probe: &Keyed) -> (Vec<u32>, Vec<u32>) {
        let (mut probed, mut indexed) = (Vec::new(), Vec::new());
        if self.rows.is_empty() {
            return (probed, indexed);
        }
        for i in 0..probe.rows {
            if !probe.has_key(i) {
                continue;
            }
            if let Some(found) = self.rows.get(probe.keys.row(i).data()) {
                for &j in found {
                    probed.push(i as u32);
                    indexed.push(j);
                }
            }
        }
        (probed, indexed)
    }
}

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
    left: &Keyed,
    right: &Keyed,
    left_rows: Vec<u32>,
    right_rows: Vec<u32>,
    condition: Option<&Arc<dyn PhysicalExpr>>,
) -> Result<Joined> {
    let (left_rows, right_rows) = (UInt32Array::from(left_rows), UInt32Array::from(right_rows));
    let mut columns = Vec::with_capacity(left.columns.len() + right.columns.len());
    for column in &left.columns {
        columns.push(take(column, &left_rows, None)?);
    }
    for column in &right.columns {
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
