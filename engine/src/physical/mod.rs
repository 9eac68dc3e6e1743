//! Streaming operators as DataFusion `ExecutionPlan`s, and the one place that maps the
//! logical extension nodes of `weir_sql::logical` to them ([`planner`]).

mod batch_output;
#[cfg(test)]
pub(crate) mod harness;
mod hop_panes;
mod late_rows;
pub mod planner;
mod row_hash;
mod session_merge;
mod state_keys;
mod streaming_aggregate;
mod streaming_dedup;
mod streaming_join;
mod streaming_top_n;

pub use streaming_aggregate::StreamingAggregateExec;
pub use streaming_dedup::StreamingDedupExec;
pub use streaming_join::StreamingJoinExec;
pub use streaming_top_n::StreamingTopNExec;
