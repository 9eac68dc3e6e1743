//! [`StreamingAggregateExec`]: a `GROUP BY` computed incrementally, one micro-batch at a time.
//!
//! **State**: for each group, the aggregate functions' intermediate state
//! (`Accumulator::state`), as record batches of `[group columns..., state columns...]`, the
//! schema of DataFusion's `Partial` aggregation. So every aggregate function with mergeable
//! state works, built-in or user-defined, with no special code. A tumbling or hopping
//! window's end, when it follows from its start (`DerivedWindowEnd`), is not a key: groups
//! are keyed by the start, and the end is added to the rows emitted.
//!
//! **Distinct counts**: a `count(DISTINCT x)` would keep every value of `x` per group and
//! re-merge them all whenever the group is touched. Instead its `(group, x)` pairs are kept
//! in a [`PairSet`], one for all the counts of one `x` (each pair marked with the counts that
//! counted it); [`DistinctFlagsExec`] flags the rows whose pair is new to a count, and the
//! aggregation counts flagged rows (`count(x) FILTER (WHERE flag)`, one number per group).
//! Pairs are evicted with their window. Not for session windows, whose groups merge. As
//! the flags' groups are numbered, the partial aggregation groups rows by that number and
//! takes the keys back from it afterwards (`keys_from_numbers`).
//!
//! **Hopping windows by panes** (`HopPanes`): when the input holds each row once, keyed by
//! its pane (the start of its latest window), the partial aggregation groups rows by pane;
//! each pane's partial state is then repeated into the windows holding it, and merged with
//! the window's committed state as below, so a row is aggregated once rather than once per
//! window.
//!
//! **Per batch**: the new rows stream into a partial aggregation (`AggregateMode::Partial`,
//! in parallel over the input's partitions), late rows dropped on the way; that partial
//! state is split by key hash into the query's state partitions, and each state partition,
//! in parallel, merges it with its committed state (`AggregateMode::PartialReduce`, i.e.
//! `merge_batch`), finalizes the groups to emit (`AggregateMode::Final`, i.e. `evaluate`)
//! and works out its state delta (the groups the batch touched and the groups evicted)
//! without comparing whole states. Groups the batch did not touch stay in the record
//! batches they are in, uncopied, until a partition holds more than `MAX_STATE_BATCHES`
//! of them and they are concatenated. What each output mode emits:
//! - `complete`: every group, every batch;
//! - `update`: the groups the batch's rows touched;
//! - `append` (windowed, with a watermark): the windows whose end is at or before the
//!   watermark in force, each emitted once, then evicted from state.
//!
//! **Watermark** (Spark ≥ 3.4, [`BatchWatermarks`]): in a windowed aggregation, an input row
//! is late when its window ended at or before the watermark in force for the *previous*
//! batch (Spark's `eventTimeWatermarkForLateEvents`): it is dropped before aggregation and
//! counted. Windows close, and are emitted in `append` mode and evicted, with the watermark
//! in force for *this* batch (`eventTimeWatermarkForEviction`). So a row older than this
//! batch's watermark but not the previous batch's still counts, in a window this very batch
//! emits. A hopping window's row is counted once per window of it that is late, as Spark
//! counts the rows it expands into windows. A session window's row is late when it *starts*
//! before the previous batch's watermark: Spark compares the row's own session end (its time
//! plus the gap), so it accepts a row that would extend a session it already emitted and
//! then emits a second, overlapping session for the key; Weir drops that row instead and
//! keeps sessions of a key disjoint, as a batch query over the accepted rows has them.
//! `complete` mode keeps every group, and so drops no row (as Spark).
//!
//! **Checkpoint**: each partition's merged state and delta are staged in the operator's
//! state (an `OperatorState`, found by the operator's id in the batch's [`BatchContext`] when
//! the plan runs, not held from planning); the runner persists the deltas as version N
//! before writing `commits/N`.

pub(crate) mod distinct;
mod merge;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{RecordBatch, Scalar, UInt64Array};
use arrow::compute::kernels::boolean::not;
use arrow::compute::kernels::numeric::add;
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::udaf::AggregateFunctionExpr;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream, collect, collect_partitioned,
};
use weir_sql::logical::{DerivedWindowEnd, HopPanes};

use self::distinct::{
    DistinctCounts, DistinctFlagsExec, GROUP_NUMBER, PairSet, count_distinct_by_pairs,
};
use super::batch_output::output_once;
use super::hop_panes::{durations, expand_panes};
use super::late_rows::{DropLateRowsExec, LateInput, after};
use crate::error::WeirError;
use crate::event_time::EventTime;
use crate::runtime::{BatchContext, BatchWatermarks, OutputMode};
use crate::state::{KeyedTable, key_converter};

/// The streaming aggregation operator; see the module docs.
#[derive(Debug, Clone)]
pub struct StreamingAggregateExec {
    operator_id: String,
    input: Arc<dyn ExecutionPlan>,
    group_by: Arc<PhysicalGroupBy>,
    aggr_expr: Vec<Arc<AggregateFunctionExpr>>,
    filter_expr: Vec<Option<Arc<dyn PhysicalExpr>>>,
    /// The `count(DISTINCT x)` aggregates counted from their pairs (see `DistinctFlagsExec`);
    /// in `aggr_expr` they are `count(x) FILTER (WHERE <the row's pair is new>)`.
    distinct: Vec<DistinctCounts>,
    /// The schema of the partial aggregation's input: `input`'s, plus the distinct flags.
    aggregate_input: SchemaRef,
    /// Position among the group keys kept in state of the key that closes a group's window:
    /// the window end, or, when the end is not kept, the start (see `end_from_start`).
    window_end: Option<usize>,
    /// What to add to the `window_end` key to get the window's end, in ms.
    end_offset_ms: i64,
    /// A window end that is not kept in state and is added to the output.
    end_from_start: Option<EndFromStart>,
    /// Position of a session window's start among the group keys (session windows merge).
    session_start: Option<usize>,
    /// Set when the input holds each row once, keyed by its hopping window's pane.
    hop_panes: Option<HopPanes>,
    mode: OutputMode,
    /// The watermarks of this batch: late rows are dropped with one, state evicted with the
    /// other.
    watermarks: BatchWatermarks,
    /// DataFusion's per-operator metrics (`EXPLAIN ANALYZE`).
    plan_metrics: ExecutionPlanMetricsSet,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl StreamingAggregateExec {
    /// The operator for one batch. `group_by` and `aggr_expr` are over `input`'s schema;
    /// `schema` is the output schema the logical plan expects. `distinct` names the
    /// `count(DISTINCT x)` aggregates counted from pairs kept in a pair set, and the set.
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        operator_id: String,
        input: Arc<dyn ExecutionPlan>,
        group_by: PhysicalGroupBy,
        aggr_expr: Vec<Arc<AggregateFunctionExpr>>,
        filter_expr: Vec<Option<Arc<dyn PhysicalExpr>>>,
        window_end: Option<usize>,
        session_start: Option<usize>,
        derived_end: Option<DerivedWindowEnd>,
        hop_panes: Option<HopPanes>,
        distinct: Vec<(Vec<usize>, Vec<String>)>,
        mode: OutputMode,
        watermarks: BatchWatermarks,
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
        // A window end that follows from the start is not a key of the aggregation.
        let (group_by, window_end, end_offset_ms, end_from_start) = match derived_end {
            Some(derived) => {
                let kept = group_by
                    .expr()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != derived.end)
                    .map(|(_, expr)| expr.clone())
                    .collect();
                let start = derived.start - usize::from(derived.start > derived.end);
                let end_from_start = EndFromStart {
                    end: derived.end,
                    start,
                    size_ms: derived.size_ms,
                };
                let group_by = PhysicalGroupBy::new_single(kept);
                (group_by, Some(start), derived.size_ms, Some(end_from_start))
            }
            None => (group_by, window_end, 0, None),
        };
        let (aggr_expr, filter_expr, distinct, aggregate_input) = count_distinct_by_pairs(
            &input.schema(),
            &group_by,
            &partial,
            filter_expr,
            &operator_id,
            distinct,
        )?;
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
            aggr_expr,
            filter_expr,
            distinct,
            aggregate_input,
            window_end,
            end_offset_ms,
            end_from_start,
            session_start,
            hop_panes,
            mode,
            watermarks,
            plan_metrics: ExecutionPlanMetricsSet::new(),
            schema,
            properties,
        })
    }

    /// Runs the whole batch: see the module docs.
    async fn run(self, context: Arc<TaskContext>) -> Result<Vec<RecordBatch>> {
        let started = Instant::now();
        let late = Arc::new(match self.session_start {
            Some(_) => LateInput::by_row(),
            None => LateInput::by_group(),
        });
        let weir_error = |e: WeirError| DataFusionError::External(Box::new(e));
        // The state is the batch's, found by the operator's id.
        let batch = BatchContext::of(&context)?;
        let state = batch.state.operator(&self.operator_id);
        let pairs = DistinctCounts::all_pairs(&self.distinct, &context)?;
        for (count, pairs) in self.distinct.iter().zip(&pairs) {
            pairs.begin(&count.schema).map_err(weir_error)?;
        }
        // The new rows' partial state, computed in parallel over the input's partitions as
        // they stream in, after the late rows are dropped and the distinct values flagged.
        let input = self.drop_late_rows(Arc::clone(&late));
        let input: Arc<dyn ExecutionPlan> = if self.distinct.is_empty() {
            input
        } else {
            let groups = self.group_by.expr().iter().map(|(e, _)| Arc::clone(e));
            Arc::new(DistinctFlagsExec::new(
                input,
                groups.collect(),
                self.distinct.clone(),
            ))
        };
        let partial = |group_by: Arc<PhysicalGroupBy>| {
            AggregateExec::try_new(
                AggregateMode::Partial,
                group_by,
                self.aggr_expr.clone(),
                self.filter_expr.clone(),
                Arc::clone(&input),
                Arc::clone(&self.aggregate_input),
            )
        };
        // The state has the group keys; with distinct counts, the rows are grouped by their
        // group's number instead, and the keys taken back from the numbers.
        let keyed = partial(Arc::clone(&self.group_by))?;
        let state_schema = keyed.schema();
        let final_group_by = Arc::new(keyed.group_expr().as_final());
        let by_number = self.group_by_number();
        let partial = match &by_number {
            Some(group_by) => partial(Arc::clone(group_by))?,
            None => keyed,
        };
        let partial_schema = partial.schema();
        let new_partial: Vec<RecordBatch> =
            collect_partitioned(Arc::new(partial), Arc::clone(&context))
                .await?
                .into_iter()
                .flatten()
                .collect();
        let mut new_partial = concat_batches(&partial_schema, &new_partial)?;
        if by_number.is_some() {
            new_partial = self.keys_from_numbers(&new_partial, &state_schema, &pairs)?;
        }
        if let Some(panes) = self.hop_panes {
            new_partial = self.windows_of_panes(new_partial, panes)?;
        }
        let table = KeyedTable::new(
            Arc::clone(&state),
            Arc::clone(&state_schema),
            self.group_by.expr().len(),
        );
        let committed = table.committed();
        self.check_state_layout(&committed, &state_schema)?;
        let late_rows = late.count();

        // Each state partition merges its own groups, in parallel.
        let new_parts = table
            .route(&new_partial, &self.partition_columns())
            .map_err(weir_error)?;
        let tasks =
            committed
                .into_iter()
                .zip(new_parts)
                .enumerate()
                .map(|(partition, (old, new))| {
                    let this = self.clone();
                    let (group_by, table) = (Arc::clone(&final_group_by), table.clone());
                    let context = Arc::clone(&context);
                    tokio::spawn(async move {
                        this.merge_partition(partition, old, new, group_by, &table, context)
                            .await
                    })
                });
        let mut output = Vec::new();
        let mut staged = Vec::new();
        let mut evicted = 0;
        for task in futures::future::try_join_all(tasks)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
        {
            let merged = task?;
            output.extend(merged.output);
            evicted += merged.evicted;
            staged.push(merged.staged);
        }
        table.stage(staged);
        if let (Some(first), Some(first_pairs)) = (self.distinct.first(), pairs.first()) {
            // The groups closed are found once, for all the distinct counts.
            let split = |pairs: &RecordBatch| self.split_open(pairs).map_err(WeirError::from);
            let closed = first_pairs
                .numbers()
                .close(&first.schema, &split)
                .map_err(weir_error)?;
            for (count, pairs) in self.distinct.iter().zip(&pairs) {
                pairs
                    .stage(&count.schema, split, &closed)
                    .map_err(weir_error)?;
            }
        }

        let emitted: usize = output.iter().map(|b| b.num_rows()).sum();
        let baseline = BaselineMetrics::new(&self.plan_metrics, 0);
        baseline.record_output(emitted);
        baseline.elapsed_compute().add_duration(started.elapsed());
        let counter = |name: &'static str| MetricBuilder::new(&self.plan_metrics).counter(name, 0);
        counter("late_rows").add(late_rows as usize);
        counter("rows_evicted").add(evicted as usize);

        let metrics = batch.metrics_of(&self.operator_id);
        let mut metrics = metrics.lock().unwrap_or_else(|p| p.into_inner());
        metrics.late_rows += late_rows;
        metrics.rows_evicted += evicted;
        metrics.rows_emitted += emitted as u64;
        metrics.elapsed += started.elapsed();
        Ok(output)
    }

    /// With distinct counts over grouped rows, a grouping of the partial aggregation's
    /// input by [`GROUP_NUMBER`] alone; see [`DistinctFlagsExec`].
    fn group_by_number(&self) -> Option<Arc<PhysicalGroupBy>> {
        if self.distinct.is_empty() || self.group_by.expr().is_empty() {
            return None;
        }
        let number = Column::new(GROUP_NUMBER, self.aggregate_input.fields().len() - 1);
        let expr: Arc<dyn PhysicalExpr> = Arc::new(number);
        Some(Arc::new(PhysicalGroupBy::new_single(vec![(
            expr,
            GROUP_NUMBER.to_string(),
        )])))
    }

    /// `partial` (grouped by number) as rows of `state_schema`: the group keys the numbers
    /// stand for, then the aggregates' state.
    fn keys_from_numbers(
        &self,
        partial: &RecordBatch,
        state_schema: &SchemaRef,
        pairs: &[Arc<PairSet>],
    ) -> Result<RecordBatch> {
        let weir_error = |e: WeirError| DataFusionError::External(Box::new(e));
        let (Some(first), Some(numbers)) = (
            pairs.first(),
            partial.column(0).as_any().downcast_ref::<UInt64Array>(),
        ) else {
            return Err(DataFusionError::Internal(
                "a partial aggregation by group number without numbers".to_string(),
            ));
        };
        let groups = self.group_by.expr().len();
        let converter = key_converter(state_schema, groups).map_err(weir_error)?;
        let mut columns = first
            .numbers()
            .keys_of(&converter, numbers, &state_schema.fields()[..groups])
            .map_err(weir_error)?;
        columns.extend(partial.columns()[1..].iter().cloned());
        Ok(RecordBatch::try_new(Arc::clone(state_schema), columns)?)
    }

    /// The key columns that choose a group's state partition: all of them, except for
    /// session windows, whose sessions of one group must meet in one partition to merge.
    fn partition_columns(&self) -> Vec<usize> {
        let groups = self.group_by.expr().len();
        (0..groups)
            .filter(|i| self.session_start.is_none() || Some(*i) != self.session_start)
            .filter(|i| self.session_start.is_none() || Some(*i) != self.window_end)
            .collect()
    }

    /// The partial state of the windows holding the panes of `panes_state`: each pane's state
    /// repeated into each of its windows still open. A window's rows from several panes are
    /// merged with its committed state in `merge_groups`, as any batch's partial state is.
    fn windows_of_panes(&self, panes_state: RecordBatch, panes: HopPanes) -> Result<RecordBatch> {
        let Some(start) = self.window_end else {
            return Err(DataFusionError::Internal(
                "hopping window panes without a window start".to_string(),
            ));
        };
        if panes_state.num_rows() == 0 {
            return Ok(panes_state);
        }
        let windows = expand_panes(&panes_state, start, panes)?;
        let Some(watermark) = self.watermarks.late_rows else {
            return Ok(windows);
        };
        // A late row's closed windows were counted when the row was dropped or kept; its
        // windows closed only by this batch's watermark are merged, then emitted.
        let threshold = watermark.ms().saturating_sub(self.end_offset_ms);
        match after(windows.column(start), threshold)? {
            Some(open) => Ok(filter_record_batch(&windows, &open)?),
            None => Ok(windows),
        }
    }

    /// Splits state into (open, closed) groups: in `update` and `append` mode, a window is
    /// closed when its end is at or before the watermark in force; `complete` mode and
    /// aggregations without a window or a watermark close nothing.
    fn split_open(&self, state: &RecordBatch) -> Result<(RecordBatch, RecordBatch)> {
        let (Some(index), Some(watermark), false) = (
            self.window_end,
            self.watermarks.eviction.map(EventTime::ms),
            self.mode == OutputMode::Complete,
        ) else {
            return Ok((state.clone(), state.slice(0, 0)));
        };
        let Some(open) = after(
            state.column(index),
            watermark.saturating_sub(self.end_offset_ms),
        )?
        else {
            return Ok((state.clone(), state.slice(0, 0)));
        };
        match open.true_count() {
            n if n == state.num_rows() => Ok((state.clone(), state.slice(0, 0))),
            0 => Ok((state.slice(0, 0), state.clone())),
            _ => Ok((
                filter_record_batch(state, &open)?,
                filter_record_batch(state, &not(&open)?)?,
            )),
        }
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
            Arc::clone(&self.aggregate_input),
        )?;
        collect(Arc::new(stage), Arc::clone(context)).await
    }

    /// Adds the window end that is not kept in state to finalized rows.
    fn with_window_end(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let Some(derived) = self.end_from_start else {
            return Ok(batch);
        };
        let start = batch.column(derived.start);
        let size = durations(start.data_type(), std::iter::once(derived.size_ms))?;
        let end = add(start, &Scalar::new(size))?;
        let mut columns = batch.columns().to_vec();
        columns.insert(derived.end, end);
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    /// Refuses committed state whose columns are not the ones this operator keeps (state of
    /// another query, or written by a version of Weir with another layout).
    fn check_state_layout(
        &self,
        committed: &[Vec<RecordBatch>],
        state_schema: &SchemaRef,
    ) -> Result<()> {
        let names = |schema: &SchemaRef| -> Vec<String> {
            schema.fields().iter().map(|f| f.name().clone()).collect()
        };
        let Some(found) = committed.iter().flatten().next() else {
            return Ok(());
        };
        let (found, expected) = (names(&found.schema()), names(state_schema));
        if found == expected {
            return Ok(());
        }
        Err(DataFusionError::Execution(format!(
            "the checkpointed state of operator {} has the columns {found:?}, but this query \
             keeps {expected:?}: the checkpoint was written for another query or by another \
             version of Weir; start the query with a new checkpoint",
            self.operator_id
        )))
    }

    /// The input without the rows whose window ended at or before the previous batch's
    /// watermark, counted into `late`. For session windows, a row starting before that
    /// watermark is late: it could otherwise reopen a session already emitted.
    fn drop_late_rows(&self, late: Arc<LateInput>) -> Arc<dyn ExecutionPlan> {
        let (Some(end), Some(watermark)) = (self.window_end, self.watermarks.late_rows) else {
            return Arc::clone(&self.input);
        };
        // As in Spark, `complete` mode keeps every group, so no row is too late for its group.
        if self.mode == OutputMode::Complete {
            return Arc::clone(&self.input);
        }
        let (index, watermark) = match self.session_start {
            Some(start) => (start, watermark.ms().saturating_sub(1)),
            None => (end, watermark.ms().saturating_sub(self.end_offset_ms)),
        };
        let keys = self.group_by.expr().iter().map(|(key, _)| Arc::clone(key));
        Arc::new(DropLateRowsExec::new(
            Arc::clone(&self.input),
            keys.collect(),
            index,
            watermark,
            self.hop_panes,
            late,
        ))
    }
}

/// A watermark for EXPLAIN: its time, or `none`.
fn shown(watermark: Option<EventTime>) -> String {
    watermark.map_or_else(|| "none".to_string(), |w| w.to_string())
}

/// A window end that is not kept in state: the key at `start` (among the keys kept) plus
/// `size_ms`, inserted at `end` in the output.
#[derive(Debug, Clone, Copy)]
struct EndFromStart {
    end: usize,
    start: usize,
    size_ms: i64,
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
            "StreamingAggregateExec: id={}, mode={:?}, gby=[{}], aggr=[{}], watermark={}",
            self.operator_id,
            self.mode,
            groups.join(", "),
            aggregates.join(", "),
            shown(self.watermarks.eviction)
        )?;
        if self.watermarks.late_rows != self.watermarks.eviction {
            write!(
                f,
                ", late_rows_watermark={}",
                shown(self.watermarks.late_rows)
            )?;
        }
        if let Some(derived) = self.end_from_start {
            write!(
                f,
                ", {} = {} + {} ms",
                self.schema.field(derived.end).name(),
                groups[derived.start],
                derived.size_ms
            )?;
        }
        if let Some(panes) = self.hop_panes {
            write!(
                f,
                ", by panes of {} ms in {} windows each",
                panes.slide_ms, panes.windows
            )?;
        }
        Ok(())
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

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.plan_metrics.clone_inner())
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
        let this = self.clone();
        let schema = Arc::clone(&self.schema);
        output_once(self.name(), partition, schema, this.run(context))
    }
}
