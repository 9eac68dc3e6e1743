//! `count(DISTINCT x)` in a streaming aggregation, counted from the `(group, x)` pairs seen so
//! far: the pairs kept across batches ([`PairSet`], in tables of its own and persisted as
//! parts of the aggregate's state), the numbering of groups they share ([`GroupNumbers`]),
//! and the operator that flags a batch's new pairs ([`DistinctFlagsExec`]).

mod flags;
mod group_numbers;
mod pair_set;
mod pair_slots;
mod pair_table;

use std::sync::Arc;

pub(crate) use flags::{DistinctCounts, DistinctFlagsExec, GROUP_NUMBER, count_distinct_by_pairs};
pub(crate) use group_numbers::GroupNumbers;
pub(crate) use pair_set::PairSet;

use crate::error::Result;
use crate::state::{QueryState, StatePart};

/// The pairs of the `count(DISTINCT)` aggregates of one value whose states are `ids`, parts
/// of operator `operator`'s state; made empty on first use. The pair sets of one operator
/// share its group numbers.
pub(crate) fn pair_set(state: &QueryState, operator: &str, ids: &[String]) -> Result<Arc<PairSet>> {
    let numbers = state.part(&format!("{operator}.group-numbers"), || {
        Ok(GroupNumbers::default())
    })?;
    let pairs = state.part(&format!("{operator}.pairs-of-{}", ids.join("+")), || {
        let members = ids.iter().map(|id| state.operator(id)).collect();
        Ok(Pairs {
            ids: ids.to_vec(),
            set: Arc::new(PairSet::new(members, numbers)?),
        })
    })?;
    Ok(Arc::clone(&pairs.set))
}

/// A [`PairSet`] as a part of its operator's state, holding its members' tables.
#[derive(Debug)]
struct Pairs {
    ids: Vec<String>,
    set: Arc<PairSet>,
}

impl StatePart for Pairs {
    fn size(&self) -> (u64, u64) {
        self.set.size()
    }

    fn tables(&self) -> &[String] {
        &self.ids
    }
}

impl StatePart for GroupNumbers {
    fn size(&self) -> (u64, u64) {
        (0, self.memory() as u64)
    }
}
