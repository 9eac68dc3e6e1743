//! Logical extension nodes of streaming operators. The engine maps each to its physical
//! `…Exec` in one place (`weir::physical::planner`).

mod streaming_aggregate;

pub use streaming_aggregate::{
    DerivedWindowEnd, SESSION_START_METADATA, StreamingAggregateNode, WINDOW_END_METADATA,
    WINDOW_METADATA,
};
