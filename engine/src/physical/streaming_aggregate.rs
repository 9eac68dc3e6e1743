//! [`StreamingAggregateExec`]: a `GROUP BY` computed incrementally, one micro-batch at a time.
//!
//! **State**: for each group, the aggregate functions' intermediate state
//! (`Accumulator::state`), as record batches of `[group columns..., state columns...]`, the
//! schema of DataFusion's `Partial` aggregation. So every aggregate function with mergeable
//! state works, built-in or user-defined, with no special code.
//!
//! **Per batch**: the new rows are aggregated to partial state (`AggregateMode::Partial`),
//! merged with the committed state (`AggregateMode::PartialReduce`, i.e. `merge_batch`), and
//! the groups to emit are finalized (`AggregateMode::Final`, i.e. `evaluate`):
//! - `complete`: every group, every batch;
//! - `update`: the groups the batch's rows touched;
//! - `append` (windowed, with a watermark): the windows whose end is at or before the
//!   watermark in force, each emitted once, then evicted from state.
//!
//! **Watermark**: in a windowed aggregation, rows whose window ended at or before the
//! watermark in force are late: they are dropped before aggregation and counted. In `update`
//! mode, closed windows are evicted after the batch; `complete` mode keeps every group.
//!
//! **Checkpoint**: the merged state is staged in the operator's [`OperatorState`]; the runner
//! persists it as version N before writing `commits/N`.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, TimestampMillisecondArray};
use arrow::compute::{cast, concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::row::{RowConverter, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::udaf::AggregateFunctionExpr;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream, collect,
};
use futures::StreamExt;

use super::session_merge::merge_sessions;
use crate::runtime::OutputMode;
use crate::state::OperatorState;

/// What the operator did in one batch, for progress.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AggregateMetrics {
    /// Input rows dropped because their window had closed.
    pub late_rows: u64,
    /// Groups removed from state because their window closed.
    pub rows_evicted: u64,
    /// Groups emitted.
    pub rows_emitted: u64,
    /// Time spent in the operator (excluding its input).
    pub elapsed: Duration,
}

/// The streaming aggregation operator; see the module docs.
#[derive(Debug, Clone)]
pub struct StreamingAggregateExec {
    operator_id: String,
    input: Arc<dyn ExecutionPlan>,
    group_by: Arc<PhysicalGroupBy>,
    aggr_expr: Vec<Arc<AggregateFunctionExpr>>,
    filter_expr: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// Position of the window end among the group keys.
    window_end: Option<usize>,
    /// Position of a session window's start among the group keys (session windows merge).
    session_start: Option<usize>,
    mode: OutputMode,
    /// The watermark in force for this batch, in ms since the epoch.
    watermark_ms: Option<i64>,
    state: Arc<OperatorState>,
    metrics: Arc<Mutex<AggregateMetrics>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl StreamingAggregateExec {
    /// The operator for one batch. `group_by` and `aggr_expr` are over `input`'s schema;
    /// `schema` is the output schema the logical plan expects.
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        operator_id: String,
        input: Arc<dyn ExecutionPlan>,
        group_by: PhysicalGroupBy,
        aggr_expr: Vec<Arc<AggregateFunctionExpr>>,
        filter_expr: Vec<Option<Arc<dyn PhysicalExpr>>>,
        window_end: Option<usize>,
        session_start: Option<usize>,
        mode: OutputMode,
        watermark_ms: Option<i64>,
        state: Arc<OperatorState>,
        metrics: Arc<Mutex<AggregateMetrics>>,
    ) -> Result<Self> {
        // Planning the final stage once validates the expressions and gives the schema.
        let partial = AggregateExec::try_new(
            AggregateMode::Partial,
            group_by.clone(),
            aggr_expr.clone(),
            filter_expr.clone(),
            Arc::clone(&input),
            input.schema(),
        )?;
        let final_stage = AggregateExec::try_new(
            AggregateMode::Final,
            partial.group_expr().as_final(),
            partial.aggr_expr().to_vec(),
            filter_expr.clone(),
            Arc::new(partial.clone()),
            input.schema(),
        )?;
        let schema = final_stage.schema();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Self {
            operator_id,
            input,
            group_by: Arc::new(group_by),
            aggr_expr: partial.aggr_expr().to_vec(),
            filter_expr,
            window_end,
            session_start,
            mode,
            watermark_ms,
            state,
            metrics,
            schema,
            properties,
        })
    }

    /// Runs the whole batch: see the module docs.
    async fn run(self, context: Arc<TaskContext>) -> Result<Vec<RecordBatch>> {
        let input_schema = self.input.schema();
        let rows = collect(Arc::clone(&self.input), Arc::clone(&context)).await?;
        let started = Instant::now();
        let (rows, late_rows) = self.drop_late_rows(rows)?;

        let partial = AggregateExec::try_new(
            AggregateMode::Partial,
            Arc::clone(&self.group_by),
            self.aggr_expr.clone(),
            self.filter_expr.clone(),
            MemorySourceConfig::try_new_exec(&[rows], Arc::clone(&input_schema), None)?,
            Arc::clone(&input_schema),
        )?;
        let state_schema = partial.schema();
        let final_group_by = Arc::new(partial.group_expr().as_final());
        let new_partial = collect(Arc::new(partial), Arc::clone(&context)).await?;

        let mut merge_input = self.state.committed();
        merge_input.extend(new_partial.iter().cloned());
        if let (Some(start), Some(end)) = (self.session_start, self.window_end) {
            // Overlapping sessions of a group get one label, so the merge below combines them.
            let all = concat_batches(&state_schema, &merge_input)?;
            let keys: Vec<usize> = (0..self.group_by.expr().len())
                .filter(|i| *i != start && *i != end)
                .collect();
            merge_input = vec![merge_sessions(&all, &keys, start, end)?];
        }
        let merged = self
            .stage(
                AggregateMode::PartialReduce,
                &final_group_by,
                merge_input,
                &state_schema,
                &context,
            )
            .await?;
        let merged = concat_batches(&state_schema, &merged)?;

        let groups = self.group_by.expr().len();
        let (emit, keep, evicted) = match self.mode {
            OutputMode::Complete => (merged.clone(), merged, 0),
            OutputMode::Update => {
                let touched = touched_mask(&merged, &new_partial, groups)?;
                let emit = filter_record_batch(&merged, &touched)?;
                let (_, keep, evicted) = self.split_closed(&merged)?;
                (emit, keep, evicted)
            }
            OutputMode::Append => self.split_closed(&merged)?,
        };
        let output = self
            .stage(
                AggregateMode::Final,
                &final_group_by,
                vec![emit],
                &state_schema,
                &context,
            )
            .await?;
        self.state.stage(state_schema, groups, vec![keep]);

        let mut metrics = self.metrics.lock().unwrap_or_else(|p| p.into_inner());
        metrics.late_rows += late_rows;
        metrics.rows_evicted += evicted;
        metrics.rows_emitted += output.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        metrics.elapsed += started.elapsed();
        Ok(output)
    }

    /// Runs one aggregation stage over `batches` of partial state.
    async fn stage(
        &self,
        mode: AggregateMode,
        group_by: &Arc<PhysicalGroupBy>,
        batches: Vec<RecordBatch>,
        state_schema: &SchemaRef,
        context: &Arc<TaskContext>,
    ) -> Result<Vec<RecordBatch>> {
        let source = MemorySourceConfig::try_new_exec(&[batches], Arc::clone(state_schema), None)?;
        let stage = AggregateExec::try_new(
            mode,
            Arc::clone(group_by),
            self.aggr_expr.clone(),
            self.filter_expr.clone(),
            source,
            self.input.schema(),
        )?;
        collect(Arc::new(stage), Arc::clone(context)).await
    }

    /// Drops input rows whose window ended at or before the watermark in force. For session
    /// windows, a row starting before the watermark is late: it could otherwise reopen a
    /// session already emitted.
    fn drop_late_rows(&self, rows: Vec<RecordBatch>) -> Result<(Vec<RecordBatch>, u64)> {
        let (Some(end), Some(watermark)) = (self.window_end, self.watermark_ms) else {
            return Ok((rows, 0));
        };
        let (index, watermark) = match self.session_start {
            Some(start) => (start, watermark.saturating_sub(1)),
            None => (end, watermark),
        };
        let window_end = &self.group_by.expr()[index].0;
        let mut kept = Vec::with_capacity(rows.len());
        let mut late = 0;
        for batch in rows {
            let ends = window_end.evaluate(&batch)?.into_array(batch.num_rows())?;
            let open = after(&ends, watermark)?;
            let late_here = batch.num_rows() - open.true_count();
            late += late_here as u64;
            // Copying every column is only worth it when some row is late.
            kept.push(if late_here == 0 {
                batch
            } else {
                filter_record_batch(&batch, &open)?
            });
        }
        Ok((kept, late))
    }

    /// Splits state into (closed windows, open windows, number closed): a window is closed
    /// when its end is at or before the watermark in force.
    fn split_closed(&self, merged: &RecordBatch) -> Result<(RecordBatch, RecordBatch, u64)> {
        let (Some(index), Some(watermark)) = (self.window_end, self.watermark_ms) else {
            return Ok((merged.slice(0, 0), merged.clone(), 0));
        };
        let open = after(merged.column(index), watermark)?;
        let closed = arrow::compute::not(&open)?;
        let evicted = closed.true_count() as u64;
        Ok((
            filter_record_batch(merged, &closed)?,
            filter_record_batch(merged, &open)?,
            evicted,
        ))
    }
}

/// `ends > watermark` for a timestamp column (nulls count as open).
fn after(ends: &ArrayRef, watermark_ms: i64) -> Result<BooleanArray> {
    let as_ms = cast(ends, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
    let as_ms = as_ms
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .ok_or_else(|| DataFusionError::Internal("window end is not a timestamp".to_string()))?;
    Ok(as_ms
        .iter()
        .map(|end| Some(end.is_none_or(|e| e > watermark_ms)))
        .collect())
}

/// Which rows of `merged` have a group key that appears in `new_partial`.
fn touched_mask(
    merged: &RecordBatch,
    new_partial: &[RecordBatch],
    groups: usize,
) -> Result<BooleanArray> {
    if groups == 0 {
        // A global aggregate has one group, touched by every batch.
        return Ok(BooleanArray::from(vec![true; merged.num_rows()]));
    }
    let fields = merged.schema().fields()[..groups]
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    let converter = RowConverter::new(fields)?;
    let mut touched = HashSet::new();
    for batch in new_partial {
        let rows = converter.convert_columns(&batch.columns()[..groups])?;
        touched.extend(rows.iter().map(|r| r.as_ref().to_vec()));
    }
    let rows = converter.convert_columns(&merged.columns()[..groups])?;
    Ok(rows
        .iter()
        .map(|r| Some(touched.contains(r.as_ref())))
        .collect())
}

impl DisplayAs for StreamingAggregateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let groups: Vec<&str> = self
            .group_by
            .expr()
            .iter()
            .map(|(_, name)| name.as_str())
            .collect();
        let aggregates: Vec<&str> = self.aggr_expr.iter().map(|a| a.name()).collect();
        write!(
            f,
            "StreamingAggregateExec: id={}, mode={:?}, gby=[{}], aggr=[{}], watermark={:?}",
            self.operator_id,
            self.mode,
            groups.join(", "),
            aggregates.join(", "),
            self.watermark_ms
        )
    }
}

impl ExecutionPlan for StreamingAggregateExec {
    fn name(&self) -> &str {
        "StreamingAggregateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for (expr, _) in self.group_by.expr() {
            if f(expr)? == TreeNodeRecursion::Stop {
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
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "{} has one partition, not {partition}",
                self.name()
            )));
        }
        let this = self.clone();
        let schema = Arc::clone(&self.schema);
        let batches = futures::stream::once(async move { this.run(context).await })
            .map(|result| match result {
                Ok(batches) => futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
                Err(e) => futures::stream::iter(vec![Err(e)]).boxed(),
            })
            .flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}
