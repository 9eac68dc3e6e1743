//! The one place mapping logical streaming nodes to their physical operators: a DataFusion
//! `QueryPlanner` made for each micro-batch, carrying what the operators need from the
//! runtime (their state, the watermark in force, the output mode).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::Session;
use datafusion::common::{Column, DFSchema};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::aggregate::LoweredAggregateBuilder;
use datafusion::physical_expr::expressions::CastExpr;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::PhysicalGroupBy;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};
use weir_sql::logical::{
    StateEviction, StreamingAggregateNode, StreamingDedupNode, StreamingJoinNode,
    StreamingTopNNode, feeding_operator_ids, input_watermark_lag_ms,
};

use super::streaming_aggregate::{StreamingAggregateExec, distinct};
use super::streaming_dedup::StreamingDedupExec;
use super::streaming_join::{Eviction, JoinSide, StreamingJoinExec};
use super::streaming_top_n::StreamingTopNExec;
use crate::runtime::{BatchContext, BatchWatermarks, OutputMode};

/// DataFusion's planner plus Weir's streaming operators.
#[derive(Debug)]
pub struct StreamingQueryPlanner {
    context: Arc<BatchContext>,
}

impl StreamingQueryPlanner {
    /// A planner for one batch.
    pub fn new(context: Arc<BatchContext>) -> Self {
        Self { context }
    }
}

#[async_trait]
impl QueryPlanner for StreamingQueryPlanner {
    async fn create_physical_plan(
        &self,
        plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let streaming = StreamingExtensionPlanner {
            context: Arc::clone(&self.context),
            feeding: feeding_operator_ids(plan),
        };
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(streaming)])
            .create_physical_plan(plan, session)
            .await
    }
}

struct StreamingExtensionPlanner {
    context: Arc<BatchContext>,
    /// The operators whose output feeds another: they emit in append mode.
    feeding: BTreeSet<String>,
}

impl StreamingExtensionPlanner {
    /// The mode operator `id` emits in: the query's, unless it feeds another operator.
    fn mode_of(&self, id: &str) -> OutputMode {
        if self.feeding.contains(id) {
            OutputMode::Append
        } else {
            self.context.mode
        }
    }
}

#[async_trait]
impl ExtensionPlanner for StreamingExtensionPlanner {
    async fn plan_extension(
        &self,
        planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        // The operator's input watermark: the query's, or earlier above a join.
        let watermarks = self
            .context
            .watermarks
            .lagged(input_watermark_lag_ms(logical_inputs));
        if let Some(dedup) = node.as_any().downcast_ref::<StreamingDedupNode>() {
            let schema = logical_inputs[0].schema();
            let index = |c: &Column| schema.index_of_column(c);
            let exec = StreamingDedupExec::new(
                dedup.operator_id.clone(),
                Arc::clone(&physical_inputs[0]),
                dedup.kind.clone(),
                dedup.keys.iter().map(index).collect::<Result<_>>()?,
                dedup.time.as_ref().map(index).transpose()?,
                dedup.evict_by_key,
                watermarks,
                Arc::new(dedup.schema.as_arrow().clone()),
            );
            return Ok(Some(Arc::new(exec)));
        }
        if let Some(top_n) = node.as_any().downcast_ref::<StreamingTopNNode>() {
            let schema = logical_inputs[0].schema();
            let index = |c: &Column| schema.index_of_column(c);
            let order_by = top_n
                .order_by
                .iter()
                .map(|o| {
                    let options = SortOptions {
                        descending: !o.asc,
                        nulls_first: o.nulls_first,
                    };
                    Ok((index(&o.column)?, options))
                })
                .collect::<Result<_>>()?;
            let exec = StreamingTopNExec::new(
                top_n.operator_id.clone(),
                Arc::clone(&physical_inputs[0]),
                top_n
                    .partition_by
                    .iter()
                    .map(index)
                    .collect::<Result<_>>()?,
                order_by,
                usize::try_from(top_n.limit).unwrap_or(usize::MAX),
                top_n.closed_by.as_ref().map(index).transpose()?,
                self.mode_of(&top_n.operator_id),
                watermarks,
                Arc::new(top_n.schema.as_arrow().clone()),
            );
            return Ok(Some(Arc::new(exec)));
        }
        if let Some(join) = node.as_any().downcast_ref::<StreamingJoinNode>() {
            let exec = plan_join(
                join,
                planner,
                logical_inputs,
                physical_inputs,
                session,
                planning_ctx,
                watermarks,
            )?;
            return Ok(Some(Arc::new(exec)));
        }
        let Some(aggregate) = node.as_any().downcast_ref::<StreamingAggregateNode>() else {
            return Ok(None);
        };
        let input = Arc::clone(&physical_inputs[0]);
        let logical_schema = logical_inputs[0].schema();
        let physical_schema = input.schema();
        let output = &aggregate.schema;
        let groups = aggregate
            .group_expr
            .iter()
            .enumerate()
            .map(|(i, expr)| {
                let physical =
                    planner.create_physical_expr(expr, logical_schema, session, planning_ctx)?;
                Ok((physical, output.field(i).name().clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut aggr_expr = Vec::with_capacity(aggregate.aggr_expr.len());
        let mut filter_expr = Vec::with_capacity(aggregate.aggr_expr.len());
        for (j, expr) in aggregate.aggr_expr.iter().enumerate() {
            // Named as in the logical schema, so the rest of the plan finds its columns.
            let name = output.field(groups.len() + j).name().clone();
            let lowered = LoweredAggregateBuilder::new(
                expr,
                logical_schema,
                &physical_schema,
                session.execution_props(),
                planning_ctx,
            )
            .with_name(name)
            .build()?;
            aggr_expr.push(lowered.aggregate);
            filter_expr.push(lowered.filter);
        }
        // The counts of one value share their pairs (see `PairSet`); each keeps its own state.
        let distinct = aggregate
            .distinct_count_classes(distinct::PairSet::MAX_MEMBERS)
            .into_iter()
            .map(|indices| {
                let ids = indices
                    .iter()
                    .map(|&i| aggregate.distinct_state_id(i))
                    .collect();
                (indices, ids)
            })
            .collect();
        let exec = StreamingAggregateExec::try_new(
            aggregate.operator_id.clone(),
            input,
            PhysicalGroupBy::new_single(groups),
            aggr_expr,
            filter_expr,
            aggregate.window_end,
            aggregate.session_start,
            aggregate.derived_window_end,
            aggregate.hop_panes,
            distinct,
            self.mode_of(&aggregate.operator_id),
            watermarks,
        )?;
        Ok(Some(Arc::new(exec)))
    }
}

/// The physical join of `join`: key expressions cast to types common to both sides (so equal
/// keys encode equally), the condition over both sides' columns, the time columns by index.
fn plan_join(
    join: &StreamingJoinNode,
    planner: &dyn PhysicalPlanner,
    logical_inputs: &[&LogicalPlan],
    physical_inputs: &[Arc<dyn ExecutionPlan>],
    session: &dyn Session,
    planning_ctx: &PhysicalPlanningContext,
    watermarks: BatchWatermarks,
) -> Result<StreamingJoinExec> {
    let (left_schema, right_schema) = (logical_inputs[0].schema(), logical_inputs[1].schema());
    let physical = |expr, schema| planner.create_physical_expr(expr, schema, session, planning_ctx);
    let mut left_keys = Vec::with_capacity(join.on.len());
    let mut right_keys = Vec::with_capacity(join.on.len());
    for (l, r) in &join.on {
        let (l, r) = (physical(l, left_schema)?, physical(r, right_schema)?);
        let (lt, rt) = (
            l.data_type(&physical_inputs[0].schema())?,
            r.data_type(&physical_inputs[1].schema())?,
        );
        let common = comparison_coercion(&lt, &rt).ok_or_else(|| {
            DataFusionError::Plan(format!(
                "join keys of types {lt} and {rt} cannot be compared; cast one of them"
            ))
        })?;
        let cast = |e: Arc<dyn PhysicalExpr>, from: &DataType| -> Arc<dyn PhysicalExpr> {
            if *from == common {
                e
            } else {
                Arc::new(CastExpr::new(e, common.clone(), None))
            }
        };
        left_keys.push(cast(l, &lt));
        right_keys.push(cast(r, &rt));
    }
    let both = left_schema.join(right_schema)?;
    let condition = join
        .filter
        .as_ref()
        .map(|f| physical(f, &both))
        .transpose()?;
    let index = |schema: &DFSchema, column: &Column| schema.index_of_column(column);
    let eviction = |schema: &DFSchema, e: &Option<StateEviction>| -> Result<Option<Eviction>> {
        e.as_ref()
            .map(|e| {
                Ok(Eviction {
                    column: index(schema, &e.column)?,
                    offset_ms: e.offset_ms,
                })
            })
            .transpose()
    };
    let side = |input: &Arc<dyn ExecutionPlan>,
                schema: &DFSchema,
                keys,
                time: &Option<Column>,
                evict: &Option<StateEviction>|
     -> Result<JoinSide> {
        Ok(JoinSide {
            input: Arc::clone(input),
            keys,
            time: time.as_ref().map(|c| index(schema, c)).transpose()?,
            eviction: eviction(schema, evict)?,
        })
    };
    let left = side(
        &physical_inputs[0],
        left_schema,
        left_keys,
        &join.left_time,
        &join.left_eviction,
    )?;
    let right = side(
        &physical_inputs[1],
        right_schema,
        right_keys,
        &join.right_time,
        &join.right_eviction,
    )?;
    StreamingJoinExec::try_new(
        join.operator_id.clone(),
        join.join_type,
        left,
        right,
        condition,
        Arc::new(join.schema.as_arrow().clone()),
        watermarks,
    )
}
