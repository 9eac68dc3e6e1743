//! [`KeySet`]: state that is a set of keys, such as the `(group, value)` pairs behind a
//! `count(DISTINCT value)`. A batch asks which of its keys are new; only those go into the
//! batch's delta, so a batch's work grows with its own rows, not with the set.
//!
//! The keys are kept twice:
//! - as Arrow record batches in an [`OperatorState`] whose columns are all key columns, so
//!   they are persisted (a delta per batch, with the keys added and removed), snapshotted
//!   and loaded like any operator's state;
//! - in memory, per state partition, as a hash set of their row encodings, for probing.
//!
//! The hash sets change as a batch runs. A batch starts with [`KeySet::begin`], which
//! rebuilds a partition's hash set from the committed batches when it does not reflect them
//! (after a restart, or when the previous batch failed before it committed), and ends with
//! [`KeySet::stage`]. A key's partition is a stable hash of its row encoding.

use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::{Array, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::row::{RowConverter, Rows};
use hashbrown::HashTable;

use super::delta::{delta_of, key_converter};
use super::store::{OperatorState, StagedPartition, compact};
use crate::error::{Result, WeirError};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn arrow_error(e: arrow::error::ArrowError) -> WeirError {
    WeirError::Internal(format!("updating a key set: {e}"))
}

/// A hash of a key's row encoding that is the same in every process and release (a key's
/// partition follows from it), read 8 bytes at a time.
fn stable_hash(key: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut chunks = key.chunks_exact(8);
    let mut hash = (key.len() as u64).wrapping_mul(K);
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        hash = (hash ^ u64::from_le_bytes(word))
            .wrapping_mul(K)
            .rotate_left(31);
    }
    let mut tail = [0; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    hash = (hash ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    // Murmur3's finalizer, so every bit of the key moves the high and the low bits.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

/// The partition of a key with hash `hash`, out of `partitions`: from a remix of the hash, so
/// that the keys of one partition still spread over its hash table.
fn partition_of(hash: u64, partitions: usize) -> usize {
    let remixed = (hash ^ 0x5851_f42d_4c95_7f2d).wrapping_mul(0x2545_f491_4f6c_dd1d);
    (((remixed >> 32) * partitions as u64) >> 32) as usize
}

/// Row-encoded keys, one after the other in one buffer, found through a hash table of their
/// positions: no allocation per key.
#[derive(Debug, Default)]
struct RowSet {
    table: HashTable<u32>,
    bytes: Vec<u8>,
    /// Key `i` is `bytes[ends[i - 1]..ends[i]]` (from 0 for the first).
    ends: Vec<usize>,
    /// Key `i`'s hash, so growing the table does not hash the keys again.
    hashes: Vec<u64>,
    /// Bytes of removed keys, still in `bytes` until the next compaction.
    removed_bytes: usize,
}

impl RowSet {
    fn key<'a>(bytes: &'a [u8], ends: &[usize], i: u32) -> &'a [u8] {
        let i = i as usize;
        let start = if i == 0 { 0 } else { ends[i - 1] };
        &bytes[start..ends[i]]
    }

    /// Adds `key` (with hash `hash`); whether it was not there.
    fn insert(&mut self, hash: u64, key: &[u8]) -> bool {
        let Self {
            table,
            bytes,
            ends,
            hashes,
            ..
        } = self;
        if table
            .find(hash, |i| Self::key(bytes, ends, *i) == key)
            .is_some()
        {
            return false;
        }
        let index = ends.len() as u32;
        bytes.extend_from_slice(key);
        ends.push(bytes.len());
        hashes.push(hash);
        table.insert_unique(hash, index, |i| hashes[*i as usize]);
        true
    }

    fn remove(&mut self, hash: u64, key: &[u8]) {
        let Self {
            table, bytes, ends, ..
        } = self;
        if let Ok(entry) = table.find_entry(hash, |i| Self::key(bytes, ends, *i) == key) {
            entry.remove();
            self.removed_bytes += key.len();
        }
    }

    /// Drops the bytes of removed keys once they are more than the keys kept.
    fn compact_if_sparse(&mut self) {
        if self.removed_bytes <= self.bytes.len() / 2 {
            return;
        }
        let mut kept = Self {
            table: HashTable::with_capacity(self.table.len()),
            ..Self::default()
        };
        for i in self.table.iter() {
            let key = Self::key(&self.bytes, &self.ends, *i);
            kept.insert(self.hashes[*i as usize], key);
        }
        *self = kept;
    }

    /// Bytes held, including the table's slots.
    fn memory(&self) -> usize {
        self.bytes.capacity()
            + (self.ends.capacity() + self.hashes.capacity()) * std::mem::size_of::<u64>()
            + self.table.capacity() * (std::mem::size_of::<u32>() + 1)
    }
}

/// A set of keys kept across batches; see the module docs.
#[derive(Debug)]
pub struct KeySet {
    state: Arc<OperatorState>,
    partitions: Vec<Mutex<LivePartition>>,
}

/// What a partition's hash set holds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reflects {
    /// Nothing known: rebuild before use.
    Unknown,
    /// Exactly the committed state of this generation.
    Committed(u64),
    /// The committed state plus the keys of a batch in flight.
    InFlight,
}

#[derive(Debug)]
struct LivePartition {
    reflects: Reflects,
    keys: RowSet,
    /// The keys added by the batch in flight.
    added: Vec<RecordBatch>,
}

impl LivePartition {
    /// Makes the hash set hold exactly `committed`.
    fn rebuild(&mut self, converter: &RowConverter, committed: &[RecordBatch]) -> Result<()> {
        self.keys = RowSet::default();
        self.added.clear();
        for batch in committed {
            let rows = converter
                .convert_columns(batch.columns())
                .map_err(arrow_error)?;
            for row in rows.iter() {
                self.keys.insert(stable_hash(row.data()), row.data());
            }
        }
        Ok(())
    }
}

impl KeySet {
    pub(crate) fn new(state: Arc<OperatorState>) -> Self {
        let partitions = (0..state.partitions())
            .map(|_| {
                Mutex::new(LivePartition {
                    reflects: Reflects::Unknown,
                    keys: RowSet::default(),
                    added: Vec::new(),
                })
            })
            .collect();
        Self { state, partitions }
    }

    /// Starts a batch over keys of `schema`: each partition's hash set is made to hold the
    /// committed keys.
    pub fn begin(&self, schema: &SchemaRef) -> Result<()> {
        let generation = self.state.generation();
        let converter = key_converter(schema, schema.fields().len())?;
        let mut committed = None;
        for (index, partition) in self.partitions.iter().enumerate() {
            let mut live = lock(partition);
            if live.reflects != Reflects::Committed(generation) {
                let committed = committed.get_or_insert_with(|| self.state.committed());
                live.rebuild(&converter, &committed[index])?;
            }
            live.added.clear();
            live.reflects = Reflects::InFlight;
        }
        Ok(())
    }

    /// Adds the rows of `keys` for which `candidate` is true (all rows without it) and says,
    /// per row, whether it was new: not in the set before, and not an earlier row of `keys`.
    /// Safe to call from several tasks at once within one batch.
    pub fn insert(
        &self,
        keys: &RecordBatch,
        candidate: Option<&BooleanArray>,
    ) -> Result<Vec<bool>> {
        let schema = keys.schema();
        let converter = key_converter(&schema, schema.fields().len())?;
        let rows = converter
            .convert_columns(keys.columns())
            .map_err(arrow_error)?;
        let mut by_partition: Vec<Vec<(u32, u64)>> = vec![Vec::new(); self.partitions.len()];
        for (i, row) in rows.iter().enumerate() {
            if candidate.is_none_or(|c| c.is_valid(i) && c.value(i)) {
                let hash = stable_hash(row.data());
                by_partition[partition_of(hash, self.partitions.len())].push((i as u32, hash));
            }
        }
        let mut new = vec![false; keys.num_rows()];
        for (partition, indices) in self.partitions.iter().zip(by_partition) {
            if !indices.is_empty() {
                self.insert_into(partition, keys, &rows, indices, &mut new)?;
            }
        }
        Ok(new)
    }

    fn insert_into(
        &self,
        partition: &Mutex<LivePartition>,
        keys: &RecordBatch,
        rows: &Rows,
        indices: Vec<(u32, u64)>,
        new: &mut [bool],
    ) -> Result<()> {
        let mut live = lock(partition);
        if live.reflects != Reflects::InFlight {
            return Err(WeirError::Internal(
                "keys were added to a key set outside a batch".to_string(),
            ));
        }
        let added: Vec<u32> = indices
            .into_iter()
            .filter(|(i, hash)| live.keys.insert(*hash, rows.row(*i as usize).data()))
            .map(|(i, _)| i)
            .collect();
        for i in &added {
            new[*i as usize] = true;
        }
        if !added.is_empty() {
            let added = take_record_batch(keys, &UInt32Array::from(added)).map_err(arrow_error)?;
            live.added.push(added);
        }
        Ok(())
    }

    /// Ends the batch: the keys for which `split` says closed (it returns a batch's
    /// `(kept, closed)` rows) are removed, and each partition's state and delta (the keys
    /// added, the keys removed) are staged.
    pub fn stage(
        &self,
        schema: &SchemaRef,
        split: impl Fn(&RecordBatch) -> Result<(RecordBatch, RecordBatch)>,
    ) -> Result<()> {
        let generation = self.state.generation();
        let committed = self.state.committed();
        let converter = key_converter(schema, schema.fields().len())?;
        let mut staged = Vec::with_capacity(self.partitions.len());
        for (partition, old) in self.partitions.iter().zip(committed) {
            let mut live = lock(partition);
            let added =
                concat_batches(schema, &std::mem::take(&mut live.added)).map_err(arrow_error)?;
            let (added, added_closed) = split(&added)?;
            let mut kept = Vec::with_capacity(old.len() + 1);
            let mut closed = vec![added_closed];
            for batch in old {
                let (open, done) = split(&batch)?;
                kept.extend((open.num_rows() > 0).then_some(open));
                closed.extend((done.num_rows() > 0).then_some(done));
            }
            let closed = concat_batches(schema, &closed).map_err(arrow_error)?;
            if kept.is_empty() && added.num_rows() == 0 {
                live.keys = RowSet::default();
            } else if closed.num_rows() > 0 {
                let rows = converter
                    .convert_columns(closed.columns())
                    .map_err(arrow_error)?;
                for row in rows.iter() {
                    live.keys.remove(stable_hash(row.data()), row.data());
                }
                live.keys.compact_if_sparse();
            }
            kept.extend((added.num_rows() > 0).then(|| added.clone()));
            staged.push(StagedPartition {
                state: compact(schema, kept).map_err(arrow_error)?,
                delta: delta_of(schema, added, closed)?,
            });
            // Promoting the staged state makes it the next generation.
            live.reflects = Reflects::Committed(generation + 1);
        }
        self.state
            .stage(Arc::clone(schema), schema.fields().len(), staged);
        Ok(())
    }

    /// Rows and bytes of the committed keys, including their hash sets.
    pub fn size(&self) -> (u64, u64) {
        let (rows, bytes) = self.state.size();
        let index: usize = self.partitions.iter().map(|p| lock(p).keys.memory()).sum();
        (rows, bytes + index as u64)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use weir_connectors::{BatchId, StoreLocation};

    use super::*;
    use crate::state::QueryState;

    fn pairs(groups: &[&str], values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(groups.to_vec())),
                Arc::new(Int64Array::from(values.to_vec())),
            ],
        )
        .unwrap()
    }

    fn keep_all(batch: &RecordBatch) -> Result<(RecordBatch, RecordBatch)> {
        Ok((batch.clone(), batch.slice(0, 0)))
    }

    #[test]
    fn removed_keys_are_gone_and_the_others_stay_through_compaction() {
        let mut set = RowSet::default();
        let key = |i: u32| format!("key-{i}").into_bytes();
        for i in 0..100 {
            assert!(set.insert(stable_hash(&key(i)), &key(i)));
        }
        assert!(!set.insert(stable_hash(&key(7)), &key(7)));
        for i in 0..70 {
            set.remove(stable_hash(&key(i)), &key(i));
            set.compact_if_sparse();
        }
        assert!(set.removed_bytes < set.bytes.len(), "compacted once sparse");
        assert_eq!(set.table.len(), 30);
        for i in 0..100 {
            // A removed key is new again; a kept one is not.
            assert_eq!(set.insert(stable_hash(&key(i)), &key(i)), i < 70, "key {i}");
        }
    }

    #[tokio::test]
    async fn a_key_is_new_once_across_batches_a_failed_batch_and_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let location = || StoreLocation::parse(&dir.path().to_string_lossy(), true).unwrap();
        let state = QueryState::new(location(), 3);
        let set = state.key_set("op.distinct-0");
        let schema = pairs(&[], &[]).schema();

        // Batch 0: repeated keys within the batch are new once; a non-candidate is not added.
        set.begin(&schema).unwrap();
        let mask = BooleanArray::from(vec![true, true, true, false]);
        let first = set
            .insert(&pairs(&["a", "a", "b", "c"], &[1, 1, 1, 1]), Some(&mask))
            .unwrap();
        assert_eq!(first, [true, false, true, false]);
        set.stage(&schema, keep_all).unwrap();
        state.persist(BatchId(0)).await.unwrap();
        state.promote();

        // Batch 1 adds ("c", 1) but fails before it commits: the next batch must not see it.
        set.begin(&schema).unwrap();
        let first = set.insert(&pairs(&["c", "a"], &[1, 1]), None).unwrap();
        assert_eq!(first, [true, false]);
        set.begin(&schema).unwrap();
        let first = set
            .insert(&pairs(&["c", "a", "a"], &[1, 1, 2]), None)
            .unwrap();
        assert_eq!(first, [true, false, true]);
        set.stage(&schema, keep_all).unwrap();
        state.persist(BatchId(1)).await.unwrap();
        state.promote();
        assert_eq!(set.size().0, 4);

        // A restart loads the keys of both committed batches from their deltas.
        let restarted = QueryState::new(location(), 3);
        restarted
            .load(&["op.distinct-0".to_string()], Some(BatchId(1)))
            .await
            .unwrap();
        let set = restarted.key_set("op.distinct-0");
        set.begin(&schema).unwrap();
        let first = set
            .insert(&pairs(&["a", "b", "c", "a", "d"], &[1, 1, 1, 2, 1]), None)
            .unwrap();
        assert_eq!(first, [false, false, false, false, true]);
    }
}
