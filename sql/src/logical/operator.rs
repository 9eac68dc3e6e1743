//! [`StreamingOperator`]: what every stateful streaming node tells the engine about itself
//! (its id, what it keeps in state, which output modes it can emit in and why not the others,
//! how EXPLAIN describes it), so that the engine handles operators without naming them; and
//! [`streaming_operators`], the one place that knows which logical nodes are operators.

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
}

/// The stateful operators of `plan`, from the top down.
pub fn streaming_operators(plan: &LogicalPlan) -> Vec<Arc<dyn StreamingOperator>> {
    let mut found: Vec<Arc<dyn StreamingOperator>> = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::Extension(extension) = node {
            let any = extension.node.as_any();
            if let Some(aggregate) = any.downcast_ref::<StreamingAggregateNode>() {
                found.push(Arc::new(aggregate.clone()));
            } else if let Some(join) = any.downcast_ref::<StreamingJoinNode>() {
                found.push(Arc::new(join.clone()));
            } else if let Some(dedup) = any.downcast_ref::<StreamingDedupNode>() {
                found.push(Arc::new(dedup.clone()));
            } else if let Some(top_n) = any.downcast_ref::<StreamingTopNNode>() {
                found.push(Arc::new(top_n.clone()));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}
