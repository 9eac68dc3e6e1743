//! [`StreamingAggregateNode`]: a `GROUP BY` over a stream, computed incrementally.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use datafusion::common::{DFSchemaRef, Result};
use datafusion::logical_expr::{
    Aggregate, Expr, ExprSchemable, LogicalPlan, UserDefinedLogicalNodeCore,
};

/// Field metadata key marking a window's end column (set by the window table functions):
/// `"watermarked"` when the window is over a source's watermark column, `"unwatermarked"`
/// otherwise.
pub const WINDOW_END_METADATA: &str = "weir.window_end";

/// Field metadata key marking the start column of a session window (set by `SESSION`): rows'
/// sessions with the same other keys merge when they overlap.
pub const SESSION_START_METADATA: &str = "weir.session_start";

/// A grouped aggregation over a stream. Its state is, per group, the aggregate functions'
/// intermediate state (`Accumulator::state`); each batch merges the new rows into it.
///
/// The schema is exactly the one DataFusion's `Aggregate` would have for the same
/// expressions, so the rest of the plan is unchanged by the rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamingAggregateNode {
    /// The input rows.
    pub input: LogicalPlan,
    /// Group keys.
    pub group_expr: Vec<Expr>,
    /// Aggregate expressions.
    pub aggr_expr: Vec<Expr>,
    /// Output schema (as `Aggregate`'s).
    pub schema: DFSchemaRef,
    /// The position in `group_expr` of a window end key, if the aggregation is windowed.
    pub window_end: Option<usize>,
    /// Whether that window is over a watermarked event-time column (append mode needs it).
    pub watermarked: bool,
    /// The position in `group_expr` of a session window's start key, for session windows.
    pub session_start: Option<usize>,
    /// Stable id of the operator within its query, naming its state in the checkpoint.
    pub operator_id: String,
}

impl StreamingAggregateNode {
    /// Builds the node from DataFusion's `Aggregate`, finding the window end key by its
    /// field metadata.
    pub fn try_new(aggregate: &Aggregate, operator_id: String) -> Result<Self> {
        let input_schema = aggregate.input.schema();
        let mut window_end = None;
        let mut watermarked = false;
        let mut session_start = None;
        for (index, expr) in aggregate.group_expr.iter().enumerate() {
            let (_, field) = expr.to_field(input_schema)?;
            if let Some(kind) = field.metadata().get(WINDOW_END_METADATA) {
                window_end = Some(index);
                watermarked = kind == "watermarked";
            }
            if field.metadata().contains_key(SESSION_START_METADATA) {
                session_start = Some(index);
            }
        }
        Ok(Self {
            input: aggregate.input.as_ref().clone(),
            group_expr: aggregate.group_expr.clone(),
            aggr_expr: aggregate.aggr_expr.clone(),
            schema: Arc::clone(&aggregate.schema),
            window_end,
            watermarked,
            session_start,
            operator_id,
        })
    }
}

impl PartialOrd for StreamingAggregateNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (
            &self.input,
            &self.group_expr,
            &self.aggr_expr,
            &self.operator_id,
        )
            .partial_cmp(&(
                &other.input,
                &other.group_expr,
                &other.aggr_expr,
                &other.operator_id,
            ))
    }
}

impl UserDefinedLogicalNodeCore for StreamingAggregateNode {
    fn name(&self) -> &str {
        "StreamingAggregate"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        self.group_expr
            .iter()
            .chain(&self.aggr_expr)
            .cloned()
            .collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let list = |exprs: &[Expr]| {
            exprs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "StreamingAggregate: id={}, groupBy=[{}], aggr=[{}]",
            self.operator_id,
            list(&self.group_expr),
            list(&self.aggr_expr)
        )?;
        if let Some(index) = self.window_end {
            write!(f, ", window_end={}", self.group_expr[index])?;
        }
        Ok(())
    }

    /// The input columns the group keys and aggregates read (whatever the parent needs, all
    /// aggregates are kept in state), so the optimizer prunes the rest below the node.
    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let schema = self.input.schema();
        let mut needed: Vec<usize> = self
            .group_expr
            .iter()
            .chain(&self.aggr_expr)
            .flat_map(|expr| expr.column_refs())
            .filter_map(|column| schema.index_of_column(column).ok())
            .collect();
        needed.sort_unstable();
        needed.dedup();
        Some(vec![needed])
    }

    fn with_exprs_and_inputs(
        &self,
        exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let input = inputs.swap_remove(0);
        let groups = self.group_expr.len();
        let (group_expr, aggr_expr) = (exprs[..groups].to_vec(), exprs[groups..].to_vec());
        let aggregate = Aggregate::try_new(Arc::new(input), group_expr, aggr_expr)?;
        let mut node = Self::try_new(&aggregate, self.operator_id.clone())?;
        node.window_end = self.window_end;
        node.watermarked = self.watermarked;
        node.session_start = self.session_start;
        Ok(node)
    }
}
