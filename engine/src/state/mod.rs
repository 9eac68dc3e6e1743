//! State of stateful operators between micro-batches.
//!
//! Each operator (by its stable id from the plan, e.g. `aggregate-0`) keeps its state as Arrow
//! record batches. A batch computes the operator's next state ([`OperatorState::stage`]);
//! after the sink's write the runner makes it durable as version N in the checkpoint
//! ([`QueryState::persist`]), then writes `commits/N`, then makes it the committed state
//! ([`QueryState::promote`]). On restart the state of the last committed batch is loaded, so
//! a re-run batch starts from exactly the state the interrupted attempt started from.
//!
//! Operators keep their state through one of two tables over their [`OperatorState`]: a
//! `KeyedTable` (one row per key: routing to partitions, get many, upserts and deletes into
//! the next state and its delta; the streaming aggregation's groups) or a `TimeKeyedTable`
//! (many rows per key, numbered, flagged and evicted through the watermark; joins,
//! deduplication, Top-N). A `count(DISTINCT)`'s pair sets live beside the aggregation and
//! write their own deltas (closing a whole group's pairs by key prefix).

mod delta;
mod keyed;
mod store;
mod time_keyed;

pub(crate) use delta::{delta_of, key_converter};
pub(crate) use keyed::{KeyedTable, Touched};
pub(crate) use store::compact;
pub use store::{OperatorState, QueryState, StagedPartition, StatePart};
pub(crate) use time_keyed::{
    Advanced, TIME_KEYED_PREFIX, TimeKeyedTable, matched_flags, user_columns,
};
