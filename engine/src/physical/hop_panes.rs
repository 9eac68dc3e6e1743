//! Hopping windows aggregated by panes ([`HopPanes`], set by `AggregateHopPanes`): each input
//! row comes once, keyed by its pane (the start of its latest window), instead of once per
//! window. [`expand_panes`] adds a pane's partial state to each window holding it, and
//! [`late_windows`] lists the windows of a row that had closed, so late rows are counted
//! as if the row had been unnested into its windows.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, DurationMicrosecondArray, DurationMillisecondArray,
    DurationNanosecondArray, DurationSecondArray, RecordBatch, TimestampMillisecondArray,
    UInt32Array,
};
use arrow::compute::kernels::numeric::sub;
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::error::{DataFusionError, Result};
use weir_sql::logical::HopPanes;

use super::late_rows::LateSplit;

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

/// For rows whose latest window starts at `starts` (a timestamp column): the rows with a
/// window still open (`None` when all are), and each of the rows' windows that had closed,
/// as `(row, window start in ms)`; a window closes when its start is at or before
/// `threshold_ms` (the watermark minus the window size). A null start never closes.
pub(super) fn late_windows(
    starts: &ArrayRef,
    threshold_ms: i64,
    panes: HopPanes,
) -> Result<LateSplit> {
    let as_ms = cast(starts, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    let as_ms = as_ms
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .ok_or_else(|| DataFusionError::Internal("window start is not a timestamp".to_string()))?;
    let earliest_window = (panes.windows - 1) * panes.slide_ms;
    let all_open = arrow::compute::min(as_ms)
        .is_none_or(|earliest| earliest.saturating_sub(earliest_window) > threshold_ms);
    if all_open {
        return Ok((None, Vec::new()));
    }
    let mut late = Vec::new();
    let open: BooleanArray = as_ms
        .iter()
        .zip(0u32..)
        .map(|(latest, row)| {
            let Some(latest) = latest else {
                return Some(true);
            };
            // Window j starts at latest − j × slide: closed for j ≥ ⌈(latest − threshold) / slide⌉.
            let first_closed = if latest <= threshold_ms {
                0
            } else {
                (latest - threshold_ms + panes.slide_ms - 1) / panes.slide_ms
            };
            late.extend(
                (first_closed.min(panes.windows)..panes.windows)
                    .map(|j| (row, latest - j * panes.slide_ms)),
            );
            Some(latest > threshold_ms)
        })
        .collect();
    Ok((Some(open), late))
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

    #[test]
    fn a_row_is_late_in_each_of_its_windows_that_closed() {
        // Latest windows start at 100 s, 92 s (a row's windows: 92, 87, 82), 70 s and null;
        // windows starting at or before 90 s have closed.
        let starts: ArrayRef = Arc::new(TimestampSecondArray::from(vec![
            Some(100),
            Some(92),
            Some(70),
            None,
        ]));
        let (open, late) = late_windows(&starts, 90_000, PANES).unwrap();
        assert_eq!(
            open.unwrap().iter().collect::<Vec<_>>(),
            [true, true, false, true].map(Some)
        );
        // 100: 90 closed; 92: 87 and 82 closed; 70: all three.
        assert_eq!(
            late,
            [
                (0, 90_000),
                (1, 87_000),
                (1, 82_000),
                (2, 70_000),
                (2, 65_000),
                (2, 60_000)
            ]
        );
        // Nothing closes before the earliest window of the earliest row.
        let (open, late) = late_windows(&starts, 59_999, PANES).unwrap();
        assert!(open.is_none());
        assert!(late.is_empty());
    }
}
