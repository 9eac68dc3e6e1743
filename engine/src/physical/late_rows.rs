//! [`DropLateRowsExec`]: drops the input rows of a windowed aggregation whose window had
//! closed under the watermark of the previous batch, and counts them as Spark's
//! `numRowsDroppedByWatermark` does ([`LateInput`]), while the rows stream into the
//! aggregation (no copy of the batch's input is kept).

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, TimestampMillisecondArray,
    UInt32Array,
};
use arrow::compute::{cast, filter_record_batch, take};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use arrow::row::{RowConverter, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;
use weir_sql::logical::HopPanes;

/// The late input of one batch, counted as Spark counts `numRowsDroppedByWatermark`.
///
/// Spark drops late rows of a streaming aggregation in its state-saving operator, which sees
/// the input already aggregated by key (one row per group and window), so it counts the
/// *groups* that late rows fell into; a hopping window's row is one row per window there.
/// Session windows are filtered before any aggregation, so there each late *row* counts.
#[derive(Debug)]
pub(super) struct LateInput {
    by_group: bool,
    rows: AtomicU64,
    /// The late groups seen: the group's other keys in row format, then its window's time.
    groups: Mutex<HashSet<Box<[u8]>>>,
}

impl LateInput {
    /// Counts the distinct groups (with their windows) of the late rows.
    pub(super) fn by_group() -> Self {
        Self {
            by_group: true,
            rows: AtomicU64::new(0),
            groups: Mutex::new(HashSet::new()),
        }
    }

    /// Counts the late rows.
    pub(super) fn by_row() -> Self {
        Self {
            by_group: false,
            ..Self::by_group()
        }
    }

    /// What Spark's `numRowsDroppedByWatermark` would report for the batch.
    pub(super) fn count(&self) -> u64 {
        if self.by_group {
            let groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
            groups.len() as u64
        } else {
            self.rows.load(Ordering::Relaxed)
        }
    }

    /// Takes in the late `(row, window time)` pairs of `batch`, whose group keys are `keys`
    /// with the window's at `window`.
    fn record(
        &self,
        batch: &RecordBatch,
        keys: &[Arc<dyn PhysicalExpr>],
        window: usize,
        late: &[(u32, i64)],
    ) -> Result<()> {
        if !self.by_group {
            self.rows.fetch_add(late.len() as u64, Ordering::Relaxed);
            return Ok(());
        }
        let rows = UInt32Array::from_iter_values(late.iter().map(|(row, _)| *row));
        let mut columns = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            if i != window {
                let values = key.evaluate(batch)?.into_array(batch.num_rows())?;
                columns.push(take(&values, &rows, None)?);
            }
        }
        let encoded = if columns.is_empty() {
            None
        } else {
            let fields = columns
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect();
            Some(RowConverter::new(fields)?.convert_columns(&columns)?)
        };
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        for (i, (_, time)) in late.iter().enumerate() {
            let mut key = encoded
                .as_ref()
                .map_or_else(Vec::new, |rows| rows.row(i).as_ref().to_vec());
            key.extend_from_slice(&time.to_le_bytes());
            groups.insert(key.into_boxed_slice());
        }
        Ok(())
    }
}

/// Which rows of a batch have a window still open (`None`: all of them), and each late
/// `(row, window time)` pair.
pub(super) type LateSplit = (Option<BooleanArray>, Vec<(u32, i64)>);

/// Keeps the rows whose closing key (`keys[window]`) is after `watermark_ms`; counts the
/// others into `late`.
#[derive(Debug, Clone)]
pub(super) struct DropLateRowsExec {
    input: Arc<dyn ExecutionPlan>,
    /// The aggregation's group keys, over `input`.
    keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Which key closes a row's group: its window end (or, for session windows, the row's
    /// session start).
    window: usize,
    watermark_ms: i64,
    /// For a hopping window aggregated by panes, the closing key is the start of the row's
    /// latest window, and a row counts once per window of it that closed.
    panes: Option<HopPanes>,
    late: Arc<LateInput>,
}

impl DropLateRowsExec {
    pub(super) fn new(
        input: Arc<dyn ExecutionPlan>,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        window: usize,
        watermark_ms: i64,
        panes: Option<HopPanes>,
        late: Arc<LateInput>,
    ) -> Self {
        Self {
            input,
            keys,
            window,
            watermark_ms,
            panes,
            late,
        }
    }

    fn keep_open(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let ends = self.keys[self.window]
            .evaluate(&batch)?
            .into_array(batch.num_rows())?;
        let (open, late) = match self.panes {
            Some(panes) => late_windows(&ends, self.watermark_ms, panes)?,
            None => late_rows(&ends, self.watermark_ms)?,
        };
        if !late.is_empty() {
            self.late.record(&batch, &self.keys, self.window, &late)?;
        }
        match open {
            Some(open) if open.true_count() < batch.num_rows() => {
                Ok(filter_record_batch(&batch, &open)?)
            }
            _ => Ok(batch),
        }
    }
}

/// The rows whose `ends` are after `watermark_ms` (`None`: all of them), and the others as
/// `(row, end)` pairs.
fn late_rows(ends: &ArrayRef, watermark_ms: i64) -> Result<LateSplit> {
    let Some(open) = after(ends, watermark_ms)? else {
        return Ok((None, Vec::new()));
    };
    let values = cast(ends, &DataType::Int64)?;
    let values = values.as_primitive::<Int64Type>();
    let late = open
        .iter()
        .zip(0u32..)
        .filter(|(open, _)| *open == Some(false))
        .map(|(_, row)| (row, values.value(row as usize)))
        .collect();
    Ok((Some(open), late))
}

/// `ends > watermark` for a timestamp column, compared in the column's own unit (nulls count
/// as open); `None` when every end is after the watermark (the common case, found by one
/// vectorized minimum without a mask).
pub(super) fn after(ends: &ArrayRef, watermark_ms: i64) -> Result<Option<BooleanArray>> {
    let DataType::Timestamp(unit, _) = ends.data_type() else {
        return Err(DataFusionError::Internal(format!(
            "a window end or event time of type {}, not a timestamp",
            ends.data_type()
        )));
    };
    // A whole number of the unit is after `watermark_ms` when it is after the watermark
    // rounded down to the unit.
    let threshold = match unit {
        TimeUnit::Second => watermark_ms.div_euclid(1_000),
        TimeUnit::Millisecond => watermark_ms,
        TimeUnit::Microsecond => watermark_ms.saturating_mul(1_000),
        TimeUnit::Nanosecond => watermark_ms.saturating_mul(1_000_000),
    };
    let values = cast(ends, &DataType::Int64)?;
    let values = values.as_primitive::<Int64Type>();
    if arrow::compute::min(values).is_none_or(|earliest| earliest > threshold) {
        return Ok(None);
    }
    let open = arrow::compute::kernels::cmp::gt(values, &Int64Array::new_scalar(threshold))?;
    if open.null_count() == 0 {
        return Ok(Some(open));
    }
    // A null end never closes.
    Ok(Some(open.iter().map(|o| Some(o.unwrap_or(true))).collect()))
}

impl DisplayAs for DropLateRowsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "DropLateRowsExec: {} > {}",
            self.keys[self.window], self.watermark_ms
        )?;
        if let Some(panes) = self.panes {
            write!(f, ", by panes of {} ms", panes.slide_ms)?;
        }
        Ok(())
    }
}

impl ExecutionPlan for DropLateRowsExec {
    fn name(&self) -> &str {
        "DropLateRowsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for key in &self.keys {
            if f(key)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let mut exec = self.as_ref().clone();
        exec.input = children.swap_remove(0);
        Ok(Arc::new(exec))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let this = self.clone();
        let rows = self.input.execute(partition, context)?;
        let kept = rows.map(move |batch| this.keep_open(batch?));
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.input.schema(),
            kept,
        )))
    }
}

/// For rows whose latest window starts at `starts` (a timestamp column): the rows with a
/// window still open (`None` when all are), and each of the rows' windows that had closed,
/// as `(row, window start in ms)`; a window closes when its start is at or before
/// `threshold_ms` (the watermark minus the window size). A null start never closes.
fn late_windows(starts: &ArrayRef, threshold_ms: i64, panes: HopPanes) -> Result<LateSplit> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::array::{TimestampMicrosecondArray, TimestampNanosecondArray, TimestampSecondArray};

    use super::*;

    fn open(ends: ArrayRef, watermark_ms: i64) -> Option<Vec<bool>> {
        after(&ends, watermark_ms)
            .unwrap()
            .map(|mask| mask.iter().map(Option::unwrap).collect())
    }

    #[test]
    fn times_are_compared_with_the_watermark_in_their_own_unit() {
        // 1 ms and 1.5 ms against a watermark of 1 ms: only the later is after it.
        let micros: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1_000, 1_500]));
        assert_eq!(open(micros, 1), Some(vec![false, true]));
        // Whole seconds: 2 s is after 1 999 ms, 1 s is not; after 2 000 ms neither is.
        let seconds: ArrayRef = Arc::new(TimestampSecondArray::from(vec![1, 2]));
        assert_eq!(open(Arc::clone(&seconds), 1_999), Some(vec![false, true]));
        assert_eq!(open(seconds, 2_000), Some(vec![false, false]));
        // Before the epoch, seconds round down: -1 s is after -1 001 ms, not after -1 000 ms.
        let negative: ArrayRef = Arc::new(TimestampSecondArray::from(vec![-1]));
        assert_eq!(open(Arc::clone(&negative), -1_001), None);
        assert_eq!(open(negative, -1_000), Some(vec![false]));
    }

    #[test]
    fn every_time_closes_at_the_end_of_time_and_nulls_never_close() {
        let nanos: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![
            Some(i64::MAX - 1),
            None,
            Some(0),
        ]));
        // `flush_on_end` moves the watermark to i64::MAX ms: saturating, nothing is after it.
        assert_eq!(
            open(Arc::clone(&nanos), i64::MAX),
            Some(vec![false, true, false])
        );
        // All after the watermark: no mask at all.
        assert_eq!(open(nanos, -1), None);
    }

    #[test]
    fn a_column_that_is_not_a_timestamp_is_an_internal_error() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        let error = after(&ints, 0).unwrap_err().to_string();
        assert!(error.contains("of type Int64, not a timestamp"), "{error}");
    }

    const PANES: HopPanes = HopPanes {
        slide_ms: 5_000,
        windows: 3,
    };

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
