//! Incrementalization: rewriting stateful operators into streaming extension nodes
//! ([`incrementalize`]), then checking which logical operators can run on one micro-batch at
//! a time ([`check_incremental`]).
//!
//! A `GROUP BY` over a stream becomes a [`StreamingAggregateNode`], and a join of two streams a
//! [`StreamingJoinNode`] (which refuses, with Spark, the joins it cannot run). Stateless operators
//! (projection, filter, UNNEST, UNION ALL, subquery aliases) run per batch.
//! A join of a stream with a static table runs per batch when the stream is the side whose rows
//! are preserved (inner joins, and outer/semi/anti joins that keep the stream's rows), because
//! the static side is read whole each trigger. The other operators that would remember rows
//! across batches (DISTINCT ON, ORDER BY, LIMIT, window functions) are refused here with a
//! message naming the operator. Several stateful operators may be chained (an aggregation
//! over a join or over another aggregation): each but the top one must emit in append mode,
//! checked against the sink's output mode by `check_output_mode`.

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{Distinct, Extension, LogicalPlan};

use super::StreamingTable;
use super::row_number::rewrite_row_number_filter;
use crate::error::{Result, SqlError};
use crate::logical::{
    PENDING_OPERATOR_ID, StreamingAggregateNode, StreamingDedupNode, StreamingJoinNode,
};

/// Rewrites each `Aggregate` that reads a stream into a [`StreamingAggregateNode`], with
/// operator ids `aggregate-0`, `aggregate-1`, ... in plan order, and each join of two streams
/// into a [`StreamingJoinNode`] (`join-0`, ...), ids stable across restarts of the same query.
/// A `WHERE` over an inner join of two streams (`FROM a, b WHERE a.id = b.id ...`) becomes
/// the join's condition first, so its equalities key the join and its time bounds evict.
pub fn incrementalize(plan: LogicalPlan) -> Result<LogicalPlan> {
    let (mut aggregates, mut joins, mut dedups) = (0, 0, 0);
    let external = |e: SqlError| DataFusionError::External(Box::new(e));
    let rewritten = plan
        .transform_down(|node| {
            if let LogicalPlan::Filter(filter) = &node
                && let Some(rewritten) =
                    rewrite_row_number_filter(filter, &mut dedups, reads_stream)
                        .map_err(external)?
            {
                return Ok(Transformed::yes(rewritten));
            }
            Ok(merge_filter_into_join(node))
        })
        .and_then(|merged| {
            merged.data.transform_up(|node| match &node {
                LogicalPlan::Aggregate(aggregate) if reads_stream(&aggregate.input) => {
                    let streaming = StreamingAggregateNode::try_new(
                        aggregate,
                        format!("aggregate-{aggregates}"),
                    )?;
                    aggregates += 1;
                    Ok(Transformed::yes(LogicalPlan::Extension(Extension {
                        node: Arc::new(streaming),
                    })))
                }
                LogicalPlan::Join(join)
                    if reads_stream(&join.left) && reads_stream(&join.right) =>
                {
                    let streaming = StreamingJoinNode::try_new(join, format!("join-{joins}"))?;
                    joins += 1;
                    Ok(Transformed::yes(LogicalPlan::Extension(Extension {
                        node: Arc::new(streaming),
                    })))
                }
                // A table function's deduplication, numbered with the others.
                LogicalPlan::Extension(ext)
                    if ext
                        .node
                        .as_any()
                        .downcast_ref::<StreamingDedupNode>()
                        .is_some_and(|d| d.operator_id == PENDING_OPERATOR_ID) =>
                {
                    let Some(pending) = ext.node.as_any().downcast_ref::<StreamingDedupNode>()
                    else {
                        return Ok(Transformed::no(node));
                    };
                    let mut numbered = pending.clone();
                    numbered.operator_id = format!("dedup-{dedups}");
                    dedups += 1;
                    Ok(Transformed::yes(LogicalPlan::Extension(Extension {
                        node: Arc::new(numbered),
                    })))
                }
                LogicalPlan::Distinct(Distinct::All(input)) if reads_stream(input) => {
                    let streaming =
                        StreamingDedupNode::distinct((**input).clone(), format!("dedup-{dedups}"));
                    dedups += 1;
                    Ok(Transformed::yes(LogicalPlan::Extension(Extension {
                        node: Arc::new(streaming),
                    })))
                }
                _ => Ok(Transformed::no(node)),
            })
        });
    match rewritten {
        Ok(t) => Ok(t.data),
        Err(DataFusionError::External(e)) => match e.downcast::<SqlError>() {
            Ok(sql) => Err(*sql),
            Err(other) => Err(SqlError::Plan(DataFusionError::External(other))),
        },
        Err(e) => Err(e.into()),
    }
}

/// `Filter(Join)` of two streams, inner, as one join whose condition holds the filter's.
fn merge_filter_into_join(node: LogicalPlan) -> Transformed<LogicalPlan> {
    let LogicalPlan::Filter(filter) = &node else {
        return Transformed::no(node);
    };
    let LogicalPlan::Join(join) = filter.input.as_ref() else {
        return Transformed::no(node);
    };
    if join.join_type != JoinType::Inner
        || !reads_stream(&join.left)
        || !reads_stream(&join.right)
        || has_subquery(&filter.predicate)
    {
        return Transformed::no(node);
    }
    let mut merged = join.clone();
    merged.filter = Some(match merged.filter.take() {
        Some(condition) => condition.and(filter.predicate.clone()),
        None => filter.predicate.clone(),
    });
    Transformed::yes(LogicalPlan::Join(merged))
}

fn has_subquery(expr: &datafusion::logical_expr::Expr) -> bool {
    use datafusion::logical_expr::Expr;
    expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_)
                | Expr::InSubquery(_)
                | Expr::Exists(_)
                | Expr::OuterReferenceColumn(..)
        ))
    })
    .unwrap_or(true)
}

/// Whether `plan` reads a streaming source.
fn reads_stream(plan: &LogicalPlan) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && streaming_table_name(scan).is_some()
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn as_streaming_aggregate(plan: &LogicalPlan) -> Option<&StreamingAggregateNode> {
    match plan {
        LogicalPlan::Extension(ext) => ext.node.as_any().downcast_ref::<StreamingAggregateNode>(),
        _ => None,
    }
}

fn is_streaming_dedup(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Extension(ext)
        if ext.node.as_any().is::<StreamingDedupNode>()
            || ext.node.as_any().is::<crate::logical::StreamingTopNNode>())
}

fn as_streaming_join(plan: &LogicalPlan) -> Option<&StreamingJoinNode> {
    match plan {
        LogicalPlan::Extension(ext) => ext.node.as_any().downcast_ref::<StreamingJoinNode>(),
        _ => None,
    }
}

/// Checks that `plan` can run incrementally; returns the streaming sources it reads.
pub fn check_incremental(plan: &LogicalPlan) -> Result<Vec<String>> {
    let mut sources = Vec::new();
    visit(plan, &mut sources)?;
    let mut seen = std::collections::HashSet::new();
    sources.retain(|s| seen.insert(s.clone()));
    Ok(sources)
}

/// Visits `plan` bottom-up, pushing the streams read below it; returns whether it reads one.
fn visit(plan: &LogicalPlan, sources: &mut Vec<String>) -> Result<bool> {
    let mut child_streams = Vec::new();
    for input in plan.inputs() {
        let mut below = Vec::new();
        visit(input, &mut below)?;
        child_streams.push(below);
    }
    check_subqueries(plan)?;
    let streams: Vec<String> = child_streams.iter().flatten().cloned().collect();

    if as_streaming_aggregate(plan).is_some()
        || as_streaming_join(plan).is_some()
        || is_streaming_dedup(plan)
    {
        sources.extend(child_streams.concat());
        return Ok(true);
    }
    if let LogicalPlan::TableScan(scan) = plan {
        if let Some(name) = streaming_table_name(scan) {
            sources.push(name);
            return Ok(true);
        }
        return Ok(false);
    }
    if streams.is_empty() {
        return Ok(false);
    }
    let names = quoted(&streams);
    let refuse = |what: &str, why: &str| {
        Err(SqlError::NotIncremental(format!(
            "{what} over stream {names} {why}"
        )))
    };
    const NEEDS_STATE: &str = "needs state kept across micro-batches, which Weir does not \
                               support for this operator; remove it or compute it when \
                               reading the sink's output";
    match plan {
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Unnest(_)
        | LogicalPlan::Union(_)
        | LogicalPlan::Subquery(_)
        | LogicalPlan::Repartition(_) => {}
        LogicalPlan::Aggregate(_) => {
            return refuse(
                "aggregation (GROUP BY or an aggregate function)",
                NEEDS_STATE,
            );
        }
        LogicalPlan::Distinct(_) => {
            return refuse(
                "DISTINCT ON",
                "is not supported; keep each key's first row with ROW_NUMBER() OVER \
                 (PARTITION BY key ORDER BY event_time) = 1 instead",
            );
        }
        LogicalPlan::Window(_) => {
            return refuse(
                "a window function (OVER ...)",
                "is not supported, except ROW_NUMBER() OVER (PARTITION BY key ORDER BY \
                 event_time) = 1 (deduplication, keeping each key's first row); compute it \
                 when reading the sink's output",
            );
        }
        LogicalPlan::Sort(_) => {
            return refuse(
                "ORDER BY",
                "is not supported: a stream never ends, so it can never be sorted; sort when \
                 reading the sink's output",
            );
        }
        LogicalPlan::Limit(_) => {
            return refuse(
                "LIMIT/OFFSET",
                "is not supported: a continuous query has no end to count up to",
            );
        }
        LogicalPlan::Join(join) => {
            let [left, right] = [&child_streams[0], &child_streams[1]];
            if !left.is_empty() && !right.is_empty() {
                return Err(SqlError::Plan(DataFusionError::Internal(format!(
                    "the join of streams {} and {} was not made a streaming join",
                    quoted(left),
                    quoted(right)
                ))));
            }
            let stream_on_left = !left.is_empty();
            let preserves_stream = match join.join_type {
                JoinType::Inner => true,
                JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
                    stream_on_left
                }
                JoinType::Right
                | JoinType::RightSemi
                | JoinType::RightAnti
                | JoinType::RightMark => !stream_on_left,
                JoinType::Full => false,
            };
            if !preserves_stream {
                return refuse(
                    &format!("a {} join with a static table", join.join_type),
                    "must keep the static side's unmatched rows, which would need state; make \
                     the stream the preserved side (stream LEFT JOIN table) or use an inner join",
                );
            }
        }
        other => {
            return refuse(
                &format!("the operator {}", other.display()),
                "cannot run in a continuous query",
            );
        }
    }
    sources.extend(streams);
    Ok(true)
}

/// Subqueries in expressions (`IN (SELECT ...)`, `EXISTS`, scalar subqueries) may read static
/// tables only.
fn check_subqueries(plan: &LogicalPlan) -> Result<()> {
    let mut result = Ok(());
    let _ = plan.apply_subqueries(|subquery| {
        let mut streams = Vec::new();
        if let Err(e) = visit(subquery, &mut streams) {
            result = Err(e);
            return Ok(TreeNodeRecursion::Stop);
        }
        if !streams.is_empty() {
            result = Err(SqlError::NotIncremental(format!(
                "a subquery over stream {} is not supported; join the stream with a static \
                 table, or read the stream only in the outer query",
                quoted(&streams)
            )));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    result
}

fn streaming_table_name(scan: &datafusion::logical_expr::TableScan) -> Option<String> {
    let provider = datafusion::datasource::source_as_provider(&scan.source).ok()?;
    provider
        .as_ref()
        .downcast_ref::<StreamingTable>()
        .map(|t| t.name().to_string())
}

fn quoted(names: &[String]) -> String {
    let mut unique: Vec<&String> = Vec::new();
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    unique
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ")
}
