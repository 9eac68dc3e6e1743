//! [`DropLateRowsExec`]: drops the input rows of a windowed aggregation whose window has
//! closed under the watermark in force, and counts them, while the rows stream into the
//! aggregation (no copy of the batch's input is kept).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
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

use super::hop_panes::late_windows;

/// Keeps the rows whose `window_end` is after `watermark_ms`; counts the others in `late`.
#[derive(Debug, Clone)]
pub(super) struct DropLateRowsExec {
    input: Arc<dyn ExecutionPlan>,
    /// A row's window end (or, for session windows, the row's session start).
    window_end: Arc<dyn PhysicalExpr>,
    watermark_ms: i64,
    /// For a hopping window aggregated by panes, `window_end` is the start of the row's
    /// latest window, and a row counts once per window of it that closed.
    panes: Option<HopPanes>,
    late: Arc<AtomicU64>,
}

impl DropLateRowsExec {
    pub(super) fn new(
        input: Arc<dyn ExecutionPlan>,
        window_end: Arc<dyn PhysicalExpr>,
        watermark_ms: i64,
        panes: Option<HopPanes>,
        late: Arc<AtomicU64>,
    ) -> Self {
        Self {
            input,
            window_end,
            watermark_ms,
            panes,
            late,
        }
    }

    fn keep_open(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let ends = self
            .window_end
            .evaluate(&batch)?
            .into_array(batch.num_rows())?;
        let (open, late) = match self.panes {
            Some(panes) => late_windows(&ends, self.watermark_ms, panes)?,
            None => match after(&ends, self.watermark_ms)? {
                Some(open) => {
                    let late = batch.num_rows() - open.true_count();
                    (Some(open), late as u64)
                }
                None => (None, 0),
            },
        };
        if late > 0 {
            self.late.fetch_add(late, Ordering::Relaxed);
        }
        match open {
            Some(open) if open.true_count() < batch.num_rows() => {
                Ok(filter_record_batch(&batch, &open)?)
            }
            _ => Ok(batch),
        }
    }
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
            self.window_end, self.watermark_ms
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
        f(&self.window_end)
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
}
