//! Merging one state partition of a [`StreamingAggregateExec`]: its committed groups with the
//! batch's partial state for them, into what the output mode emits, the state kept and the
//! delta to checkpoint.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::aggregates::{AggregateMode, PhysicalGroupBy};

use super::StreamingAggregateExec;
use crate::error::WeirError;
use crate::physical::session_merge::merge_sessions;
use crate::runtime::OutputMode;
use crate::state::{KeyedTable, StagedPartition, Touched};

fn weir_error(e: WeirError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl StreamingAggregateExec {
    /// Merges one state partition's committed state `old` with the batch's partial state for
    /// its groups (`new`), and finalizes what the output mode emits.
    pub(super) async fn merge_partition(
        &self,
        partition: usize,
        old: Vec<RecordBatch>,
        new: RecordBatch,
        final_group_by: Arc<PhysicalGroupBy>,
        table: &KeyedTable,
        context: Arc<TaskContext>,
    ) -> Result<MergedPartition> {
        let state_schema = Arc::clone(table.schema());
        let groups = self.group_by.expr().len();
        // A global aggregate's one group lives in partition 0, and exists before any row.
        let idle = old.iter().all(|b| b.num_rows() == 0) && new.num_rows() == 0;
        if idle && (groups > 0 || partition > 0) {
            return Ok(MergedPartition {
                output: Vec::new(),
                evicted: 0,
                staged: table
                    .change(Vec::new(), new.clone(), new)
                    .map_err(weir_error)?,
            });
        }
        let groups_state = if self.session_start.is_some() {
            self.merge_sessions(old, new, &final_group_by, table, &context)
                .await?
        } else {
            self.merge_groups(old, new, &final_group_by, table, &context)
                .await?
        };
        let GroupsState {
            emit,
            closed,
            staged,
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
            staged,
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
        table: &KeyedTable,
        context: &Arc<TaskContext>,
    ) -> Result<GroupsState> {
        let state_schema = table.schema();
        let groups = self.group_by.expr().len();
        let Touched {
            touched: mut merge_input,
            mut untouched,
        } = table.touched_by(old, &new).map_err(weir_error)?;
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
        let closed_groups = closed.num_rows();
        let staged = table
            .change(keep, reduced_open, closed)
            .map_err(weir_error)?;
        Ok(GroupsState {
            emit,
            closed: closed_groups,
            staged,
        })
    }

    /// Merges session windows: overlapping sessions of a group are relabelled to one session
    /// and merged; as merging changes sessions' keys, the delta compares whole states.
    async fn merge_sessions(
        &self,
        old: Vec<RecordBatch>,
        new: RecordBatch,
        final_group_by: &Arc<PhysicalGroupBy>,
        table: &KeyedTable,
        context: &Arc<TaskContext>,
    ) -> Result<GroupsState> {
        let state_schema = table.schema();
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
        Ok(GroupsState {
            emit: vec![match self.mode {
                OutputMode::Complete => merged,
                // Update mode is refused for sessions at planning (as in Spark).
                OutputMode::Update | OutputMode::Append => closed.clone(),
            }],
            closed: closed.num_rows(),
            staged: table.replace(&old, keep).map_err(weir_error)?,
        })
    }
}

/// One partition's merged state, before finalizing.
pub(super) struct GroupsState {
    /// The groups (partial state) to finalize and emit.
    emit: Vec<RecordBatch>,
    /// How many groups were evicted because their window closed.
    closed: usize,
    /// The state to keep, and its delta.
    staged: StagedPartition,
}

/// What merging one state partition gave.
pub(super) struct MergedPartition {
    /// The finalized rows to emit.
    pub(super) output: Vec<RecordBatch>,
    /// Groups removed because their window closed.
    pub(super) evicted: u64,
    pub(super) staged: StagedPartition,
}
