//! [`StreamingOperator`]: what every stateful streaming node tells the engine about itself
//! (its id, what it keeps in state, which output modes it can emit in and why not the others,
//! how EXPLAIN describes it), so that the engine handles operators without naming them; and
//! [`streaming_operators`], the one place that knows which logical nodes are operators.
//!
//! **Several stateful operators in one query** (an aggregation over a join, a Top-N over a
//! join, an aggregation over a windowed aggregation), as Spark (≥ 3.4) chains them:
//! - an operator whose output feeds another ([`feeding_operator_ids`]) emits in `append`
//!   mode, whatever the query's mode, so the operator above sees each of its rows once, never
//!   retracted; it must be able to (a windowed aggregation closed by the watermark, a join, a
//!   dedup), or the query is refused. Only the top operators emit in the query's mode. Spark
//!   allows several stateful operators in `append` mode only; Weir also lets the top one
//!   emit in `update` or `complete` mode (Flink's Top-N over a join, Nexmark q9), which is
//!   sound because what it reads is append-only.
//! - watermarks propagate as in Spark's `EventTimeWatermarkPropagator`: each operator works
//!   with its input's watermark, the minimum of what its inputs produce, and produces its
//!   input watermark (`produceOutputWatermark`'s default), except a join, which produces
//!   the minimum of its input watermark and its two sides' state watermarks (the points
//!   below which it keeps no row, so none it emits later can be older). As a join's state
//!   watermark is its input watermark plus a constant, each operator's watermark is the
//!   query's minus a constant fixed at planning ([`input_watermark_lag_ms`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::LogicalPlan;

use super::{StreamingAggregateNode, StreamingDedupNode, StreamingJoinNode, StreamingTopNNode};

/// Whether an operator can emit in each of Spark's output modes, with the reason where not
/// (said to the user after `sink '<name>': `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputModes {
    /// `append`: each row once, never changed later.
    pub append: Result<(), String>,
    /// `update`: the rows that changed in each batch.
    pub update: Result<(), String>,
    /// `complete`: the whole result in each batch.
    pub complete: Result<(), String>,
    /// For EXPLAIN: the modes taken, and what each emits.
    pub summary: String,
}

/// A stateful streaming operator, as a logical plan node.
pub trait StreamingOperator: Debug + Send + Sync {
    /// The operator's stable id in the plan (for example `aggregate-0`): it names its state.
    fn operator_id(&self) -> &str;

    /// The ids of all the state it keeps (its own and its parts').
    fn state_ids(&self) -> Vec<String>;

    /// What it keeps in state, as `name: type` lines; a query resuming a checkpoint must keep
    /// exactly this.
    fn state_signature(&self) -> Vec<String>;

    /// The output modes it can emit in.
    fn output_modes(&self) -> OutputModes;

    /// One line for EXPLAIN: what it keys by, computes and keeps.
    fn describe(&self) -> String;

    /// A warning for the query's start-up log, when its state can grow without bound.
    fn state_warning(&self) -> Option<String> {
        None
    }

    /// How far behind its input watermark the watermark it produces for the operators above
    /// it is, in milliseconds (Spark's `produceOutputWatermark`): none for most operators.
    fn output_watermark_delay_ms(&self) -> i64 {
        0
    }
}

/// `node` as a stateful operator, if it is one.
fn as_operator(node: &LogicalPlan) -> Option<Arc<dyn StreamingOperator>> {
    let LogicalPlan::Extension(extension) = node else {
        return None;
    };
    let any = extension.node.as_any();
    if let Some(aggregate) = any.downcast_ref::<StreamingAggregateNode>() {
        Some(Arc::new(aggregate.clone()))
    } else if let Some(join) = any.downcast_ref::<StreamingJoinNode>() {
        Some(Arc::new(join.clone()))
    } else if let Some(dedup) = any.downcast_ref::<StreamingDedupNode>() {
        Some(Arc::new(dedup.clone()))
    } else {
        any.downcast_ref::<StreamingTopNNode>()
            .map(|top_n| Arc::new(top_n.clone()) as Arc<dyn StreamingOperator>)
    }
}

/// Spark's output modes, as the planner checks a query against them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Each row once, never changed later.
    Append,
    /// The rows that changed in each batch.
    Update,
    /// The whole result in each batch.
    Complete,
}

/// Whether `plan` can emit in `mode`; the reason where not. Each stateful operator says which
/// modes it takes (Spark's rules): the top ones are checked against `mode`, those feeding
/// another must take `append` (see the module docs). A query without one takes `append` and
/// `update`, not `complete`, which re-emits a whole result.
pub fn check_output_mode(plan: &LogicalPlan, mode: Mode) -> Result<(), String> {
    let operators = streaming_operators(plan);
    if operators.is_empty() && mode == Mode::Complete {
        return Err(
            "output_mode 'complete' needs an aggregation in the query (it re-emits the \
                    whole result every batch); use 'append' for a query without one"
                .to_string(),
        );
    }
    let feeding = feeding_operator_ids(plan);
    for operator in operators {
        let modes = operator.output_modes();
        if feeding.contains(operator.operator_id()) {
            modes.append.map_err(|why| {
                format!(
                    "{} feeds another stateful operator, so it must emit each row once, in \
                     append mode, and it cannot: {why}",
                    operator.operator_id()
                )
            })?;
            continue;
        }
        match mode {
            Mode::Append => modes.append,
            Mode::Update => modes.update,
            Mode::Complete => modes.complete,
        }?;
    }
    Ok(())
}

/// The stateful operators of `plan`, from the top down.
pub fn streaming_operators(plan: &LogicalPlan) -> Vec<Arc<dyn StreamingOperator>> {
    let mut found: Vec<Arc<dyn StreamingOperator>> = Vec::new();
    let _ = plan.apply(|node| {
        found.extend(as_operator(node));
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The ids of the operators of `plan` whose output feeds another stateful operator (they
/// emit in `append` mode; see the module docs).
pub fn feeding_operator_ids(plan: &LogicalPlan) -> BTreeSet<String> {
    let mut feeding = BTreeSet::new();
    let _ = plan.apply(|node| {
        if as_operator(node).is_some() {
            for input in node.inputs() {
                feeding.extend(
                    streaming_operators(input)
                        .iter()
                        .map(|o| o.operator_id().to_string()),
                );
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    feeding
}

/// For each operator of `plan` (by id), how far (in milliseconds) the watermark it works with
/// is behind the query's (see [`input_watermark_lag_ms`]).
pub fn operator_watermark_lags(plan: &LogicalPlan) -> BTreeMap<String, i64> {
    let mut lags = BTreeMap::new();
    let _ = plan.apply(|node| {
        if let Some(operator) = as_operator(node) {
            lags.insert(
                operator.operator_id().to_string(),
                input_watermark_lag_ms(&node.inputs()),
            );
        }
        Ok(TreeNodeRecursion::Continue)
    });
    lags
}

/// How far (in milliseconds) the watermark of an operator reading `inputs` is behind the
/// query's: the largest of the inputs' (see the module docs).
pub fn input_watermark_lag_ms(inputs: &[&LogicalPlan]) -> i64 {
    inputs
        .iter()
        .map(|input| output_watermark_lag_ms(input))
        .max()
        .unwrap_or(0)
}

/// How far behind the query's watermark the watermark `plan` produces is.
fn output_watermark_lag_ms(plan: &LogicalPlan) -> i64 {
    let below = input_watermark_lag_ms(&plan.inputs());
    below + as_operator(plan).map_or(0, |operator| operator.output_watermark_delay_ms())
}
