//! State of stateful operators between micro-batches.
//!
//! Each operator (by its stable id from the plan, e.g. `aggregate-0`) keeps its state as Arrow
//! record batches. A batch computes the operator's next state ([`OperatorState::stage`]);
//! after the sink's write the runner makes it durable as version N in the checkpoint
//! ([`QueryState::persist`]), then writes `commits/N`, then makes it the committed state
//! ([`QueryState::promote`]). On restart the state of the last committed batch is loaded, so
//! a re-run batch starts from exactly the state the interrupted attempt started from.

mod delta;
mod store;
mod time_keyed;

pub(crate) use delta::{delta_of, diff, key_converter, split_by_key};
pub(crate) use store::compact;
pub use store::{OperatorState, QueryState, StagedPartition, StatePart};
pub(crate) use time_keyed::{
    Advanced, TIME_KEYED_PREFIX, TimeKeyedTable, matched_flags, user_columns,
};
