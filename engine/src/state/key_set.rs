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
use datafusion::common::HashSet;

use super::delta::{delta_of, key_converter, partition_of};
use super::store::{OperatorState, StagedPartition, compact};
use crate::error::{Result, WeirError};

/// Bytes a key costs in the hash set besides its encoding: the box and a table slot.
const KEY_OVERHEAD: usize = 24;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn arrow_error(e: arrow::error::ArrowError) -> WeirError {
    WeirError::Internal(format!("updating a key set: {e}"))
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
    keys: HashSet<Box<[u8]>>,
    /// The bytes of the keys' encodings.
    key_bytes: usize,
    /// The keys added by the batch in flight.
    added: Vec<RecordBatch>,
}

impl LivePartition {
    fn insert(&mut self, key: &[u8]) -> bool {
        let before = self.keys.len();
        self.keys.get_or_insert_with(key, |k| Box::from(k));
        let inserted = self.keys.len() > before;
        if inserted {
            self.key_bytes += key.len();
        }
        inserted
    }

    fn remove(&mut self, key: &[u8]) {
        if self.keys.remove(key) {
            self.key_bytes -= key.len();
        }
    }

    /// Makes the hash set hold exactly `committed`.
    fn rebuild(&mut self, converter: &RowConverter, committed: &[RecordBatch]) -> Result<()> {
        self.keys.clear();
        self.key_bytes = 0;
        self.added.clear();
        for batch in committed {
            let rows = converter
                .convert_columns(batch.columns())
                .map_err(arrow_error)?;
            self.keys.reserve(rows.num_rows());
            for row in rows.iter() {
                self.insert(row.data());
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
                    keys: HashSet::default(),
                    key_bytes: 0,
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
        let mut committed = None;
        for (index, partition) in self.partitions.iter().enumerate() {
            let mut live = lock(partition);
            if live.reflects != Reflects::Committed(generation) {
                let committed = committed.get_or_insert_with(|| self.state.committed());
                let converter = key_converter(schema, schema.fields().len())?;
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
        let mut by_partition: Vec<Vec<u32>> = vec![Vec::new(); self.partitions.len()];
        for (i, row) in rows.iter().enumerate() {
            if candidate.is_none_or(|c| c.is_valid(i) && c.value(i)) {
                by_partition[partition_of(row.data(), self.partitions.len())].push(i as u32);
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
        indices: Vec<u32>,
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
            .filter(|i| live.insert(rows.row(*i as usize).data()))
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
    /// added, the keys removed) are staged. Returns how many keys were removed.
    pub fn stage(
        &self,
        schema: &SchemaRef,
        split: impl Fn(&RecordBatch) -> Result<(RecordBatch, RecordBatch)>,
    ) -> Result<u64> {
        let generation = self.state.generation();
        let committed = self.state.committed();
        let converter = key_converter(schema, schema.fields().len())?;
        let mut staged = Vec::with_capacity(self.partitions.len());
        let mut removed = 0;
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
            if closed.num_rows() > 0 {
                let rows = converter
                    .convert_columns(closed.columns())
                    .map_err(arrow_error)?;
                for row in rows.iter() {
                    live.remove(row.data());
                }
                removed += closed.num_rows() as u64;
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
        Ok(removed)
    }

    /// Rows and bytes of the committed keys, including their hash sets.
    pub fn size(&self) -> (u64, u64) {
        let (rows, bytes) = self.state.size();
        let index: usize = self
            .partitions
            .iter()
            .map(|p| {
                let live = lock(p);
                live.key_bytes + live.keys.capacity() * KEY_OVERHEAD
            })
            .sum();
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
