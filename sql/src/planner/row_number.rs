//! Recognising a filter on `ROW_NUMBER()` over a stream, the way Flink and RisingWave read it:
//! `WHERE rn = 1` (or `rn <= 1`, `rn < 2`) over `ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts)
//! AS rn` is deduplication, keeping each key's first row ([`StreamingDedupNode`]). The window
//! node under the filter (through aliases and projections that pass `rn` on) is replaced by the
//! streaming node, whose output has the same columns; the filter stays, and holds for every row.

use std::sync::Arc;

use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Extension, Filter, LogicalPlan, Operator, Projection, SubqueryAlias,
};

use crate::error::SqlError;
use crate::logical::{StreamingDedupNode, unaliased};

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
    let number = |e: &Expr| -> Option<i64> {
        match unaliased(e) {
            Expr::Literal(value, _) => match value
                .cast_to(&datafusion::arrow::datatypes::DataType::Int64)
                .ok()?
            {
                ScalarValue::Int64(Some(n)) => Some(n),
                _ => None,
            },
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
    let [order] = params.order_by.as_slice() else {
        return Err(refuse(
            "ROW_NUMBER() over a stream needs exactly one ORDER BY column (the event time)"
                .to_string(),
        ));
    };
    let Expr::Column(order_column) = unaliased(&order.expr) else {
        return Err(refuse(format!(
            "ROW_NUMBER() over a stream must be ordered by a column, not by {}",
            order.expr
        )));
    };
    if found.limit != 1 || !order.asc {
        return Err(refuse(
            "ROW_NUMBER() over a stream is supported as deduplication, keeping each key's \
             first row (ORDER BY the event time ascending, rn = 1); Top-N rankings are not \
             supported yet"
                .to_string(),
        ));
    }
    let node = StreamingDedupNode::keep_first(
        (*found.window.input).clone(),
        keys,
        order_column,
        Arc::clone(&found.window.schema),
        format!("dedup-{id}"),
    )
    .map_err(refuse)?;
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    }))
}
