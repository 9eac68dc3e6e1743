//! Hopping windows aggregated by panes ([`HopPanes`], set by `AggregateHopPanes`): each input
//! row comes once, keyed by its pane (the start of its latest window), instead of once per
//! window. [`expand_panes`] adds a pane's partial state to each window holding it (and
//! `late_rows.rs` counts a late row once per window of it that had closed).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, DurationMicrosecondArray, DurationMillisecondArray, DurationNanosecondArray,
    DurationSecondArray, RecordBatch, UInt32Array,
};
use arrow::compute::kernels::numeric::sub;
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::error::{DataFusionError, Result};
use weir_sql::logical::HopPanes;

/// The partial state `batch` of panes, keyed by pane start at column `start`, as partial
/// state of windows: each row repeated once per window holding its pane, with the window's
/// start (`pane − j × slide` for the `j`-th copy). Rows of one window from different panes
/// are then merged by the caller.
pub(super) fn expand_panes(
    batch: &RecordBatch,
    start: usize,
    panes: HopPanes,
) -> Result<RecordBatch> {
    let windows = usize::try_from(panes.windows)
        .map_err(|_| DataFusionError::Internal(format!("{} windows a pane", panes.windows)))?;
    let rows = batch.num_rows();
    let repeated = u32::try_from(rows * windows).map_err(|_| {
        DataFusionError::ResourcesExhausted(format!(
            "{rows} panes in {windows} windows each are too many rows for one batch"
        ))
    })?;
    let indices = UInt32Array::from_iter_values((0..repeated).map(|i| i / windows as u32));
    let expanded = take_record_batch(batch, &indices)?;
    let offsets = durations(
        batch.column(start).data_type(),
        (0..rows).flat_map(|_| (0..panes.windows).map(|j| j * panes.slide_ms)),
    )?;
    let mut columns = expanded.columns().to_vec();
    columns[start] = sub(&columns[start], &offsets)?;
    Ok(RecordBatch::try_new(expanded.schema(), columns)?)
}

/// `ms` as durations in the unit of the timestamp type `timestamp`, for adding to or
/// subtracting from a column of that type.
pub(super) fn durations(timestamp: &DataType, ms: impl Iterator<Item = i64>) -> Result<ArrayRef> {
    Ok(match timestamp {
        DataType::Timestamp(TimeUnit::Second, _) => {
            Arc::new(DurationSecondArray::from_iter_values(ms.map(|v| v / 1000)))
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            Arc::new(DurationMillisecondArray::from_iter_values(ms))
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => Arc::new(
            DurationMicrosecondArray::from_iter_values(ms.map(|v| v * 1000)),
        ),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Arc::new(
            DurationNanosecondArray::from_iter_values(ms.map(|v| v * 1_000_000)),
        ),
        other => {
            return Err(DataFusionError::Internal(format!(
                "window start is {other}, not a timestamp"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, TimestampSecondArray};
    use arrow::compute::cast;
    use arrow::datatypes::{Field, Schema};

    use super::*;

    const PANES: HopPanes = HopPanes {
        slide_ms: 5_000,
        windows: 3,
    };

    #[test]
    fn a_pane_is_added_to_each_window_holding_it() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("start", DataType::Timestamp(TimeUnit::Second, None), true),
            Field::new("n", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![7, 8])),
                Arc::new(TimestampSecondArray::from(vec![Some(100), None])),
                Arc::new(Int64Array::from(vec![2, 1])),
            ],
        )
        .unwrap();
        let expanded = expand_panes(&batch, 1, PANES).unwrap();
        let column = |i: usize| {
            let as_i64 = cast(expanded.column(i), &DataType::Int64).unwrap();
            as_i64
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(column(0), [7, 7, 7, 8, 8, 8].map(Some));
        assert_eq!(column(1), [Some(100), Some(95), Some(90), None, None, None]);
        assert_eq!(column(2), [2, 2, 2, 1, 1, 1].map(Some));
    }
}
