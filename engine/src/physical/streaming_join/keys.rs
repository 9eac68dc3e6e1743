//! The join's rows by key: [`BatchKeys`], a hash index of one batch of rows by their join key
//! (its `arrow` row encoding), and [`StateKeys`], the indexes of a side's state batches kept
//! between micro-batches.
//!
//! A batch probes the other side's state with its few new rows, one hash lookup per new row and
//! state batch, rather than encoding and scanning every state row each time: a state batch
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
pub(super) struct BatchKeys {
    keys: Rows,
    valid: Option<BooleanArray>,
    /// The first row of each key.
    heads: HashTable<u32>,
    /// The next row with the same key, or [`END`].
    next: Vec<u32>,
}

impl BatchKeys {
    /// The index of rows whose keys are `keys` (arrays computed from them).
    pub(super) fn build(converter: &RowConverter, keys: &[ArrayRef]) -> Result<Self> {
        let mut valid: Option<BooleanArray> = None;
        for key in keys {
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
    pub(super) fn rows(&self) -> usize {
        self.next.len()
    }

    /// The pairs `(row of probe, row of self)` with equal keys.
    pub(super) fn probe(&self, probe: &BatchKeys) -> (Vec<u32>, Vec<u32>) {
        let (mut probed, mut found) = (Vec::new(), Vec::new());
        if self.heads.is_empty() {
            return (probed, found);
        }
        for i in 0..probe.rows() {
            if !probe.valid.as_ref().is_none_or(|v| v.value(i)) {
                continue;
            }
            let key = probe.keys.row(i).data();
            let same = |&head: &u32| self.keys.row(head as usize).data() == key;
            let Some(&head) = self.heads.find(stable_hash(key), same) else {
                continue;
            };
            let mut row = head;
            while row != END {
                probed.push(i as u32);
                found.push(row);
                row = self.next[row as usize];
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
pub(super) struct StateKeys {
    /// Each index with its batch's row ids, held so that their buffer's address is not reused
    /// by another batch while the index is kept.
    batches: Mutex<HashMap<Identity, (ArrayRef, Arc<BatchKeys>)>>,
}

impl StateKeys {
    /// The index of `stored`, built by `build` unless it is kept already.
    pub(super) fn of(
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
    pub(super) fn keep_only<'a>(&self, state: impl Iterator<Item = &'a RecordBatch>) {
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
