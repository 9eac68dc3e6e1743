//! [`AggregateHopPanes`]: an optimizer rule that aggregates a hopping window by panes.
//!
//! `HOP(src, ts, slide, size)` puts each row in `size / slide` windows: it lists the row's
//! window starts ([`WINDOW_STARTS_COLUMN`], latest first) and unnests them, so an aggregation
//! over it aggregates every row that many times (five times for Nexmark q5). When the
//! windows reach the aggregation only as its `window_start` / `window_end` group keys, the
//! rule keeps just the latest start of each row (the row's pane), so each row is aggregated
//! once into its pane; the aggregation then adds each pane's partial state to the windows
//! holding it ([`HopPanes`]), which gives the same state as aggregating the unnested rows.
//!
//! The rule applies only when nothing between the unnest and the aggregation uses the
//! window's values: projections may pass `window_start` through (renamed or not) and compute
//! `window_end` from it, filters and the other group keys and aggregates may not read either.
//! It does not apply to `count(DISTINCT)` (its pairs are per window) or session windows.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, Projection, Unnest};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::marker::WindowColumn;
use crate::logical::{HopPanes, StreamingAggregateNode, WINDOW_STARTS_COLUMN, unaliased};

/// Aggregates hopping windows by panes; see the module docs.
#[derive(Debug, Default)]
pub struct AggregateHopPanes;

impl OptimizerRule for AggregateHopPanes {
    fn name(&self) -> &str {
        "weir_aggregate_hop_panes"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Extension(extension) = &plan else {
            return Ok(Transformed::no(plan));
        };
        let Some(aggregate) = extension
            .node
            .as_any()
            .downcast_ref::<StreamingAggregateNode>()
        else {
            return Ok(Transformed::no(plan));
        };
        let Some(panes) = panes_of(aggregate) else {
            return Ok(Transformed::no(plan));
        };
        let input = aggregate
            .input
            .clone()
            .transform_down(|node| match node {
                // The first is the one `panes_of` checked; one further down (a HOP over a
                // view of another HOP) expands rows the aggregation must see expanded.
                LogicalPlan::Unnest(unnest) if unnests_window_starts(&unnest) => {
                    Ok(Transformed::new(
                        LogicalPlan::Unnest(latest_start_only(unnest)?),
                        true,
                        TreeNodeRecursion::Stop,
                    ))
                }
                other => Ok(Transformed::no(other)),
            })?
            .data;
        let mut by_panes = aggregate.clone();
        by_panes.input = input;
        by_panes.hop_panes = Some(panes);
        Ok(Transformed::yes(LogicalPlan::Extension(Extension {
            node: Arc::new(by_panes),
        })))
    }
}

/// The panes `aggregate` can be computed by, when the rule applies to it.
fn panes_of(aggregate: &StreamingAggregateNode) -> Option<HopPanes> {
    let window = aggregate.derived_window_end?;
    if aggregate.hop_panes.is_some()
        || aggregate.session_start.is_some()
        || !aggregate.distinct_counts().is_empty()
    {
        return None;
    }
    let Expr::Column(start) = &aggregate.group_expr[window.start] else {
        return None;
    };
    let input_schema = aggregate.input.schema();
    let start_index = input_schema.index_of_column(start).ok()?;
    let hop = WindowColumn::of(input_schema.field(start_index)).hop?;
    let (slide_ns, windows) = (hop.slide_ns, hop.windows);
    if slide_ns <= 0 || slide_ns % 1_000_000 != 0 || windows < 2 {
        return None;
    }

    // The nodes from the aggregation's input down to the unnest: projections, filters and
    // aliases only.
    let mut chain = Vec::new();
    let mut node = &aggregate.input;
    let unnest = loop {
        let below = match node {
            LogicalPlan::Projection(projection) => &projection.input,
            LogicalPlan::Filter(filter) => &filter.input,
            LogicalPlan::SubqueryAlias(alias) => &alias.input,
            LogicalPlan::Unnest(unnest) if unnests_window_starts(unnest) => break unnest,
            _ => return None,
        };
        chain.push(node);
        node = below.as_ref();
    };
    if starts_list(unnest)?.args.len() as i64 != windows {
        return None;
    }

    // Up from the unnest: the columns holding the window start unchanged (`exact`), and the
    // columns computed from it (`computed`), by position in each node's output.
    let mut exact: HashSet<usize> = unnest
        .schema
        .fields()
        .iter()
        .position(|f| f.name() == WINDOW_STARTS_COLUMN)
        .into_iter()
        .collect();
    let mut computed = HashSet::new();
    let mut below = unnest.schema.as_ref();
    for node in chain.into_iter().rev() {
        match node {
            LogicalPlan::Projection(projection) => {
                let (mut now_exact, mut now_computed) = (HashSet::new(), HashSet::new());
                for (i, expr) in projection.expr.iter().enumerate() {
                    let reads = reads_of(expr, below)?;
                    if reads.is_disjoint(&exact) && reads.is_disjoint(&computed) {
                        continue;
                    }
                    let passed = match unaliased(expr) {
                        Expr::Column(column) => below.index_of_column(column).ok(),
                        _ => None,
                    };
                    if passed.is_some_and(|index| exact.contains(&index)) {
                        now_exact.insert(i);
                    } else {
                        now_computed.insert(i);
                    }
                }
                (exact, computed) = (now_exact, now_computed);
            }
            LogicalPlan::Filter(filter) => {
                let reads = reads_of(&filter.predicate, below)?;
                if !reads.is_disjoint(&exact) || !reads.is_disjoint(&computed) {
                    return None;
                }
            }
            _ => {}
        }
        below = node.schema().as_ref();
    }

    // The aggregation itself: the start key is the window start as unnested, the end key
    // may be computed from it (it is not kept), nothing else reads either.
    if !exact.contains(&start_index) {
        return None;
    }
    for (i, expr) in aggregate
        .group_expr
        .iter()
        .chain(&aggregate.aggr_expr)
        .enumerate()
    {
        if i == window.start || i == window.end {
            continue;
        }
        let reads = reads_of(expr, input_schema)?;
        if !reads.is_disjoint(&exact) || !reads.is_disjoint(&computed) {
            return None;
        }
    }
    Some(HopPanes {
        slide_ms: slide_ns / 1_000_000,
        windows,
    })
}

/// The positions in `schema` of the columns `expr` reads (`None` if one is not found).
fn reads_of(expr: &Expr, schema: &DFSchema) -> Option<HashSet<usize>> {
    expr.column_refs()
        .into_iter()
        .map(|column| schema.index_of_column(column).ok())
        .collect()
}

/// Whether `unnest` unnests the window starts `HOP` lists.
fn unnests_window_starts(unnest: &Unnest) -> bool {
    matches!(unnest.exec_columns.as_slice(), [column] if column.name == WINDOW_STARTS_COLUMN)
}

/// The list of window starts below `unnest`: the call computing the list column.
fn starts_list(unnest: &Unnest) -> Option<&ScalarFunction> {
    let LogicalPlan::Projection(projection) = unnest.input.as_ref() else {
        return None;
    };
    projection.expr.iter().find_map(|expr| match expr {
        Expr::Alias(alias) if alias.name == WINDOW_STARTS_COLUMN => match alias.expr.as_ref() {
            Expr::ScalarFunction(list) => Some(list),
            _ => None,
        },
        _ => None,
    })
}

/// `unnest` with each row's list of window starts cut to its first, the latest: the pane.
/// The list's type, and so every schema above, is unchanged.
fn latest_start_only(mut unnest: Unnest) -> Result<Unnest> {
    let LogicalPlan::Projection(projection) = unnest.input.as_ref() else {
        return Ok(unnest);
    };
    let expr = projection
        .expr
        .iter()
        .map(|expr| match expr {
            Expr::Alias(alias) if alias.name == WINDOW_STARTS_COLUMN => {
                let mut alias = alias.clone();
                if let Expr::ScalarFunction(list) = alias.expr.as_ref() {
                    let mut latest = list.clone();
                    latest.args.truncate(1);
                    alias.expr = Box::new(Expr::ScalarFunction(latest));
                }
                Expr::Alias(alias)
            }
            other => other.clone(),
        })
        .collect();
    let projection = Projection::try_new_with_schema(
        expr,
        Arc::clone(&projection.input),
        Arc::clone(&projection.schema),
    )?;
    unnest.input = Arc::new(LogicalPlan::Projection(projection));
    Ok(unnest)
}
