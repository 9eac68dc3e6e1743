//! One micro-batch through DataFusion: bind the batch's rows to the plan's streaming scans,
//! plan physically with the batch's timestamp, execute.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::{MemTable, provider_as_source, source_as_provider};
use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::{QueryPlanner, SessionContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, collect};
use weir_sql::StreamingTable;

/// Runs `plan` over one batch: `inputs` maps each streaming source to the rows it
/// contributes; `batch_time_ms` is what `now()` returns in this batch; `planner` plans the
/// streaming operators of a stateful plan.
pub(crate) async fn execute_batch(
    ctx: &SessionContext,
    plan: &LogicalPlan,
    inputs: HashMap<String, Vec<RecordBatch>>,
    batch_time_ms: i64,
    planner: Option<Arc<dyn QueryPlanner + Send + Sync>>,
) -> Result<(Vec<RecordBatch>, Arc<dyn ExecutionPlan>)> {
    let mut state = ctx.state();
    if let Some(planner) = planner {
        state = SessionStateBuilder::new_from_existing(state)
            .with_query_planner(planner)
            .build();
    }
    let partitions = state.config().target_partitions().max(1);
    state.execution_props_mut().query_execution_start_time =
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(batch_time_ms);
    let bound = bind_inputs(plan, inputs, partitions)?;
    let physical = state.create_physical_plan(&bound).await?;
    let rows = collect(Arc::clone(&physical), state.task_ctx()).await?;
    Ok((rows, physical))
}

/// The streaming sources `plan` scans, by name, each once.
pub(crate) fn streaming_scans(plan: &LogicalPlan) -> Vec<String> {
    let mut names = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(table) = provider.as_ref().downcast_ref::<StreamingTable>()
            && !names.iter().any(|n| n == table.name())
        {
            names.push(table.name().to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    names
}

/// Replaces each [`StreamingTable`] scan with a scan of the batch's rows for that source,
/// keeping the scan's projection, filters and name.
pub(crate) fn bind_inputs(
    plan: &LogicalPlan,
    inputs: HashMap<String, Vec<RecordBatch>>,
    partitions: usize,
) -> Result<LogicalPlan> {
    plan.clone()
        .transform_up(|node| {
            let LogicalPlan::TableScan(scan) = &node else {
                return Ok(Transformed::no(node));
            };
            let provider = source_as_provider(&scan.source)?;
            let Some(table) = provider.as_ref().downcast_ref::<StreamingTable>() else {
                return Ok(Transformed::no(node));
            };
            // A source read twice (a self-union) gets the same rows at each scan.
            let rows = inputs.get(table.name()).cloned().unwrap_or_default();
            let memory = MemTable::try_new(provider.schema(), round_robin(rows, partitions))?;
            let mut bound = scan.clone();
            bound.source = provider_as_source(Arc::new(memory));
            Ok(Transformed::yes(LogicalPlan::TableScan(bound)))
        })
        .map(|t| t.data)
}

/// Deals record batches over `n` partitions so both cores work on a batch.
fn round_robin(batches: Vec<RecordBatch>, n: usize) -> Vec<Vec<RecordBatch>> {
    let mut partitions = vec![Vec::new(); n];
    for (i, batch) in batches.into_iter().enumerate() {
        partitions[i % n].push(batch);
    }
    partitions
}
