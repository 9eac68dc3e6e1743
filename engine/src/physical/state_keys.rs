//! State rows by key, for the operators that look their state up by key (a join's sides,
//! deduplication): [`BatchKeys`], a hash index of one batch of rows by their key (its `arrow`
//! row encoding), and [`StateKeys`], the indexes of an operator's state batches kept between
//! micro-batches.
//!
//! A batch looks its few new rows up in the state, one hash lookup per new row and state
//! batch, rather than encoding and scanning every state row each time: a state batch
//! that does not change (the store leaves untouched batches as they are) keeps its index, and
//! only batches the store rebuilt (rows evicted, a compaction) are indexed again. A batch is
//! known by its row-id column's buffer (address and length), which a changed batch never
//! shares with the batch it replaces while both are alive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{and, is_not_null};
use arrow::datatypes::UInt64Type;
use arrow::row::{RowConverter, Rows};
use datafusion::error::Result;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry;

use crate::physical::row_hash::stable_hash;
use crate::state::StatePart;

/// End of a chain of rows with one key.
const END: u32 = u32::MAX;

/// One batch's rows by join key (rows with a null key match nothing and are left out).
#[derive(Debug)]
pub(crate) struct BatchKeys {
    keys: Rows,
    valid: Option<BooleanArray>,
    /// The first row of each key.
    heads: HashTable<u32>,
    /// The next row with the same key, or [`END`].
    next: Vec<u32>,
}

impl BatchKeys {
    /// The index of rows whose keys are `keys` (arrays computed from them); a row with a null
    /// key is left out (it matches nothing, as in a join).
    pub(crate) fn build(converter: &RowConverter, keys: &[ArrayRef]) -> Result<Self> {
        Self::build_with(converter, keys, false)
    }

    /// As [`build`](Self::build), with null keys equal to each other (as `DISTINCT` and
    /// `PARTITION BY` have them).
    pub(crate) fn build_nulls_equal(converter: &RowConverter, keys: &[ArrayRef]) -> Result<Self> {
        Self::build_with(converter, keys, true)
    }

    fn build_with(converter: &RowConverter, keys: &[ArrayRef], nulls_equal: bool) -> Result<Self> {
        let mut valid: Option<BooleanArray> = None;
        for key in keys.iter().filter(|_| !nulls_equal) {
            if key.null_count() > 0 {
                let present = is_not_null(key)?;
                valid = Some(match valid {
                    Some(v) => and(&v, &present)?,
                    None => present,
                });
            }
        }
        let keys = converter.convert_columns(keys)?;
        let rows = keys.num_rows();
        let mut heads: HashTable<u32> = HashTable::with_capacity(rows);
        let mut next = vec![END; rows];
        let has_key = |i: usize| valid.as_ref().is_none_or(|v| v.value(i));
        for (i, chained) in next.iter_mut().enumerate() {
            if !has_key(i) {
                continue;
            }
            let key = keys.row(i).data();
            let same = |&head: &u32| keys.row(head as usize).data() == key;
            let rehash = |&head: &u32| stable_hash(keys.row(head as usize).data());
            match heads.entry(stable_hash(key), same, rehash) {
                Entry::Occupied(mut head) => {
                    *chained = *head.get();
                    *head.get_mut() = i as u32;
                }
                Entry::Vacant(slot) => {
                    slot.insert(i as u32);
                }
            }
        }
        Ok(Self {
            keys,
            valid,
            heads,
            next,
        })
    }

    /// The number of rows indexed.
    pub(crate) fn rows(&self) -> usize {
        self.next.len()
    }

    /// The key of row `i` in row format, or `None` for a null key.
    pub(crate) fn key(&self, i: usize) -> Option<&[u8]> {
        self.valid
            .as_ref()
            .is_none_or(|v| v.value(i))
            .then(|| self.keys.row(i).data())
    }

    /// The rows whose key is `key`.
    pub(crate) fn rows_of(&self, key: &[u8]) -> impl Iterator<Item = u32> + '_ {
        let same = |&head: &u32| self.keys.row(head as usize).data() == key;
        let head = self
            .heads
            .find(stable_hash(key), same)
            .copied()
            .unwrap_or(END);
        // `successors` asks for the next row as it yields one: none after the chain's end.
        std::iter::successors(Some(head), |&row| {
            (row != END).then(|| self.next[row as usize])
        })
        .take_while(|&row| row != END)
    }

    /// The pairs `(row of probe, row of self)` with equal keys.
    pub(crate) fn probe(&self, probe: &BatchKeys) -> (Vec<u32>, Vec<u32>) {
        let (mut probed, mut found) = (Vec::new(), Vec::new());
        if self.heads.is_empty() {
            return (probed, found);
        }
        for i in 0..probe.rows() {
            let Some(key) = probe.key(i) else { continue };
            for row in self.rows_of(key) {
                probed.push(i as u32);
                found.push(row);
            }
        }
        (probed, found)
    }

    fn bytes(&self) -> u64 {
        (self.keys.size() + self.next.len() * 4 + self.heads.capacity() * 5) as u64
    }
}

/// A stored batch's identity: its row-id column's buffer address and length.
type Identity = (usize, usize);

fn identity(stored: &RecordBatch) -> Identity {
    let ids = stored.column(0).as_primitive::<UInt64Type>();
    (ids.values().as_ptr() as usize, ids.len())
}

/// The indexes of one side's state batches, kept between micro-batches (a [`StatePart`] of
/// the join: its bytes count in the join's state).
#[derive(Debug, Default)]
pub(crate) struct StateKeys {
    /// Each index with its batch's row ids, held so that their buffer's address is not reused
    /// by another batch while the index is kept.
    batches: Mutex<HashMap<Identity, (ArrayRef, Arc<BatchKeys>)>>,
}

impl StateKeys {
    /// The index of `stored`, built by `build` unless it is kept already.
    pub(crate) fn of(
        &self,
        stored: &RecordBatch,
        build: impl FnOnce() -> Result<BatchKeys>,
    ) -> Result<Arc<BatchKeys>> {
        let id = identity(stored);
        if let Some((_, found)) = self.lock().get(&id) {
            return Ok(Arc::clone(found));
        }
        let built = Arc::new(build()?);
        let ids = Arc::clone(stored.column(0));
        self.lock().insert(id, (ids, Arc::clone(&built)));
        Ok(built)
    }

    /// Forgets the indexes of batches no longer in `state`.
    pub(crate) fn keep_only<'a>(&self, state: impl Iterator<Item = &'a RecordBatch>) {
        let alive: std::collections::HashSet<Identity> = state.map(identity).collect();
        self.lock().retain(|id, _| alive.contains(id));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Identity, (ArrayRef, Arc<BatchKeys>)>> {
        self.batches.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StatePart for StateKeys {
    /// No rows of its own (they are the side's); the bytes of its indexes.
    fn size(&self) -> (u64, u64) {
        (0, self.lock().values().map(|(_, k)| k.bytes()).sum())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::array::Int64Array;
    use arrow::datatypes::DataType;
    use arrow::row::SortField;

    use super::*;

    fn converter() -> RowConverter {
        RowConverter::new(vec![SortField::new(DataType::Int64)]).unwrap()
    }

    fn keys(values: Vec<Option<i64>>) -> Vec<ArrayRef> {
        vec![Arc::new(Int64Array::from(values))]
    }

    #[test]
    fn rows_are_found_by_key_all_of_them_and_null_keys_only_when_nulls_are_equal() {
        let index = BatchKeys::build(
            &converter(),
            &keys(vec![Some(1), Some(2), Some(1), None, Some(1)]),
        )
        .unwrap();
        let probe =
            BatchKeys::build(&converter(), &keys(vec![Some(1), None, Some(3), Some(2)])).unwrap();
        let (probed, found) = index.probe(&probe);
        let mut pairs: Vec<(u32, u32)> = probed.into_iter().zip(found).collect();
        pairs.sort_unstable();
        assert_eq!(pairs, [(0, 0), (0, 2), (0, 4), (3, 1)]);

        let with_nulls =
            BatchKeys::build_nulls_equal(&converter(), &keys(vec![None, Some(5), None])).unwrap();
        let null_key = with_nulls.key(0).unwrap().to_vec();
        let mut rows: Vec<u32> = with_nulls.rows_of(&null_key).collect();
        rows.sort_unstable();
        assert_eq!(rows, [0, 2]);
        assert_eq!(index.rows_of(&null_key).count(), 0);
    }
}
