//! Merging one state partition of a [`StreamingAggregateExec`]: its committed groups with the
//! batch's partial state for them, into what the output mode emits, the state kept and the
//! delta to checkpoint.

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::buffer::BooleanBuffer;
use arrow::compute::kernels::boolean::not;
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::row::Row;
use datafusion::common::HashSet;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::aggregates::{AggregateMode, PhysicalGroupBy};

use super::StreamingAggregateExec;
use crate::physical::session_merge::merge_sessions;
use crate::runtime::OutputMode;
use crate::state::{StagedPartition, compact, delta_of, diff, key_converter};

impl StreamingAggregateExec {
    /// Merges one state partition's committed state `old` with the batch's partial state for
    /// its groups (`new`), and finalizes what the output mode emits.
    pub(super) async fn merge_partition(
        &self,
        partition: usize,
        old: Vec<RecordBatch>,
        new: RecordBatch,
        final_group_by: Arc<PhysicalGroupBy>,
        state_schema: SchemaRef,
        context: Arc<TaskContext>,
    ) -> Result<MergedPartition> {
        let groups = self.group_by.expr().len();
        // A global aggregate's one group lives in partition 0, and exists before any row.
        let idle = old.iter().all(|b| b.num_rows() == 0) && new.num_rows() == 0;
        if idle && (groups > 0 || partition > 0) {
            return Ok(MergedPartition {
                output: Vec::new(),
                evicted: 0,
                staged: StagedPartition {
                    state: Vec::new(),
                    delta: delta_of(&state_schema, new.clone(), new)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?,
                },
            });
        }
        let groups_state = if self.session_start.is_some() {
            self.merge_sessions(old, new, &final_group_by, &state_schema, &context)
                .await?
        } else {
            self.merge_groups(old, new, &final_group_by, &state_schema, &context)
                .await?
        };
        let GroupsState {
            emit,
            keep,
            closed,
            delta,
        } = groups_state;
        let output = if emit.iter().all(|b| b.num_rows() == 0) {
            Vec::new()
        } else {
            self.stage(
                AggregateMode::Final,
                &final_group_by,
                emit,
                &state_schema,
                &context,
            )
            .await?
            .into_iter()
            .map(|batch| self.with_window_end(batch))
            .collect::<Result<_>>()?
        };
        Ok(MergedPartition {
            output,
            evicted: closed as u64,
            staged: StagedPartition { state: keep, delta },
        })
    }

    /// Merges plain groups (tumbling and hopping windows, or none): only the committed groups
    /// the batch touched go through the merge; the others are kept as they are, in the
    /// batches they are in (not copied).
    async fn merge_groups(
        &self,
        old: Vec<RecordBatch>,
        new: RecordBatch,
        final_group_by: &Arc<PhysicalGroupBy>,
        state_schema: &SchemaRef,
        context: &Arc<TaskContext>,
    ) -> Result<GroupsState> {
        let groups = self.group_by.expr().len();
        let mut merge_input = Vec::with_capacity(old.len() + 1);
        let mut untouched = Vec::with_capacity(old.len());
        if groups == 0 {
            // A global aggregate has one group, touched by every batch.
            merge_input.extend(old);
        } else {
            let converter = key_converter(&new.schema(), groups)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let new_keys = converter.convert_columns(&new.columns()[..groups])?;
            let mut touched: HashSet<Row<'_>> = HashSet::with_capacity(new_keys.num_rows());
            touched.extend(new_keys.iter());
            for batch in old {
                let keys = converter.convert_columns(&batch.columns()[..groups])?;
                let mask = BooleanArray::from(BooleanBuffer::collect_bool(keys.num_rows(), |i| {
                    touched.contains(&keys.row(i))
                }));
                match mask.true_count() {
                    0 => untouched.push(batch),
                    n if n == batch.num_rows() => merge_input.push(batch),
                    _ => {
                        merge_input.push(filter_record_batch(&batch, &mask)?);
                        untouched.push(filter_record_batch(&batch, &not(&mask)?)?);
                    }
                }
            }
        }
        merge_input.push(new);
        let reduced = if groups > 0 && merge_input.iter().all(|b| b.num_rows() == 0) {
            Vec::new()
        } else {
            self.stage(
                AggregateMode::PartialReduce,
                final_group_by,
                merge_input,
                state_schema,
                context,
            )
            .await?
        };
        let reduced = concat_batches(state_schema, &reduced)?;

        let (reduced_open, reduced_closed) = self.split_open(&reduced)?;
        let mut keep = Vec::with_capacity(untouched.len() + 1);
        let mut closed = Vec::new();
        for batch in &untouched {
            let (open, done) = self.split_open(batch)?;
            keep.extend((open.num_rows() > 0).then_some(open));
            closed.extend((done.num_rows() > 0).then_some(done));
        }
        closed.push(reduced_closed);
        let closed = concat_batches(state_schema, &closed)?;
        let emit = match self.mode {
            OutputMode::Complete => {
                untouched.push(reduced);
                untouched
            }
            OutputMode::Update => vec![reduced],
            OutputMode::Append => vec![closed.clone()],
        };
        let delta = delta_of(state_schema, reduced_open.clone(), closed.clone())
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        keep.extend((reduced_open.num_rows() > 0).then_some(reduced_open));
        Ok(GroupsState {
            emit,
            keep: compact(state_schema, keep)?,
            closed: closed.num_rows(),
            delta,
        })
    }

    /// Merges session windows: overlapping sessions of a group are relabelled to one session
    /// and merged; as merging changes sessions' keys, the delta compares whole states.
    async fn merge_sessions(
        &self,
        old: Vec<RecordBatch>,
        new: RecordBatch,
        final_group_by: &Arc<PhysicalGroupBy>,
        state_schema: &SchemaRef,
        context: &Arc<TaskContext>,
    ) -> Result<GroupsState> {
        let (Some(start), Some(end)) = (self.session_start, self.window_end) else {
            return Err(DataFusionError::Internal(
                "a session window without its start and end".to_string(),
            ));
        };
        let groups = self.group_by.expr().len();
        let mut all = old.clone();
        all.push(new);
        let all = concat_batches(state_schema, &all)?;
        let keys: Vec<usize> = (0..groups).filter(|i| *i != start && *i != end).collect();
        let merged = self
            .stage(
                AggregateMode::PartialReduce,
                final_group_by,
                vec![merge_sessions(&all, &keys, start, end)?],
                state_schema,
                context,
            )
            .await?;
        let merged = concat_batches(state_schema, &merged)?;
        let (keep, closed) = self.split_open(&merged)?;
        let delta = diff(state_schema, groups, &old, std::slice::from_ref(&keep))
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(GroupsState {
            emit: vec![match self.mode {
                OutputMode::Complete => merged,
                // Update mode is refused for sessions at planning (as in Spark).
                OutputMode::Update | OutputMode::Append => closed.clone(),
            }],
            keep: vec![keep],
            closed: closed.num_rows(),
            delta,
        })
    }
}

/// One partition's merged state, before finalizing.
pub(super) struct GroupsState {
    /// The groups (partial state) to finalize and emit.
    emit: Vec<RecordBatch>,
    /// The state to keep.
    keep: Vec<RecordBatch>,
    /// How many groups were evicted because their window closed.
    closed: usize,
    delta: RecordBatch,
}

/// What merging one state partition gave.
pub(super) struct MergedPartition {
    /// The finalized rows to emit.
    pub(super) output: Vec<RecordBatch>,
    /// Groups removed because their window closed.
    pub(super) evicted: u64,
    pub(super) staged: StagedPartition,
}
