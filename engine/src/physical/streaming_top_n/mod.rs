//! [`StreamingTopNExec`]: a Top-N ranking, one micro-batch at a time (rules in
//! `weir_sql::logical::StreamingTopNNode`).
//!
//! **State**: a [`TimeKeyedTable`] (`<id>`), split into the state partitions by the PARTITION
//! BY columns, holding at most N rows per partition: the partition's ranking so far.
//!
//! **Per batch**: in a window Top-N, rows of a window the previous batch's watermark had
//! closed are late (dropped, counted). In each state partition, in parallel, the batch's rows
//! and the kept rows are ranked per partition by the ORDER BY columns (an `arrow` row encoding
//! with each column's direction and null order), ties by the rows' values (so a re-run ranks
//! them alike whatever order its input arrives in); the first N stay,
//! the rest leave state. Then a window Top-N emits the ranking of every window the watermark in
//! force for this batch has closed, and drops it from state; `complete` emits every ranking,
//! `update` the rankings the batch's rows entered. Each row carries its row number.

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, RecordBatch, UInt8Array, UInt32Array, UInt64Array,
};
use arrow::compute::{SortOptions, concat_batches, filter_record_batch, take};
use arrow::datatypes::{SchemaRef, UInt64Type};
use arrow::row::{RowConverter, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream, collect,
};

use super::batch_output::{Done, output_once, report};
use super::late_rows::after;
use crate::error::WeirError;
use crate::runtime::{BatchContext, BatchWatermarks, OutputMode};
use crate::state::{Advanced, TIME_KEYED_PREFIX, TimeKeyedTable, user_columns};

/// The Top-N operator; see the module docs.
#[derive(Debug, Clone)]
pub struct StreamingTopNExec {
    operator_id: String,
    input: Arc<dyn ExecutionPlan>,
    /// PARTITION BY columns of the input.
    partition_by: Vec<usize>,
    /// ORDER BY columns of the input, with their directions.
    order_by: Vec<(usize, SortOptions)>,
    limit: usize,
    /// The partition column the watermark closes (a window Top-N).
    closed_by: Option<usize>,
    mode: OutputMode,
    watermarks: BatchWatermarks,
    plan_metrics: ExecutionPlanMetricsSet,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

fn weir_error(e: WeirError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// What one state partition gave: rows emitted, its new state, rows that left it.
type PartitionRanked = (Vec<RecordBatch>, Advanced, u64);

impl StreamingTopNExec {
    /// The operator for one batch; `schema` is the logical node's (input columns, row number).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        operator_id: String,
        input: Arc<dyn ExecutionPlan>,
        partition_by: Vec<usize>,
        order_by: Vec<(usize, SortOptions)>,
        limit: usize,
        closed_by: Option<usize>,
        mode: OutputMode,
        watermarks: BatchWatermarks,
        schema: SchemaRef,
    ) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self {
            operator_id,
            input,
            partition_by,
            order_by,
            limit,
            closed_by,
            mode,
            watermarks,
            plan_metrics: ExecutionPlanMetricsSet::new(),
            schema,
            properties,
        }
    }

    async fn run(self, context: Arc<TaskContext>) -> Result<Vec<RecordBatch>> {
        let started = Instant::now();
        let batch = BatchContext::of(&context)?;
        let input_schema = self.input.schema();
        let batches = collect(Arc::clone(&self.input), Arc::clone(&context)).await?;
        let mut rows = concat_batches(&input_schema, &batches)?;
        let mut late = 0;
        if let (Some(closing), Some(watermark)) = (self.closed_by, self.watermarks.late_rows)
            && let Some(open) = after(rows.column(closing), watermark.ms())?
        {
            let kept = filter_record_batch(&rows, &open)?;
            late = (rows.num_rows() - kept.num_rows()) as u64;
            rows = kept;
        }
        let table = TimeKeyedTable::new(batch.state.operator(&self.operator_id), &input_schema);
        let keys: Vec<ArrayRef> = self
            .partition_by
            .iter()
            .map(|&k| Arc::clone(rows.column(k)))
            .collect();
        let routed = table.route(batch.batch, &rows, &keys).map_err(weir_error)?;
        let eviction = self.watermarks.eviction.map(|w| w.ms());
        let tasks = table.committed().into_iter().zip(routed).map(|(old, new)| {
            let (this, table) = (self.clone(), table.clone());
            tokio::task::spawn_blocking(move || this.partition(&table, old, new, eviction))
        });
        let (mut output, mut staged, mut evicted) = (Vec::new(), Vec::new(), 0u64);
        for done in futures::future::try_join_all(tasks)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
        {
            let (emitted, advanced, gone) = done?;
            output.extend(emitted);
            evicted += gone;
            staged.push(advanced.staged);
        }
        table.stage(staged);

        let done = Done {
            late,
            evicted,
            emitted: output.iter().map(|b| b.num_rows() as u64).sum(),
            ..Done::default()
        };
        report(&batch, &self.operator_id, &self.plan_metrics, started, done);
        Ok(output)
    }

    /// One state partition: ranks its kept rows `old` with the batch's `new` rows (stored
    /// schema), keeps the first N per partition, and emits what the mode says.
    fn partition(
        &self,
        table: &TimeKeyedTable,
        old: Vec<RecordBatch>,
        new: RecordBatch,
        eviction: Option<i64>,
    ) -> Result<PartitionRanked> {
        // In update mode a ranking over the whole stream changes only with new rows: a batch
        // without any (one the watermark alone triggers) leaves the state as it is.
        if new.num_rows() == 0 && self.closed_by.is_none() && self.mode == OutputMode::Update {
            let batches = old.len() + 1;
            let stored: Vec<RecordBatch> = old.into_iter().chain([new]).collect();
            let advanced = table
                .advance(stored, 1, vec![None; batches], vec![None; batches])
                .map_err(weir_error)?;
            return Ok((Vec::new(), advanced, 0));
        }
        let stored: Vec<RecordBatch> = old.into_iter().chain([new]).collect();
        let schema = stored[0].schema();
        let all = concat_batches(&schema, &stored)?;
        let n = all.num_rows();
        let column = |i: usize| Arc::clone(all.column(i + TIME_KEYED_PREFIX));
        // The partition of each row (without PARTITION BY, one for all).
        let partition_columns: Vec<ArrayRef> = if self.partition_by.is_empty() {
            vec![Arc::new(UInt8Array::from(vec![0u8; n]))]
        } else {
            self.partition_by.iter().map(|&c| column(c)).collect()
        };
        let partitions = RowConverter::new(
            partition_columns
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )?
        .convert_columns(&partition_columns)?;
        let order_fields = self
            .order_by
            .iter()
            .map(|&(c, options)| {
                SortField::new_with_options(column(c).data_type().clone(), options)
            })
            .collect();
        let order = RowConverter::new(order_fields)?.convert_columns(
            &self
                .order_by
                .iter()
                .map(|&(c, _)| column(c))
                .collect::<Vec<_>>(),
        )?;
        // Rows tying on the ORDER BY columns rank by their values, so a batch re-run with its
        // input in another order ranks them the same; equal rows are interchangeable. (Types
        // the row format cannot order fall back to the order rows arrived in.)
        let values = user_columns(&all);
        let tie = RowConverter::new(
            values
                .iter()
                .map(|c| SortField::new(c.data_type().clone()))
                .collect(),
        )
        .and_then(|converter| converter.convert_columns(&values))
        .ok();
        let row_ids = all.column(0).as_primitive::<UInt64Type>();
        let mut ranked: Vec<usize> = (0..n).collect();
        ranked.sort_unstable_by(|&a, &b| {
            partitions
                .row(a)
                .cmp(&partitions.row(b))
                .then_with(|| order.row(a).cmp(&order.row(b)))
                .then_with(|| match &tie {
                    Some(tie) => tie.row(a).cmp(&tie.row(b)),
                    None => row_ids.value(a).cmp(&row_ids.value(b)),
                })
        });
        // The first N of each partition, with their row numbers.
        let new_start = n - stored[stored.len() - 1].num_rows();
        let mut keep = vec![false; n];
        let mut groups: Vec<(Vec<u32>, bool)> = Vec::new();
        for (position, &i) in ranked.iter().enumerate() {
            let first = position == 0 || partitions.row(i) != partitions.row(ranked[position - 1]);
            if first {
                groups.push((Vec::new(), false));
            }
            let Some((members, changed)) = groups.last_mut() else {
                continue;
            };
            if members.len() < self.limit {
                members.push(i as u32);
                keep[i] = true;
                *changed |= i >= new_start;
            }
        }
        let closed = match (self.closed_by, eviction) {
            (Some(c), Some(watermark)) => after(&column(c), watermark)?
                .map(|open| (0..n).map(|i| !open.value(i)).collect::<Vec<bool>>()),
            _ => None,
        };
        let mut emitted: Vec<u32> = Vec::new();
        let mut numbers: Vec<u64> = Vec::new();
        let mut gone = vec![false; n];
        for (members, changed) in &groups {
            let emit = match (&closed, self.closed_by) {
                (Some(closed), Some(_)) => members.first().is_some_and(|&i| closed[i as usize]),
                (None, Some(_)) => false,
                (_, None) => self.mode == OutputMode::Complete || *changed,
            };
            if emit {
                emitted.extend(members);
                numbers.extend(1..=members.len() as u64);
                if self.closed_by.is_some() {
                    members.iter().for_each(|&i| gone[i as usize] = true);
                }
            }
        }
        let mut output = Vec::new();
        if !emitted.is_empty() {
            let indices = UInt32Array::from(emitted);
            let mut columns = user_columns(&all)
                .iter()
                .map(|c| take(c, &indices, None))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            columns.push(Arc::new(UInt64Array::from(numbers)));
            output.push(RecordBatch::try_new(Arc::clone(&self.schema), columns)?);
        }
        // Rows out of their ranking, or of a closed window, leave state.
        let mut evict = Vec::with_capacity(stored.len());
        let mut offset = 0;
        let mut left = 0;
        for rows in &stored {
            let mask: BooleanArray = (offset..offset + rows.num_rows())
                .map(|i| Some(!keep[i] || gone[i]))
                .collect();
            left += (offset..offset + rows.num_rows())
                .filter(|&i| i < new_start && (!keep[i] || gone[i]))
                .count() as u64;
            offset += rows.num_rows();
            evict.push((mask.true_count() > 0).then_some(mask));
        }
        let matched = vec![None; stored.len()];
        let advanced = table
            .advance(stored, 1, matched, evict)
            .map_err(weir_error)?;
        Ok((output, advanced, left))
    }
}

impl DisplayAs for StreamingTopNExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "StreamingTopNExec: id={}, first {} per {:?} by {:?}",
            self.operator_id,
            self.limit,
            self.partition_by,
            self.order_by.iter().map(|(c, _)| c).collect::<Vec<_>>()
        )?;
        if let Some(w) = self.watermarks.eviction {
            write!(f, ", watermark={w}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for StreamingTopNExec {
    fn name(&self) -> &str {
        "StreamingTopNExec"
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
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
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
