//! Logical extension nodes of streaming operators. The engine maps each to its physical
//! `…Exec` in one place (`weir::physical::planner`).

mod join_bounds;
mod operator;
mod streaming_aggregate;
mod streaming_dedup;
mod streaming_join;
mod streaming_top_n;

pub use operator::{
    Mode, OutputModes, StreamingOperator, check_output_mode, feeding_operator_ids,
    input_watermark_lag_ms, operator_watermark_lags, streaming_operators,
};

pub use join_bounds::StateEviction;
pub(crate) use streaming_aggregate::unaliased;
pub use streaming_aggregate::{
    DerivedWindowEnd, HopPanes, StreamingAggregateNode, WINDOW_STARTS_COLUMN,
};
pub(crate) use streaming_dedup::watermarked_column;
pub use streaming_dedup::{DedupKind, PENDING_OPERATOR_ID, StreamingDedupNode};
pub use streaming_join::StreamingJoinNode;
pub use streaming_top_n::{RankOrder, StreamingTopNNode};
