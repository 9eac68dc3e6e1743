//! One micro-batch through DataFusion: bind the batch's rows to the plan's streaming scans,
//! plan physically with the batch's timestamp, execute.
//!
//! A query whose result does not depend on the batch's timestamp (no `now()` or other
//! function DataFusion folds to a constant per query) is optimized once, when it starts
//! ([`QueryPlan`]); each batch then only binds its rows and plans physically. Otherwise each
//! batch optimizes its bound copy, so those functions take the batch's timestamp.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::{MemTable, provider_as_source, source_as_provider};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::{QueryPlanner, SessionContext};
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::{ExecutionPlan, collect};
use weir_sql::StreamingTable;

use super::batch_context::BatchContext;

/// A continuous query's logical plan, optimized once when nothing in it depends on the
/// batch's timestamp.
#[derive(Debug, Clone)]
pub(crate) enum QueryPlan {
    /// Optimized already: each batch binds its rows and plans physically.
    Optimized(LogicalPlan),
    /// Optimized by each batch, with the batch's timestamp.
    PerBatch(LogicalPlan),
}

impl QueryPlan {
    /// `plan` (analyzed, not optimized), optimized now unless it uses a function whose value
    /// DataFusion fixes per query, such as `now()`.
    pub(crate) fn new(ctx: &SessionContext, plan: LogicalPlan) -> Result<Self> {
        if depends_on_batch_time(&plan) {
            return Ok(Self::PerBatch(plan));
        }
        Ok(Self::Optimized(ctx.state().optimize(&plan)?))
    }

    fn logical(&self) -> &LogicalPlan {
        match self {
            Self::Optimized(plan) | Self::PerBatch(plan) => plan,
        }
    }

    /// The columns of streaming source `name` (indices into its schema, ascending) that the
    /// plan reads, when it reads fewer than all: the union of its scans' projections. `None`
    /// when some scan reads every column, or when the plan is optimized per batch (its
    /// projections are only known then).
    pub(crate) fn columns_read(&self, name: &str) -> Option<BTreeSet<usize>> {
        let Self::Optimized(plan) = self else {
            return None;
        };
        let mut read = Some(BTreeSet::new());
        let _ = plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && let Ok(provider) = source_as_provider(&scan.source)
                && let Some(table) = provider.as_ref().downcast_ref::<StreamingTable>()
                && table.name() == name
            {
                match (&scan.projection, &mut read) {
                    (Some(projection), Some(columns)) => columns.extend(projection),
                    _ => read = None,
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        read
    }
}

/// The rows one streaming source contributes to a batch.
#[derive(Debug, Default)]
pub(crate) struct SourceRows {
    pub batches: Vec<RecordBatch>,
    /// The source's columns the batches hold (indices into its schema, ascending), when not
    /// all of them: the scans then read the batches' columns in their places.
    pub columns: Option<Vec<usize>>,
}

/// Whether `plan` calls a stable function (one DataFusion evaluates once per query, as
/// `now()`), which must take each batch's timestamp.
fn depends_on_batch_time(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                found |= matches!(e, Expr::ScalarFunction(f)
                    if f.func.signature().volatility == Volatility::Stable);
                Ok(if found {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            })
        })
    });
    found
}

/// Runs `plan` over one batch: `inputs` maps each streaming source to the rows it
/// contributes; `batch_time_ms` is what `now()` returns in this batch; `planner` plans the
/// streaming operators of a stateful plan, which find the batch's context (their state) in
/// the session's configuration when they run.
pub(crate) async fn execute_batch(
    ctx: &SessionContext,
    plan: &QueryPlan,
    inputs: HashMap<String, SourceRows>,
    batch_time_ms: i64,
    planner: Option<(Arc<dyn QueryPlanner + Send + Sync>, Arc<BatchContext>)>,
) -> Result<(Vec<RecordBatch>, Arc<dyn ExecutionPlan>)> {
    let mut state = ctx.state();
    let planner = planner.map(|(planner, batch)| {
        state.config_mut().set_extension(batch);
        planner
    });
    let partitions = state.config().target_partitions().max(1);
    state.execution_props_mut().query_execution_start_time =
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(batch_time_ms);
    let bound = bind_inputs(plan.logical(), inputs, partitions)?;
    let physical = match plan {
        QueryPlan::Optimized(_) => {
            let planner = planner.unwrap_or_else(|| Arc::clone(state.query_planner()));
            planner.create_physical_plan(&bound, &state).await?
        }
        QueryPlan::PerBatch(_) => {
            let mut batch_state = state.clone();
            if let Some(planner) = planner {
                batch_state = SessionStateBuilder::new_from_existing(batch_state)
                    .with_query_planner(planner)
                    .build();
            }
            batch_state.create_physical_plan(&bound).await?
        }
    };
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
/// keeping the scan's projection, filters and name. A scan of rows that hold only some of
/// the source's columns reads them by their positions among those.
pub(crate) fn bind_inputs(
    plan: &LogicalPlan,
    inputs: HashMap<String, SourceRows>,
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
            let mut bound = scan.clone();
            // A source read twice (a self-union) gets the same rows at each scan.
            let (rows, schema) = match inputs.get(table.name()) {
                None => (Vec::new(), provider.schema()),
                Some(SourceRows {
                    batches,
                    columns: None,
                }) => (batches.clone(), provider.schema()),
                Some(SourceRows {
                    batches,
                    columns: Some(columns),
                }) => {
                    let place = |column: &usize| {
                        columns.binary_search(column).map_err(|_| {
                            DataFusionError::Internal(format!(
                                "a scan of '{}' reads column {column}, which was not read",
                                table.name()
                            ))
                        })
                    };
                    let projection = scan.projection.as_ref().ok_or_else(|| {
                        DataFusionError::Internal(format!(
                            "a scan of '{}' reads every column, but only some were read",
                            table.name()
                        ))
                    })?;
                    bound.projection = Some(projection.iter().map(place).collect::<Result<_>>()?);
                    (
                        batches.clone(),
                        Arc::new(provider.schema().project(columns)?),
                    )
                }
            };
            let memory = MemTable::try_new(schema, round_robin(rows, partitions))?;
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

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::empty::EmptyTable;

    use super::*;

    async fn plan_of(sql: &str) -> QueryPlan {
        let ctx = SessionContext::new();
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("t", DataType::Utf8, false),
        ]);
        ctx.register_table("s", Arc::new(EmptyTable::new(Arc::new(schema))))
            .unwrap();
        let plan = ctx.state().create_logical_plan(sql).await.unwrap();
        QueryPlan::new(&ctx, plan).unwrap()
    }

    #[tokio::test]
    async fn only_queries_without_batch_time_functions_are_optimized_once() {
        for sql in [
            "SELECT a + 1 AS b FROM s WHERE a > 2",
            "SELECT t, count(*) AS n FROM s WHERE random() < 2 GROUP BY t",
        ] {
            assert!(
                matches!(plan_of(sql).await, QueryPlan::Optimized(_)),
                "{sql}"
            );
        }
        for sql in [
            "SELECT a, now() AS at FROM s",
            "SELECT a FROM s WHERE current_date() > DATE '2020-01-01'",
            "SELECT a FROM s WHERE a IN (SELECT a FROM s WHERE now() > TIMESTAMP '2020-01-01')",
        ] {
            assert!(
                matches!(plan_of(sql).await, QueryPlan::PerBatch(_)),
                "{sql}"
            );
        }
    }
}
