//! [`StreamingJoinExec`]: a join of two streams, one micro-batch at a time (Spark's
//! `StreamingSymmetricHashJoinExec`; rules in `weir_sql::logical::StreamingJoinNode`).
//!
//! **State**: each side's rows, in a [`TimeKeyedTable`] (`<id>.left`, `<id>.right`), split
//! into the state partitions by the join key, each row with a `matched` flag.
//!
//! **Per batch** (Spark's order, so each matching pair is emitted exactly once):
//! 1. each side's late rows are dropped: event time at or before the watermark of the
//!    previous batch (`eventTimeWatermarkForLateEvents`), counted per side;
//! 2. in each state partition, in parallel: the new left rows look up the right side's state
//!    and new rows by key, and the new right rows look up the left side's state (each state
//!    batch's hash index is kept between batches, `state_keys.rs`, so no state row is
//!    scanned); the pairs meeting the condition are joined ([`pairs`]), and the rows that
//!    found a partner are flagged;
//! 3. rows are evicted with the watermark in force for this batch
//!    (`eventTimeWatermarkForEviction`): those at or before their side's [`StateEviction`];
//!    evicted rows never flagged give their null-padded row (outer joins), once. A new row
//!    already past its side's eviction is joined, then evicted in the same batch (Spark does
//!    not add it to state, and so never emits its null-padded row; Weir emits it, as a batch
//!    query over the same rows would);
//! 4. left semi joins emit a left row the first time it is matched, never again.
//!
//! [`StateEviction`]: weir_sql::logical::StateEviction

mod pairs;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, new_null_array};
use arrow::compute::{concat_batches, filter_record_batch, not};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion::common::JoinType;
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

use self::pairs::{join_pairs, mask};
use super::batch_output::{Done, output_once, report};
use super::late_rows::after;
use super::state_keys::{BatchKeys, StateKeys};
use crate::error::WeirError;
use crate::runtime::{BatchContext, BatchWatermarks};
use crate::state::{Advanced, TimeKeyedTable, matched_flags, user_columns};

/// When a side's rows leave state: `column <= watermark + offset_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eviction {
    /// The column (of the side's rows) compared.
    pub column: usize,
    /// Added to the watermark, in milliseconds.
    pub offset_ms: i64,
}

/// One side of the join, as planned.
#[derive(Debug, Clone)]
pub struct JoinSide {
    /// Its input.
    pub input: Arc<dyn ExecutionPlan>,
    /// Its key expressions, over its rows, of the same types as the other side's.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// Its watermarked event-time column: late rows are dropped by it.
    pub time: Option<usize>,
    /// When its rows leave state.
    pub eviction: Option<Eviction>,
}

/// The streaming join operator; see the module docs.
#[derive(Debug, Clone)]
pub struct StreamingJoinExec {
    operator_id: String,
    join_type: JoinType,
    left: JoinSide,
    right: JoinSide,
    /// The residual condition, over `[left columns, right columns]`.
    condition: Option<Arc<dyn PhysicalExpr>>,
    /// `[left columns, right columns]` as the inputs have them.
    joined_schema: SchemaRef,
    watermarks: BatchWatermarks,
    plan_metrics: ExecutionPlanMetricsSet,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

/// One stored batch of a side: its columns and its index by key.
struct Side {
    columns: Vec<ArrayRef>,
    index: Arc<BatchKeys>,
}

/// What one state partition gave in one batch.
struct PartitionJoined {
    output: Vec<RecordBatch>,
    left: Advanced,
    right: Advanced,
}

fn weir_error(e: WeirError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl StreamingJoinExec {
    /// The operator for one batch, emitting rows of `schema` (the logical join's).
    pub fn try_new(
        operator_id: String,
        join_type: JoinType,
        left: JoinSide,
        right: JoinSide,
        condition: Option<Arc<dyn PhysicalExpr>>,
        schema: SchemaRef,
        watermarks: BatchWatermarks,
    ) -> Result<Self> {
        let fields: Vec<_> = left
            .input
            .schema()
            .fields()
            .iter()
            .chain(right.input.schema().fields().iter())
            .cloned()
            .collect();
        let joined_schema = Arc::new(Schema::new(fields));
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Ok(Self {
            operator_id,
            join_type,
            left,
            right,
            condition,
            joined_schema,
            watermarks,
            plan_metrics: ExecutionPlanMetricsSet::new(),
            schema,
            properties,
        })
    }

    /// Runs the whole batch: see the module docs.
    async fn run(self, context: Arc<TaskContext>) -> Result<Vec<RecordBatch>> {
        let started = Instant::now();
        let batch = BatchContext::of(&context)?;
        let (left_rows, left_late) = self.new_rows(&self.left, Arc::clone(&context)).await?;
        let (right_rows, right_late) = self.new_rows(&self.right, Arc::clone(&context)).await?;
        let tables = [
            (&self.left, "left", &left_rows),
            (&self.right, "right", &right_rows),
        ]
        .map(|(side, name, rows)| {
            let table = TimeKeyedTable::new(
                batch
                    .state
                    .operator(&format!("{}.{name}", self.operator_id)),
                &side.input.schema(),
            );
            let keys = evaluate(&side.keys, rows)?;
            let routed = table.route(batch.batch, rows, &keys).map_err(weir_error)?;
            Ok::<_, DataFusionError>((table, routed))
        });
        let [left, right] = tables;
        let ((left_table, left_new), (right_table, right_new)) = (left?, right?);
        let (left_old, right_old) = (left_table.committed(), right_table.committed());
        let index_of = |side: &str| {
            let name = format!("{}.{side}.keys", self.operator_id);
            batch
                .state
                .part(&name, || Ok(StateKeys::default()))
                .map_err(weir_error)
        };
        let indexes = (index_of("left")?, index_of("right")?);
        let eviction = self.watermarks.eviction.map(|w| w.ms());
        let tasks = left_old
            .into_iter()
            .zip(right_old)
            .zip(left_new.into_iter().zip(right_new))
            .map(|((left_old, right_old), (left_new, right_new))| {
                let this = self.clone();
                let tables = (left_table.clone(), right_table.clone());
                let indexes = (Arc::clone(&indexes.0), Arc::clone(&indexes.1));
                tokio::task::spawn_blocking(move || {
                    let (old, new) = ((left_old, right_old), (left_new, right_new));
                    this.join_partition(&tables, &indexes, old, new, eviction)
                })
            });
        let mut output = Vec::new();
        let (mut left_staged, mut right_staged, mut evicted) = (Vec::new(), Vec::new(), 0u64);
        for joined in futures::future::try_join_all(tasks)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
        {
            let joined = joined?;
            output.extend(joined.output);
            for advanced in [&joined.left, &joined.right] {
                evicted += advanced
                    .evicted
                    .iter()
                    .map(|b| b.num_rows() as u64)
                    .sum::<u64>();
            }
            left_staged.push(joined.left.staged);
            right_staged.push(joined.right.staged);
        }
        // The indexes of batches the state no longer holds are dropped.
        indexes
            .0
            .keep_only(left_staged.iter().flat_map(|p| &p.state));
        indexes
            .1
            .keep_only(right_staged.iter().flat_map(|p| &p.state));
        left_table.stage(left_staged);
        right_table.stage(right_staged);

        let done = Done {
            late: left_late + right_late,
            late_by_input: [("left".into(), left_late), ("right".into(), right_late)].into(),
            evicted,
            emitted: output.iter().map(|b| b.num_rows() as u64).sum(),
        };
        report(&batch, &self.operator_id, &self.plan_metrics, started, done);
        Ok(output)
    }

    /// A side's rows of this batch, without its late rows; and how many were late.
    async fn new_rows(
        &self,
        side: &JoinSide,
        context: Arc<TaskContext>,
    ) -> Result<(RecordBatch, u64)> {
        let schema = side.input.schema();
        let batches = collect(Arc::clone(&side.input), context).await?;
        let rows = concat_batches(&schema, &batches)?;
        let (Some(time), Some(late)) = (side.time, self.watermarks.late_rows) else {
            return Ok((rows, 0));
        };
        match after(rows.column(time), late.ms())? {
            None => Ok((rows, 0)),
            Some(on_time) => {
                let kept = filter_record_batch(&rows, &on_time)?;
                let late = (rows.num_rows() - kept.num_rows()) as u64;
                Ok((kept, late))
            }
        }
    }

    /// One state partition's batch: steps 2 to 4 of the module docs.
    fn join_partition(
        &self,
        (left_table, right_table): &(TimeKeyedTable, TimeKeyedTable),
        indexes: &(Arc<StateKeys>, Arc<StateKeys>),
        (left_old, right_old): (Vec<RecordBatch>, Vec<RecordBatch>),
        (left_new, right_new): (RecordBatch, RecordBatch),
        eviction: Option<i64>,
    ) -> Result<PartitionJoined> {
        let key_types: Vec<DataType> = self
            .left
            .keys
            .iter()
            .map(|k| k.data_type(&self.left.input.schema()))
            .collect::<Result<_>>()?;
        let converter = RowConverter::new(key_types.into_iter().map(SortField::new).collect())?;
        // Each stored batch (state and new) with its index by key, kept between batches.
        let keyed = |side: &JoinSide, keys: &StateKeys, stored: &RecordBatch| -> Result<Side> {
            let columns = user_columns(stored);
            let index = keys.of(stored, || {
                let rows = RecordBatch::try_new(side.input.schema(), columns.clone())?;
                BatchKeys::build(&converter, &evaluate(&side.keys, &rows)?)
            })?;
            Ok(Side { columns, index })
        };
        let lefts: Vec<Side> = left_old
            .iter()
            .chain(std::iter::once(&left_new))
            .map(|b| keyed(&self.left, &indexes.0, b))
            .collect::<Result<_>>()?;
        let rights: Vec<Side> = right_old
            .iter()
            .chain(std::iter::once(&right_new))
            .map(|b| keyed(&self.right, &indexes.1, b))
            .collect::<Result<_>>()?;
        let (new_left, new_right) = (lefts.len() - 1, rights.len() - 1);
        let mut left_matched: Vec<Option<BooleanArray>> = vec![None; lefts.len()];
        let mut right_matched: Vec<Option<BooleanArray>> = vec![None; rights.len()];
        let mut pairs_found = Vec::new();
        let merge = |slot: &mut Option<BooleanArray>, found: Option<BooleanArray>| -> Result<()> {
            *slot = match (slot.take(), found) {
                (Some(a), Some(b)) => Some(arrow::compute::or(&a, &b)?),
                (a, b) => a.or(b),
            };
            Ok(())
        };
        // The new left rows look up every right batch (state and new); the new right rows
        // look up the left side's state: each pair once, no state row scanned.
        let probes = (0..rights.len())
            .map(|r| (new_left, r, true))
            .chain((0..new_left).map(|l| (l, new_right, false)));
        for (l, r, left_probes) in probes {
            let (left, right) = (&lefts[l], &rights[r]);
            let (left_rows, right_rows) = if left_probes {
                right.index.probe(&left.index)
            } else {
                let (right_rows, left_rows) = left.index.probe(&right.index);
                (left_rows, right_rows)
            };
            if left_rows.is_empty() {
                continue;
            }
            let joined = join_pairs(
                &self.joined_schema,
                &left.columns,
                &right.columns,
                left_rows,
                right_rows,
                self.condition.as_ref(),
            )?;
            merge(&mut left_matched[l], mask(left.index.rows(), &joined.left))?;
            merge(
                &mut right_matched[r],
                mask(right.index.rows(), &joined.right),
            )?;
            pairs_found.push((l, joined));
        }

        let left_stored: Vec<RecordBatch> = left_old.into_iter().chain([left_new]).collect();
        let right_stored: Vec<RecordBatch> = right_old.into_iter().chain([right_new]).collect();
        let mut output = Vec::new();
        if self.join_type == JoinType::LeftSemi {
            output.extend(self.semi_rows(&left_stored, &left_matched)?);
        } else {
            for (_, joined) in pairs_found {
                output.push(self.output(joined.rows.columns().to_vec())?);
            }
        }
        let evict =
            |side: &JoinSide, stored: &[RecordBatch]| -> Result<Vec<Option<BooleanArray>>> {
                stored.iter().map(|b| evicted(side, b, eviction)).collect()
            };
        let left_evict = evict(&self.left, &left_stored)?;
        let right_evict = evict(&self.right, &right_stored)?;
        let left = left_table
            .advance(left_stored, 1, left_matched, left_evict)
            .map_err(weir_error)?;
        let right = right_table
            .advance(right_stored, 1, right_matched, right_evict)
            .map_err(weir_error)?;
        if matches!(self.join_type, JoinType::Left | JoinType::Full) {
            for rows in &left.evicted {
                output.extend(self.null_padded(rows, true)?);
            }
        }
        if matches!(self.join_type, JoinType::Right | JoinType::Full) {
            for rows in &right.evicted {
                output.extend(self.null_padded(rows, false)?);
            }
        }
        Ok(PartitionJoined {
            output,
            left,
            right,
        })
    }

    /// Left semi join: the left rows matched for the first time in this batch.
    fn semi_rows(
        &self,
        stored: &[RecordBatch],
        matched: &[Option<BooleanArray>],
    ) -> Result<Vec<RecordBatch>> {
        let mut output = Vec::new();
        for (rows, matched) in stored.iter().zip(matched) {
            let Some(matched) = matched else { continue };
            let first = arrow::compute::and(matched, &not(matched_flags(rows))?)?;
            if first.true_count() > 0 {
                let rows = filter_record_batch(rows, &first)?;
                output.push(self.output(user_columns(&rows))?);
            }
        }
        Ok(output)
    }

    /// Evicted rows of one side never matched, padded with nulls for the other side.
    fn null_padded(&self, stored: &RecordBatch, left_side: bool) -> Result<Option<RecordBatch>> {
        let unmatched = filter_record_batch(stored, &not(matched_flags(stored))?)?;
        let n = unmatched.num_rows();
        if n == 0 {
            return Ok(None);
        }
        let nulls = |side: &JoinSide| -> Vec<ArrayRef> {
            side.input
                .schema()
                .fields()
                .iter()
                .map(|f| new_null_array(f.data_type(), n))
                .collect()
        };
        let mut columns = Vec::new();
        if left_side {
            columns.extend(user_columns(&unmatched));
            columns.extend(nulls(&self.right));
        } else {
            columns.extend(nulls(&self.left));
            columns.extend(user_columns(&unmatched));
        }
        Ok(Some(self.output(columns)?))
    }

    /// `columns` as a batch of the output schema.
    fn output(&self, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// `exprs` evaluated over `rows`.
fn evaluate(exprs: &[Arc<dyn PhysicalExpr>], rows: &RecordBatch) -> Result<Vec<ArrayRef>> {
    exprs
        .iter()
        .map(|e| e.evaluate(rows)?.into_array(rows.num_rows()))
        .collect()
}

/// Which of `stored` rows of `side` leave state under the eviction watermark (ms).
fn evicted(
    side: &JoinSide,
    stored: &RecordBatch,
    watermark: Option<i64>,
) -> Result<Option<BooleanArray>> {
    let (Some(eviction), Some(watermark)) = (side.eviction, watermark) else {
        return Ok(None);
    };
    let column = stored.column(crate::state::TIME_KEYED_PREFIX + eviction.column);
    let threshold = watermark.saturating_add(eviction.offset_ms);
    // `None` from `after`: every row is after the threshold, none leaves.
    Ok(after(column, threshold)?
        .map(|kept| not(&kept))
        .transpose()?)
}

impl DisplayAs for StreamingJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "StreamingJoinExec: id={}, {} join",
            self.operator_id, self.join_type
        )?;
        for (name, side) in [("left", &self.left), ("right", &self.right)] {
            if let Some(e) = side.eviction {
                let field = side.input.schema().field(e.column).name().clone();
                write!(
                    f,
                    ", {name} evicted at {field} <= watermark{:+} ms",
                    e.offset_ms
                )?;
            }
        }
        if let Some(w) = self.watermarks.eviction {
            write!(f, ", watermark={w}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for StreamingJoinExec {
    fn name(&self) -> &str {
        "StreamingJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.left.input, &self.right.input]
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.plan_metrics.clone_inner())
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for expr in self
            .left
            .keys
            .iter()
            .chain(&self.right.keys)
            .chain(self.condition.iter())
        {
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
        exec.right.input = children.pop().ok_or_else(|| {
            DataFusionError::Internal("a streaming join needs two inputs".to_string())
        })?;
        exec.left.input = children.pop().ok_or_else(|| {
            DataFusionError::Internal("a streaming join needs two inputs".to_string())
        })?;
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
