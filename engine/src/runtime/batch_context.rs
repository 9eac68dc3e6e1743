//! [`BatchContext`]: what the streaming operators of one micro-batch get from the runtime (the
//! query's state, the batch's watermarks, the output mode) and give back ([`OperatorMetrics`]),
//! whatever the operators are; and [`PlannerFactory`], through which the runtime asks the
//! layer above it for the batch's query planner, so that the runtime names no operator.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::execution::TaskContext;
use datafusion::execution::context::QueryPlanner;

use super::query_options::OutputMode;
use crate::event_time::EventTime;
use crate::state::QueryState;

/// What the streaming operators of one batch need from the runtime.
#[derive(Debug)]
pub struct BatchContext {
    /// The batch's id: rows it adds to state are numbered from it.
    pub batch: u64,
    /// The query's operator states.
    pub state: Arc<QueryState>,
    /// The watermarks the batch's stateful operators work with.
    pub watermarks: BatchWatermarks,
    /// The query's output mode.
    pub mode: OutputMode,
    /// Metrics of each operator in this batch, by operator id.
    pub metrics: Mutex<BTreeMap<String, Arc<Mutex<OperatorMetrics>>>>,
}

impl BatchContext {
    /// The context of the batch a plan runs in, from its task's session configuration, where
    /// the runtime puts it: operators find their state here when they execute, by their id,
    /// rather than holding it from planning.
    pub fn of(task: &TaskContext) -> datafusion::error::Result<Arc<Self>> {
        task.session_config()
            .get_extension::<Self>()
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Internal(
                    "a streaming operator ran outside a micro-batch".to_string(),
                )
            })
    }

    /// The metrics operator `id` fills in this batch (created empty).
    pub fn metrics_of(&self, id: &str) -> Arc<Mutex<OperatorMetrics>> {
        Arc::clone(
            self.metrics
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(id.to_string())
                .or_default(),
        )
    }
}

/// The two event-time watermarks of one batch, as Spark (≥ 3.4) uses them: input rows are late when the watermark of the *previous* batch has closed them, and
/// state is evicted (and, in append mode, emitted) with the watermark in force for this
/// batch. So a row older than this batch's watermark but not the previous one still counts
/// in the window this batch closes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchWatermarks {
    /// Spark's `eventTimeWatermarkForLateEvents`: the watermark in force for the previous
    /// batch (for the first batch, its own).
    pub late_rows: Option<EventTime>,
    /// Spark's `eventTimeWatermarkForEviction`: the watermark in force for this batch.
    pub eviction: Option<EventTime>,
}

impl BatchWatermarks {
    /// These watermarks `lag_ms` milliseconds earlier: those of an operator above a join,
    /// whose output may be older than the query's watermark (see `input_watermark_lag_ms`).
    pub fn lagged(self, lag_ms: i64) -> Self {
        // The end of time (the input has ended) stays the end of time.
        let lag = |w: Option<EventTime>| {
            w.map(|w| match w {
                EventTime::END_OF_TIME => w,
                w => EventTime::from_ms(w.ms().saturating_sub(lag_ms)),
            })
        };
        Self {
            late_rows: lag(self.late_rows),
            eviction: lag(self.eviction),
        }
    }
}

/// What a stateful operator did in one batch, for progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperatorMetrics {
    /// Late input dropped, counted as Spark's `numRowsDroppedByWatermark` (for an
    /// aggregation: the groups, a window of a key, that late rows fell into; for session
    /// windows, the late rows).
    pub late_rows: u64,
    /// Of `late_rows`, those of each input of an operator with several (a join's `left` and
    /// `right`).
    pub late_rows_by_input: BTreeMap<String, u64>,
    /// Rows removed from state because the watermark passed them.
    pub rows_evicted: u64,
    /// Rows emitted.
    pub rows_emitted: u64,
    /// Time spent in the operator (excluding its input).
    pub elapsed: Duration,
}

/// Makes the query planner of one batch, with the streaming operators, from its context.
pub type PlannerFactory =
    Arc<dyn Fn(Arc<BatchContext>) -> Arc<dyn QueryPlanner + Send + Sync> + Send + Sync>;
