//! [`StreamingDedupExec`]: deduplication, one micro-batch at a time (rules in
//! `weir_sql::logical::StreamingDedupNode`).
//!
//! **State**: a [`TimeKeyedTable`] (`<id>`), split into the state partitions by key, holding
//! one row per key: for `DISTINCT` the row itself; for keep-first the key's earliest row so
//! far, its `matched` flag set once it has been emitted (the key then only drops rows). Each
//! state batch's hash index by key is kept between batches (`state_keys.rs`), so a batch looks
//! its rows up rather than scanning the state.
//!
//! **Per batch**: late rows are dropped (event time at or before the previous batch's
//! watermark) and counted; in each state partition, in parallel, the batch's rows are looked
//! up by key in the partition's rows. `DISTINCT` emits and keeps the rows whose key is new
//! (the first of the batch's rows with it). Keep-first keeps, per key not yet emitted, the
//! row of least event time among the kept one and the batch's (on a tie the least by value, so
//! a re-run keeps the same row whatever order its input arrives in; a null time sorts last),
//! then emits every kept row the watermark in force for this batch has reached, with its row
//! number, 1. Keys holding the event time leave state once it is at or before that watermark;
//! within the watermark (`DROP_DUPLICATES_WITHIN_WATERMARK`), a key's first row is emitted as it
//! arrives, and the key leaves once the watermark reaches its time plus the source's delay.

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, UInt8Array, UInt64Array};
use arrow::compute::{cast, concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, Int64Type, SchemaRef};
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
use weir_sql::logical::DedupKind;

use super::batch_output::{Done, output_once, report};
use super::late_rows::after;
use super::state_keys::{BatchKeys, StateKeys};
use crate::error::WeirError;
use crate::runtime::{BatchContext, BatchWatermarks};
use crate::state::{Advanced, TIME_KEYED_PREFIX, TimeKeyedTable, matched_flags, user_columns};

/// The deduplication operator; see the module docs.
#[derive(Debug, Clone)]
pub struct StreamingDedupExec {
    operator_id: String,
    input: Arc<dyn ExecutionPlan>,
    kind: DedupKind,
    /// Key columns of the input.
    keys: Vec<usize>,
    /// The input's watermarked event-time column.
    time: Option<usize>,
    /// Whether keys leave state when `time` (a key) is at or before the watermark.
    evict_by_key: bool,
    watermarks: BatchWatermarks,
    plan_metrics: ExecutionPlanMetricsSet,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

fn weir_error(e: WeirError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl StreamingDedupExec {
    /// The operator for one batch; `schema` is the logical node's.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        operator_id: String,
        input: Arc<dyn ExecutionPlan>,
        kind: DedupKind,
        keys: Vec<usize>,
        time: Option<usize>,
        evict_by_key: bool,
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
            kind,
            keys,
            time,
            evict_by_key,
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
        if let (Some(time), Some(watermark)) = (self.time, self.watermarks.late_rows)
            && let Some(on_time) = after(rows.column(time), watermark.ms())?
        {
            let kept = filter_record_batch(&rows, &on_time)?;
            late = (rows.num_rows() - kept.num_rows()) as u64;
            rows = kept;
        }
        let table = TimeKeyedTable::new(batch.state.operator(&self.operator_id), &input_schema);
        let keys: Vec<ArrayRef> = self
            .keys
            .iter()
            .map(|&k| Arc::clone(rows.column(k)))
            .collect();
        let routed = table.route(batch.batch, &rows, &keys).map_err(weir_error)?;
        let eviction = self.watermarks.eviction.map(|w| w.ms());
        let index = batch
            .state
            .part(&format!("{}.keys", self.operator_id), || {
                Ok(StateKeys::default())
            })
            .map_err(weir_error)?;
        let tasks = table.committed().into_iter().zip(routed).map(|(old, new)| {
            let (this, table, index) = (self.clone(), table.clone(), Arc::clone(&index));
            tokio::task::spawn_blocking(move || this.partition(&table, &index, old, new, eviction))
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
        index.keep_only(staged.iter().flat_map(|p| &p.state));
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

    /// One state partition: its committed rows `old` and the batch's rows `new` (stored
    /// schema). Returns the rows emitted, the partition's new state and how many rows left it.
    fn partition(
        &self,
        table: &TimeKeyedTable,
        index: &StateKeys,
        old: Vec<RecordBatch>,
        new: RecordBatch,
        eviction: Option<i64>,
    ) -> Result<(Vec<RecordBatch>, Advanced, u64)> {
        let key_columns: Vec<usize> = self.keys.iter().map(|k| k + TIME_KEYED_PREFIX).collect();
        // The key columns; without PARTITION BY, one key for every row.
        let columns_of = |b: &RecordBatch| -> Vec<ArrayRef> {
            if key_columns.is_empty() {
                return vec![Arc::new(UInt8Array::from(vec![0u8; b.num_rows()]))];
            }
            key_columns
                .iter()
                .map(|&k| Arc::clone(b.column(k)))
                .collect()
        };
        let converter = RowConverter::new(
            columns_of(&new)
                .iter()
                .map(|k| SortField::new(k.data_type().clone()))
                .collect(),
        )?;
        // The committed rows by key (each batch's index kept between batches): where a key's
        // row is.
        let old_keys = old
            .iter()
            .map(|b| {
                index.of(b, || {
                    BatchKeys::build_nulls_equal(&converter, &columns_of(b))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let known = |key: &[u8]| {
            old_keys
                .iter()
                .enumerate()
                .find_map(|(b, keys)| keys.rows_of(key).next().map(|r| (b, r as usize)))
        };
        let new_keys = converter.convert_columns(&columns_of(&new))?;
        let times = match self.time {
            Some(t) => Some(event_times(new.column(t + TIME_KEYED_PREFIX))?),
            None => None,
        };
        // A committed row's time, read when a key needs it (not the whole state's).
        let old_time = |b: usize, r: usize| -> Result<i64> {
            let Some(t) = self.time else {
                return Ok(i64::MAX);
            };
            let times = event_times(&old[b].column(t + TIME_KEYED_PREFIX).slice(r, 1))?;
            Ok(if times.is_null(0) {
                i64::MAX
            } else {
                times.value(0)
            })
        };
        // Rows tying on the time are ordered by their values, so a re-run whose input arrives
        // in another order keeps the same row (no order among equal rows is needed).
        let values = RowConverter::new(
            new.schema().fields()[TIME_KEYED_PREFIX..]
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )
        .ok();
        let encode = |rows: &RecordBatch| {
            values
                .as_ref()
                .and_then(|v| v.convert_columns(&user_columns(rows)).ok())
        };
        let new_values = encode(&new);
        let old_value = |b: usize, r: usize| encode(&old[b].slice(r, 1));
        // Which new rows are kept, and which committed rows they replace (keep-first).
        let mut keep = vec![false; new.num_rows()];
        let mut replaced: Vec<Vec<bool>> = old.iter().map(|b| vec![false; b.num_rows()]).collect();
        match (&self.kind, &times) {
            (DedupKind::Distinct | DedupKind::WithinWatermark { .. }, _) => {
                let mut seen: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
                for (i, key) in new_keys.iter().enumerate() {
                    let key = key.data();
                    keep[i] = known(key).is_none() && seen.insert(key);
                }
            }
            (DedupKind::KeepFirst, Some(times)) => {
                // A null time sorts last (as ORDER BY ts ASC has it) and is never final.
                let time_of = |i: usize| {
                    if times.is_null(i) {
                        i64::MAX
                    } else {
                        times.value(i)
                    }
                };
                let new_value = |i: usize| new_values.as_ref().map(|v| v.row(i).owned());
                let mut best: HashMap<&[u8], Best> = HashMap::new();
                for (i, key) in new_keys.iter().enumerate() {
                    let (key, time) = (key.data(), time_of(i));
                    let current = match best.get(key) {
                        Some(found) => *found,
                        None => {
                            let found = match known(key) {
                                Some((b, r)) if matched_flags(&old[b]).value(r) => Best::Emitted,
                                Some((b, r)) => Best::Committed(b, r, old_time(b, r)?),
                                None => Best::Nothing,
                            };
                            best.insert(key, found);
                            found
                        }
                    };
                    let beats = |earliest: i64, value: Option<arrow::row::OwnedRow>| {
                        time < earliest
                            || time == earliest
                                && matches!((new_value(i), value), (Some(x), Some(y)) if x < y)
                    };
                    match current {
                        Best::Emitted => continue,
                        Best::Committed(b, r, earliest)
                            if beats(earliest, old_value(b, r).map(|v| v.row(0).owned())) =>
                        {
                            replaced[b][r] = true;
                        }
                        Best::New(j, earliest) if beats(earliest, new_value(j)) => keep[j] = false,
                        Best::Committed(..) | Best::New(..) => continue,
                        Best::Nothing => {}
                    }
                    keep[i] = true;
                    best.insert(key, Best::New(i, time));
                }
            }
            (DedupKind::KeepFirst, None) => {
                return Err(DataFusionError::Internal(
                    "keep-first deduplication without an event time".to_string(),
                ));
            }
        }
        let new = filter_record_batch(&new, &BooleanArray::from(keep))?;
        let mut output = Vec::new();
        let stored: Vec<RecordBatch> = old.into_iter().chain([new]).collect();
        let mut matched = vec![None; stored.len()];
        let mut evict: Vec<Option<BooleanArray>> = replaced
            .into_iter()
            .map(|r| r.iter().any(|x| *x).then(|| BooleanArray::from(r)))
            .chain([None])
            .collect();
        let last = stored.len() - 1;
        match self.kind {
            DedupKind::Distinct | DedupKind::WithinWatermark { .. } => {
                let fresh = &stored[last];
                if fresh.num_rows() > 0 {
                    output.push(RecordBatch::try_new(
                        Arc::clone(&self.schema),
                        user_columns(fresh),
                    )?);
                }
            }
            DedupKind::KeepFirst => {
                // Rows the watermark has reached are final: emitted once, flagged.
                let (Some(time), Some(watermark)) = (self.time, eviction) else {
                    let advanced = table
                        .advance(stored, 1, matched, evict)
                        .map_err(weir_error)?;
                    return Ok((output, advanced, 0));
                };
                for (i, rows) in stored.iter().enumerate() {
                    let Some(open) = after(rows.column(time + TIME_KEYED_PREFIX), watermark)?
                    else {
                        continue;
                    };
                    let pending =
                        arrow::compute::and_not(&arrow::compute::not(&open)?, matched_flags(rows))?;
                    let pending = match &evict[i] {
                        Some(replaced) => arrow::compute::and_not(&pending, replaced)?,
                        None => pending,
                    };
                    if pending.true_count() == 0 {
                        continue;
                    }
                    let final_rows = filter_record_batch(rows, &pending)?;
                    let mut columns = user_columns(&final_rows);
                    columns.push(Arc::new(UInt64Array::from(vec![
                        1u64;
                        final_rows.num_rows()
                    ])));
                    output.push(RecordBatch::try_new(Arc::clone(&self.schema), columns)?);
                    matched[i] = Some(pending);
                }
            }
        }
        // Keys holding the event time leave once it is at or before the watermark; within the
        // watermark, once the watermark reaches the first row's time plus the delay (Spark's
        // `expiresAt <= watermark`).
        let mut gone = 0;
        let threshold = match (&self.kind, eviction) {
            (DedupKind::WithinWatermark { delay_ms }, Some(w)) => Some(w.saturating_sub(*delay_ms)),
            (_, Some(w)) if self.evict_by_key => Some(w),
            _ => None,
        };
        if let (Some(time), Some(watermark)) = (self.time, threshold) {
            for (i, rows) in stored.iter().enumerate() {
                let Some(open) = after(rows.column(time + TIME_KEYED_PREFIX), watermark)? else {
                    continue;
                };
                let closed = arrow::compute::not(&open)?;
                gone += closed.true_count() as u64;
                evict[i] = Some(match evict[i].take() {
                    Some(replaced) => arrow::compute::or(&replaced, &closed)?,
                    None => closed,
                });
            }
        }
        let advanced = table
            .advance(stored, 1, matched, evict)
            .map_err(weir_error)?;
        Ok((output, advanced, gone))
    }
}

/// A key's earliest row so far (keep-first).
#[derive(Debug, Clone, Copy)]
enum Best {
    /// Emitted already: the key's rows are dropped.
    Emitted,
    /// The committed row at (batch, row), with its time.
    Committed(usize, usize, i64),
    /// The batch's row, with its time.
    New(usize, i64),
    /// None yet.
    Nothing,
}

/// A timestamp column as its raw numbers (in its own unit).
fn event_times(column: &ArrayRef) -> Result<arrow::array::PrimitiveArray<Int64Type>> {
    if !matches!(column.data_type(), DataType::Timestamp(..)) {
        return Err(DataFusionError::Internal(format!(
            "an event time of type {}, not a timestamp",
            column.data_type()
        )));
    }
    Ok(cast(column, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

impl DisplayAs for StreamingDedupExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "StreamingDedupExec: id={}, {:?}, keys={:?}",
            self.operator_id, self.kind, self.keys
        )?;
        if let Some(w) = self.watermarks.eviction {
            write!(f, ", watermark={w}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for StreamingDedupExec {
    fn name(&self) -> &str {
        "StreamingDedupExec"
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
