//! Logical extension nodes of streaming operators. The engine maps each to its physical
//! `…Exec` in one place (`weir::physical::planner`).

mod operator;
mod streaming_aggregate;

pub use operator::{OutputModes, StreamingOperator, streaming_operators};

pub(crate) use streaming_aggregate::unaliased;
pub use streaming_aggregate::{
    DerivedWindowEnd, HopPanes, StreamingAggregateNode, WINDOW_STARTS_COLUMN,
};
