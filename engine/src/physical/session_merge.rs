//! Session windows: relabelling each session row `[start, end)` of aggregation state with the
//! merged session it belongs to, so that a `PartialReduce` grouping by the new labels merges
//! the sessions' aggregate states.
//!
//! A row of a session window starts as its own session `[ts, ts + gap)`; two sessions of the
//! same group keys merge when they overlap (`next.start < current.end`), and the merged session
//! spans from the first start to the latest end.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use arrow::compute::{SortColumn, cast, lexsort_to_indices, take};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, SortField};
use datafusion::error::{DataFusionError, Result};

/// Relabels `(start, end)` of every row of `batch` to its merged session. `keys` are the other
/// group columns.
pub(crate) fn merge_sessions(
    batch: &RecordBatch,
    keys: &[usize],
    start: usize,
    end: usize,
) -> Result<RecordBatch> {
    if batch.num_rows() == 0 {
        return Ok(batch.clone());
    }
    let mut order: Vec<SortColumn> = keys
        .iter()
        .map(|k| SortColumn {
            values: Arc::clone(batch.column(*k)),
            options: None,
        })
        .collect();
    order.push(SortColumn {
        values: Arc::clone(batch.column(start)),
        options: None,
    });
    let indices = lexsort_to_indices(&order, None)?;
    let columns = batch
        .columns()
        .iter()
        .map(|c| take(c, &indices, None))
        .collect::<Result<Vec<_>, _>>()?;
    let sorted = RecordBatch::try_new(batch.schema(), columns)?;

    let starts = as_i64(sorted.column(start))?;
    let ends = as_i64(sorted.column(end))?;
    let key_rows = if keys.is_empty() {
        None
    } else {
        let fields = keys
            .iter()
            .map(|k| SortField::new(sorted.schema().field(*k).data_type().clone()))
            .collect();
        let converter = RowConverter::new(fields)?;
        let key_columns: Vec<ArrayRef> =
            keys.iter().map(|k| Arc::clone(sorted.column(*k))).collect();
        Some(converter.convert_columns(&key_columns)?)
    };

    // One sweep assigns clusters; a second gives each row its cluster's bounds.
    let rows = sorted.num_rows();
    let mut cluster_of = Vec::with_capacity(rows);
    let mut bounds: Vec<(i64, i64)> = Vec::new();
    for row in 0..rows {
        let (s, e) = (starts.value(row), ends.value(row));
        let same_keys = row > 0
            && key_rows
                .as_ref()
                .is_none_or(|k| k.row(row) == k.row(row - 1));
        match bounds.last_mut() {
            Some((_, cluster_end)) if same_keys && s < *cluster_end => {
                *cluster_end = (*cluster_end).max(e)
            }
            _ => bounds.push((s, e)),
        }
        cluster_of.push(bounds.len() - 1);
    }
    let new_starts = Int64Array::from_iter_values(cluster_of.iter().map(|c| bounds[*c].0));
    let new_ends = Int64Array::from_iter_values(cluster_of.iter().map(|c| bounds[*c].1));
    let mut columns = sorted.columns().to_vec();
    columns[start] = cast(
        &(Arc::new(new_starts) as ArrayRef),
        sorted.schema().field(start).data_type(),
    )?;
    columns[end] = cast(
        &(Arc::new(new_ends) as ArrayRef),
        sorted.schema().field(end).data_type(),
    )?;
    Ok(RecordBatch::try_new(sorted.schema(), columns)?)
}

fn as_i64(column: &ArrayRef) -> Result<Int64Array> {
    let values = cast(column, &DataType::Int64)?;
    values
        .as_any()
        .downcast_ref::<Int64Array>()
        .cloned()
        .ok_or_else(|| DataFusionError::Internal("session bounds are not integers".to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::array::{StringArray, TimestampMillisecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use arrow::util::pretty::pretty_format_batches;

    use super::*;

    #[test]
    fn overlapping_sessions_of_a_key_merge_and_others_do_not() {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let schema = Arc::new(Schema::new(vec![
            Field::new("user", DataType::Utf8, false),
            Field::new("start", ts.clone(), false),
            Field::new("end", ts, false),
        ]));
        // a: [0,10) [5,15) merge to [0,15); [15,25) only touches, so it stays apart.
        // b: [8,18) alone.
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "a", "a"])),
                Arc::new(TimestampMillisecondArray::from(vec![5, 8, 0, 15])),
                Arc::new(TimestampMillisecondArray::from(vec![15, 18, 10, 25])),
            ],
        )
        .unwrap();
        let merged = merge_sessions(&batch, &[0], 1, 2).unwrap();
        assert_eq!(
            pretty_format_batches(&[merged]).unwrap().to_string(),
            "+------+-------------------------+-------------------------+\n\
             | user | start                   | end                     |\n\
             +------+-------------------------+-------------------------+\n\
             | a    | 1970-01-01T00:00:00     | 1970-01-01T00:00:00.015 |\n\
             | a    | 1970-01-01T00:00:00     | 1970-01-01T00:00:00.015 |\n\
             | a    | 1970-01-01T00:00:00.015 | 1970-01-01T00:00:00.025 |\n\
             | b    | 1970-01-01T00:00:00.008 | 1970-01-01T00:00:00.018 |\n\
             +------+-------------------------+-------------------------+"
        );
    }
}
