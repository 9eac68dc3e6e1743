//! The runtime: one continuous query as a loop of micro-batches (triggers).
//!
//! ```text
//! per batch N:  latest offsets ─▶ offsets/N ─▶ read sources ─▶ bind rows to the plan
//!               ─▶ DataFusion physical plan ─▶ sink.write(N) ─▶ commits/N ─▶ source.commit
//! ```

mod batch_context;
mod idle;
mod micro_batch;
mod progress;
mod progress_json;
mod query_options;
mod query_runner;
mod watermark;

pub use batch_context::{BatchContext, BatchWatermarks, OperatorMetrics, PlannerFactory};
#[cfg(test)]
pub(crate) use micro_batch::{QueryPlan, execute_batch};
pub(crate) use micro_batch::{SourceRows, bind_inputs, streaming_scans};
pub use progress::{
    BatchProgress, OperatorProgress, PhaseDurations, QueryListener, QueryOutput, QueryStarted,
    QueryState, QueryStatus, QueryTerminated, SourceProgress,
};
pub use progress_json::spark_progress;
pub use query_options::{OutputMode, QUERY_OPTIONS, QueryOptions, Trigger};
pub(crate) use query_runner::{QueryRunner, RunnerParts, SourcePart};
pub(crate) use watermark::WatermarkSpec;
pub(crate) use watermark::watermark_text;
