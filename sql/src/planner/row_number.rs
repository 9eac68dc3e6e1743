//! Recognising a filter on `ROW_NUMBER()` over a stream, the way Flink and RisingWave read it:
//! `WHERE rn = 1` (or `rn <= 1`, `rn < 2`) over `ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts)
//! AS rn`, `ts` the watermarked event time, is deduplication keeping each key's first row
//! ([`StreamingDedupNode`]); any other `rn <= N` is a Top-N ([`StreamingTopNNode`]), ranked
//! within a window when the partition holds one. The window node under the filter (through
//! aliases and projections that pass `rn` on) is replaced by the streaming node, whose output
//! has the same columns; the filter stays, and holds for every row.

use std::sync::Arc;

use datafusion::common::tree_node::TreeNode;
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Extension, Filter, LogicalPlan, Operator, Projection, SubqueryAlias,
};

use crate::error::SqlError;
use crate::logical::{
    RankOrder, StreamingDedupNode, StreamingTopNNode, unaliased, watermarked_column,
};
use crate::window::WindowColumn;

/// A window's `ROW_NUMBER()` and the bound a filter puts on it.
struct RowNumberFilter<'a> {
    window: &'a datafusion::logical_expr::Window,
    /// `rn <= limit`.
    limit: u64,
}

/// When `filter` bounds a stream's `ROW_NUMBER()`, its input with the window replaced by the
/// streaming operator; `Ok(None)` when it does not; an error naming what cannot run.
pub(crate) fn rewrite_row_number_filter(
    filter: &Filter,
    next_id: &mut usize,
    reads_stream: impl Fn(&LogicalPlan) -> bool,
) -> Result<Option<LogicalPlan>, SqlError> {
    let Some((column, limit)) = bound(&filter.predicate) else {
        return Ok(None);
    };
    let mut replaced = None;
    let input = replace_window(&filter.input, &column.name, &mut |window| {
        if !reads_stream(&window.input) {
            return Ok(None);
        }
        let found = RowNumberFilter { window, limit };
        let node = streaming_node(&found, *next_id)?;
        *next_id += 1;
        replaced = Some(());
        Ok(Some(node))
    })?;
    match (input, replaced) {
        (Some(input), Some(())) => {
            let filter = Filter::try_new(filter.predicate.clone(), Arc::new(input))
                .map_err(SqlError::Plan)?;
            Ok(Some(LogicalPlan::Filter(filter)))
        }
        _ => Ok(None),
    }
}

/// `rn = 1`, `rn <= n`, `rn < n + 1` (either way round): the column and `n`.
fn bound(predicate: &Expr) -> Option<(Column, u64)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = predicate else {
        return None;
    };
    // Integer literals only: `rn < 2.5` is not `rn <= 1`.
    let number = |e: &Expr| -> Option<i64> {
        match unaliased(e) {
            Expr::Literal(value, _) if value.data_type().is_integer() => {
                match value
                    .cast_to(&datafusion::arrow::datatypes::DataType::Int64)
                    .ok()?
                {
                    ScalarValue::Int64(Some(n)) => Some(n),
                    _ => None,
                }
            }
            _ => None,
        }
    };
    let (column, op, n) = match (unaliased(left), unaliased(right)) {
        (Expr::Column(c), other) => (c.clone(), *op, number(other)?),
        (other, Expr::Column(c)) => (c.clone(), op.swap()?, number(other)?),
        _ => return None,
    };
    let limit = match op {
        Operator::Eq if n == 1 => 1,
        Operator::LtEq if n >= 1 => n,
        Operator::Lt if n >= 2 => n - 1,
        _ => return None,
    };
    Some((column, u64::try_from(limit).ok()?))
}

type Replace<'a> =
    dyn FnMut(&datafusion::logical_expr::Window) -> Result<Option<LogicalPlan>, SqlError> + 'a;

/// `plan` with the window computing column `name` replaced by what `replace` makes of it,
/// through aliases and projections passing the column on; `None` when there is no such window.
fn replace_window(
    plan: &LogicalPlan,
    name: &str,
    replace: &mut Replace<'_>,
) -> Result<Option<LogicalPlan>, SqlError> {
    match plan {
        LogicalPlan::SubqueryAlias(alias) => {
            let Some(input) = replace_window(&alias.input, name, replace)? else {
                return Ok(None);
            };
            let alias = SubqueryAlias::try_new(Arc::new(input), alias.alias.clone())
                .map_err(SqlError::Plan)?;
            Ok(Some(LogicalPlan::SubqueryAlias(alias)))
        }
        LogicalPlan::Projection(projection) => {
            let position = projection
                .schema
                .fields()
                .iter()
                .position(|f| f.name() == name);
            let Some(Expr::Column(below)) = position.map(|i| unaliased(&projection.expr[i])) else {
                return Ok(None);
            };
            let Some(input) = replace_window(&projection.input, &below.name, replace)? else {
                return Ok(None);
            };
            let projection = Projection::try_new_with_schema(
                projection.expr.clone(),
                Arc::new(input),
                Arc::clone(&projection.schema),
            )
            .map_err(SqlError::Plan)?;
            Ok(Some(LogicalPlan::Projection(projection)))
        }
        LogicalPlan::Window(window) => {
            let width = window.input.schema().fields().len();
            let computes = window.window_expr.len() == 1
                && window.schema.field(width).name() == name
                && row_number(&window.window_expr[0]).is_some();
            if computes { replace(window) } else { Ok(None) }
        }
        _ => Ok(None),
    }
}

/// The `ROW_NUMBER()` window function of `expr`, if it is one.
fn row_number(expr: &Expr) -> Option<&WindowFunction> {
    match unaliased(expr) {
        Expr::WindowFunction(f) if f.fun.name() == "row_number" => Some(f),
        _ => None,
    }
}

/// The streaming operator for a bounded `ROW_NUMBER()`, or the reason none can run it.
fn streaming_node(found: &RowNumberFilter<'_>, id: usize) -> Result<LogicalPlan, SqlError> {
    let refuse = |why: String| SqlError::NotIncremental(why);
    let Some(function) = row_number(&found.window.window_expr[0]) else {
        return Err(refuse("not a ROW_NUMBER()".to_string()));
    };
    let params = &function.params;
    let keys = params
        .partition_by
        .iter()
        .map(|e| match unaliased(e) {
            Expr::Column(c) => Ok(c.clone()),
            other => Err(refuse(format!(
                "ROW_NUMBER() over a stream must be partitioned by columns, not by {other}; \
                 compute it in a subquery or view first"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let Some(order) = params.order_by.first() else {
        return Err(refuse(
            "ROW_NUMBER() over a stream needs an ORDER BY: rows have no order of their own"
                .to_string(),
        ));
    };
    let Expr::Column(order_column) = unaliased(&order.expr) else {
        return Err(refuse(format!(
            "ROW_NUMBER() over a stream must be ordered by columns, not by {}",
            order.expr
        )));
    };
    let input = &found.window.input;
    let closed_by = keys.iter().find(|c| closes_by_watermark(input, c)).cloned();
    let keep_first = found.limit == 1
        && order.asc
        && params.order_by.len() == 1
        && watermarked_column(input).as_ref() == Some(order_column);
    if keep_first && closed_by.is_none() {
        let node = StreamingDedupNode::keep_first(
            (**input).clone(),
            keys,
            order_column,
            Arc::clone(&found.window.schema),
            format!("dedup-{id}"),
        )
        .map_err(refuse)?;
        return Ok(LogicalPlan::Extension(Extension {
            node: Arc::new(node),
        }));
    }
    let order_by = params
        .order_by
        .iter()
        .map(|sort| match unaliased(&sort.expr) {
            Expr::Column(column) => Ok(RankOrder {
                column: column.clone(),
                asc: sort.asc,
                nulls_first: sort.nulls_first,
            }),
            other => Err(refuse(format!(
                "ROW_NUMBER() over a stream must be ordered by columns, not by {other}; \
                 compute it in a subquery or view first"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let node = StreamingTopNNode {
        input: (**input).clone(),
        partition_by: keys,
        order_by,
        limit: found.limit,
        closed_by,
        over_aggregation: has_aggregation(input),
        schema: Arc::clone(&found.window.schema),
        operator_id: format!("top-n-{id}"),
    };
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    }))
}

/// Whether the watermark closes `column` of `plan`: its watermarked event time, or a window's
/// end over one.
fn closes_by_watermark(plan: &LogicalPlan, column: &Column) -> bool {
    if watermarked_column(plan).as_ref() == Some(column) {
        return true;
    }
    plan.schema()
        .qualified_field_from_column(column)
        .is_ok_and(|(_, f)| WindowColumn::of(f).end_watermarked == Some(true))
}

/// Whether `plan` aggregates (its rows are groups).
fn has_aggregation(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        found |= matches!(node, LogicalPlan::Aggregate(_));
        Ok(if found {
            datafusion::common::tree_node::TreeNodeRecursion::Stop
        } else {
            datafusion::common::tree_node::TreeNodeRecursion::Continue
        })
    });
    found
}
