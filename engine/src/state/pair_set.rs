//! [`PairSet`]: the `(group, value)` pairs a `count(DISTINCT value)` has counted, kept
//! across batches. A batch asks which of its pairs are new; only those go into the batch's
//! delta, so a batch's work grows with its own rows, not with the pairs counted so far.
//!
//! The pairs are kept twice:
//! - as Arrow record batches in an [`OperatorState`] whose columns are the group keys and the
//!   value, all of them key columns, so they are persisted (a delta per batch, with the pairs
//!   added and removed), snapshotted and loaded like any operator's state;
//! - in memory, per state partition, in a [`PairTable`] for probing (see `pair_table.rs`),
//!   with the groups numbered by the aggregation's [`GroupNumbers`].
//!
//! Pairs leave the set a group at a time, when the group's window closes: a batch's `stage`
//! is told which groups closed, and only then touches the pairs kept.
//!
//! The tables change as a batch runs. A batch starts with [`PairSet::begin`], which rebuilds
//! them from the committed pairs when they do not reflect those (after a restart, or when the
//! previous batch failed before it committed), and ends with [`PairSet::stage`].

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use arrow::array::{ArrayRef, BooleanBufferBuilder, RecordBatch, UInt32Array};
use arrow::buffer::BooleanBuffer;
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef};

use super::delta::{delta_of, key_converter};
use super::group_numbers::{BatchGroups, ClosedGroups, GroupNumbers};
use super::pair_table::{BatchScratch, PairHashes, PairTable, ValueKeys};
use super::store::{OperatorState, StagedPartition, compact};
use crate::error::{Result, WeirError};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn arrow_error(e: arrow::error::ArrowError) -> WeirError {
    WeirError::Internal(format!("updating distinct pairs: {e}"))
}

/// What the tables hold.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reflects {
    /// Nothing known: rebuild before use.
    Unknown,
    /// Exactly the committed pairs of this generation of the state.
    Committed(u64),
    /// The committed pairs plus the pairs of a batch in flight.
    InFlight,
}

#[derive(Debug)]
struct LivePartition {
    pairs: PairTable,
    /// The pairs added by the batch in flight.
    added: Vec<RecordBatch>,
}

/// The pairs of one `count(DISTINCT)`; see the module docs.
#[derive(Debug)]
pub struct PairSet {
    state: Arc<OperatorState>,
    reflects: Mutex<Reflects>,
    /// The numbers of the groups, shared with the aggregation's other pair sets.
    numbers: Arc<GroupNumbers>,
    partitions: Vec<Mutex<LivePartition>>,
}

impl PairSet {
    pub(crate) fn new(state: Arc<OperatorState>, numbers: Arc<GroupNumbers>) -> Self {
        let partitions = (0..state.partitions())
            .map(|_| {
                Mutex::new(LivePartition {
                    pairs: PairTable::new(&DataType::Null),
                    added: Vec::new(),
                })
            })
            .collect();
        Self {
            state,
            reflects: Mutex::new(Reflects::Unknown),
            numbers,
            partitions,
        }
    }

    /// Starts a batch over pairs of `schema` (the group keys, then the value): the tables are
    /// made to hold the committed pairs.
    pub fn begin(&self, schema: &SchemaRef) -> Result<()> {
        let mut reflects = lock(&self.reflects);
        if *reflects != Reflects::Committed(self.state.generation()) {
            self.rebuild(schema)?;
        }
        for partition in &self.partitions {
            lock(partition).added.clear();
        }
        *reflects = Reflects::InFlight;
        Ok(())
    }

    /// Makes the tables hold exactly the committed pairs.
    fn rebuild(&self, schema: &SchemaRef) -> Result<()> {
        let value_column = schema.fields().len() - 1;
        let value_type = schema.field(value_column).data_type();
        let converter = key_converter(schema, value_column)?;
        let mut tables: Vec<PairTable> = (0..self.partitions.len())
            .map(|_| PairTable::new(value_type))
            .collect();
        let mut scratch = Vec::new();
        for batch in self.state.committed().iter().flatten() {
            let columns = batch.columns()[..value_column].to_vec();
            let groups = self.numbers.number(&converter, columns, batch.num_rows())?;
            let values = ValueKeys::new(batch.column(value_column))?;
            for (i, group) in groups.of_row.iter().enumerate() {
                let value_hash = values.hash(i);
                let partition = PairHashes::partition(group.hash, value_hash, tables.len());
                tables[partition].insert(group.number, &values, i, value_hash, &mut scratch)?;
            }
        }
        for (partition, table) in self.partitions.iter().zip(tables) {
            lock(partition).pairs = table;
        }
        Ok(())
    }

    /// The numbers of the groups the pairs refer to.
    pub fn numbers(&self) -> &Arc<GroupNumbers> {
        &self.numbers
    }

    /// Adds the pairs of `groups` and `values` of the rows for which `candidate` is true, and
    /// says, per row, whether its pair was new: not in the set before, and not an earlier
    /// row's. `schema` is the pairs' schema. Safe to call from several tasks at once within
    /// one batch.
    pub fn insert(
        &self,
        schema: &SchemaRef,
        groups: &BatchGroups,
        values: &ArrayRef,
        candidate: &BooleanBuffer,
    ) -> Result<BooleanBuffer> {
        if *lock(&self.reflects) != Reflects::InFlight {
            return Err(WeirError::Internal(
                "pairs were added to a distinct count outside a batch".to_string(),
            ));
        }
        let keys = ValueKeys::new(values)?;
        let partitions = self.partitions.len();
        let share = candidate.count_set_bits() / partitions + 64;
        let mut by_partition: Vec<Vec<(u32, u64)>> =
            (0..partitions).map(|_| Vec::with_capacity(share)).collect();
        for i in candidate.set_indices() {
            let value_hash = keys.hash(i);
            let group = groups.of_row[i];
            let partition = PairHashes::partition(group.hash, value_hash, partitions);
            by_partition[partition].push((i as u32, value_hash));
        }
        let mut pair_columns = groups.columns.clone();
        pair_columns.push(Arc::clone(values));
        let pairs = RecordBatch::try_new(Arc::clone(schema), pair_columns).map_err(arrow_error)?;
        let mut new = BooleanBufferBuilder::new(groups.of_row.len());
        new.append_n(groups.of_row.len(), false);
        let mut scratch = BatchScratch::default();
        let mut insert_into = |live: &mut LivePartition, rows: &[(u32, u64)]| -> Result<()> {
            let mut added = Vec::new();
            live.pairs
                .insert_rows(rows, &groups.of_row, &keys, &mut scratch, |i| {
                    new.set_bit(i as usize, true);
                    added.push(i);
                })?;
            if !added.is_empty() {
                let added =
                    take_record_batch(&pairs, &UInt32Array::from(added)).map_err(arrow_error)?;
                live.added.push(added);
            }
            Ok(())
        };
        // The partitions no other task holds first, then the others, waiting for each: tasks
        // that all went in partition order would queue behind each other at every one.
        let mut busy = Vec::new();
        for (partition, rows) in self.partitions.iter().zip(by_partition) {
            if rows.is_empty() {
                continue;
            }
            match partition.try_lock() {
                Ok(mut live) => insert_into(&mut live, &rows)?,
                Err(TryLockError::Poisoned(poisoned)) => {
                    insert_into(&mut poisoned.into_inner(), &rows)?
                }
                Err(TryLockError::WouldBlock) => busy.push((partition, rows)),
            }
        }
        for (partition, rows) in busy {
            insert_into(&mut lock(partition), &rows)?;
        }
        Ok(new.finish())
    }

    /// Ends the batch: the groups in `closed` leave the set with their pairs, and each
    /// partition's state and delta are staged. The delta holds the pairs added and a delete
    /// row per closed group, which removes all its pairs (see `delta.rs`). `split` returns a
    /// batch's `(kept, closed)` pairs: those of the groups in `closed` (see
    /// [`GroupNumbers::close`]).
    pub fn stage(
        &self,
        schema: &SchemaRef,
        split: impl Fn(&RecordBatch) -> Result<(RecordBatch, RecordBatch)>,
        closed: &ClosedGroups,
    ) -> Result<()> {
        let generation = self.state.generation();
        let mut reflects = lock(&self.reflects);
        let value_type = schema.field(schema.fields().len() - 1).data_type();
        let group_columns = schema.fields().len() - 1;
        // The pairs of a group that closed in this very batch are neither kept nor written.
        let deletes = closed.as_pairs(schema)?;
        let mut staged = Vec::with_capacity(self.partitions.len());
        for (partition, old) in self.partitions.iter().zip(self.state.committed()) {
            let mut live = lock(partition);
            let mut added =
                concat_batches(schema, &std::mem::take(&mut live.added)).map_err(arrow_error)?;
            let mut kept = old;
            if !closed.is_empty() {
                live.pairs.remove_groups(&closed.numbers);
                if live.pairs.len() == 0 {
                    live.pairs = PairTable::new(value_type);
                }
                added = split(&added)?.0;
                let mut open = Vec::with_capacity(kept.len() + 1);
                for batch in kept {
                    let still_open = split(&batch)?.0;
                    open.extend((still_open.num_rows() > 0).then_some(still_open));
                }
                kept = open;
            }
            kept.extend((added.num_rows() > 0).then(|| added.clone()));
            staged.push(StagedPartition {
                state: compact(schema, kept).map_err(arrow_error)?,
                delta: delta_of(schema, added, deletes.clone())?,
            });
        }
        self.state.stage_deleting_by_prefix(
            Arc::clone(schema),
            schema.fields().len(),
            group_columns,
            staged,
        );
        // Promoting the staged state makes it the next generation.
        *reflects = Reflects::Committed(generation + 1);
        Ok(())
    }

    /// Rows and bytes of the committed pairs, including their tables (not the group numbers,
    /// which the aggregation's pair sets share).
    pub fn size(&self) -> (u64, u64) {
        let (rows, bytes) = self.state.size();
        let tables: usize = self.partitions.iter().map(|p| lock(p).pairs.memory()).sum();
        (rows, bytes + tables as u64)
    }

    /// The pairs in the tables (committed and in flight).
    #[cfg(test)]
    fn pairs_in_tables(&self) -> usize {
        self.partitions.iter().map(|p| lock(p).pairs.len()).sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::array::{BooleanArray, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use weir_connectors::{BatchId, StoreLocation};

    use super::*;
    use crate::state::QueryState;

    fn schema(value: DataType) -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("g", DataType::Utf8, true),
            Field::new("v", value, true),
        ]))
    }

    /// Inserts the pairs of `groups` and `values`, row by row, into `set`; which were new.
    fn insert(set: &PairSet, schema: &SchemaRef, groups: &[&str], values: ArrayRef) -> Vec<bool> {
        let converter = key_converter(schema, 1).unwrap();
        let columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(groups.to_vec()))];
        let groups = set
            .numbers()
            .number(&converter, columns, values.len())
            .unwrap();
        let candidate = BooleanBuffer::new_set(values.len());
        let new = set.insert(schema, &groups, &values, &candidate).unwrap();
        new.iter().collect()
    }

    fn ints(values: &[i64]) -> ArrayRef {
        Arc::new(Int64Array::from(values.to_vec()))
    }

    fn keep_all(batch: &RecordBatch) -> Result<(RecordBatch, RecordBatch)> {
        Ok((batch.clone(), batch.slice(0, 0)))
    }

    /// Closes group "closed" (and nothing else).
    fn close_group_named_closed(batch: &RecordBatch) -> Result<(RecordBatch, RecordBatch)> {
        let names = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        let open: BooleanArray = names.iter().map(|n| Some(n != Some("closed"))).collect();
        let closed = arrow::compute::not(&open).unwrap();
        Ok((
            arrow::compute::filter_record_batch(batch, &open).unwrap(),
            arrow::compute::filter_record_batch(batch, &closed).unwrap(),
        ))
    }

    #[tokio::test]
    async fn a_pair_is_new_once_across_batches_a_failed_batch_and_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let location = || StoreLocation::parse(&dir.path().to_string_lossy(), true).unwrap();
        let state = QueryState::new(location(), 3);
        let set = state.pair_set("op", "op.distinct-0");
        let schema = schema(DataType::Int64);

        // Batch 0: repeated pairs within the batch are new once; a non-candidate is not added.
        set.begin(&schema).unwrap();
        let converter = key_converter(&schema, 1).unwrap();
        let columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec!["a", "a", "b", "c"]))];
        let groups = set.numbers().number(&converter, columns, 4).unwrap();
        let candidate = BooleanBuffer::from(vec![true, true, true, false]);
        let first = set
            .insert(&schema, &groups, &ints(&[1, 1, 1, 1]), &candidate)
            .unwrap();
        assert_eq!(first.iter().collect::<Vec<_>>(), [true, false, true, false]);
        set.stage(&schema, keep_all, &ClosedGroups::none(&schema))
            .unwrap();
        state.persist(BatchId(0)).await.unwrap();
        state.promote();

        // Batch 1 adds ("c", 1) but fails before it commits: the next batch must not see it.
        set.begin(&schema).unwrap();
        assert_eq!(
            insert(&set, &schema, &["c", "a"], ints(&[1, 1])),
            [true, false]
        );
        set.begin(&schema).unwrap();
        let first = insert(&set, &schema, &["c", "a", "a"], ints(&[1, 1, 2]));
        assert_eq!(first, [true, false, true]);
        set.stage(&schema, keep_all, &ClosedGroups::none(&schema))
            .unwrap();
        state.persist(BatchId(1)).await.unwrap();
        state.promote();
        assert_eq!(set.size().0, 4);

        // A restart loads the pairs of both committed batches from their deltas.
        let restarted = QueryState::new(location(), 3);
        restarted
            .load(&["op.distinct-0".to_string()], Some(BatchId(1)))
            .await
            .unwrap();
        let set = restarted.pair_set("op", "op.distinct-0");
        set.begin(&schema).unwrap();
        let first = insert(
            &set,
            &schema,
            &["a", "b", "c", "a", "d"],
            ints(&[1, 1, 1, 2, 1]),
        );
        assert_eq!(first, [false, false, false, false, true]);
    }

    /// A closed group's pairs leave the sets (and the state) with it, the other groups' stay;
    /// the group is found closed once, for both sets of the operator.
    async fn closing_a_group_forgets_its_pairs_only(values: impl Fn(&[i64]) -> ArrayRef) {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::parse(&dir.path().to_string_lossy(), true).unwrap();
        let state = QueryState::new(location, 2);
        let sets = [
            state.pair_set("op", "op.distinct-0"),
            state.pair_set("op", "op.distinct-1"),
        ];
        let schema = schema(values(&[]).data_type().clone());
        let groups = ["open", "closed", "open", "closed", "closed"];

        for set in &sets {
            set.begin(&schema).unwrap();
            let first = insert(set, &schema, &groups, values(&[1, 1, 2, 2, 3]));
            assert_eq!(first, [true; 5]);
            set.stage(&schema, keep_all, &ClosedGroups::none(&schema))
                .unwrap();
        }
        state.persist(BatchId(0)).await.unwrap();
        state.promote();
        assert_eq!(sets[1].size().0, 5);

        for set in &sets {
            set.begin(&schema).unwrap();
            assert_eq!(insert(set, &schema, &["open"], values(&[3])), [true]);
        }
        let closed = sets[0]
            .numbers()
            .close(&schema, &close_group_named_closed)
            .unwrap();
        assert_eq!(closed.len(), 1);
        for set in &sets {
            set.stage(&schema, close_group_named_closed, &closed)
                .unwrap();
        }
        state.persist(BatchId(1)).await.unwrap();
        state.promote();
        for set in &sets {
            assert_eq!(set.size().0, 3, "open's 1, 2 and 3 are kept");
            assert_eq!(set.pairs_in_tables(), 3);
            set.begin(&schema).unwrap();
            let first = insert(set, &schema, &groups, values(&[1, 1, 2, 2, 4]));
            assert_eq!(first, [false, true, false, true, true]);
        }

        // Batch 1's deltas remove the closed group by one row each, not one per pair; a
        // restart replays them to the same pairs.
        for id in ["op.distinct-0", "op.distinct-1"] {
            let (mut upserts, mut deletes) = (0, 0);
            for partition in 0..2 {
                let path = dir
                    .path()
                    .join(id)
                    .join(partition.to_string())
                    .join("1.delta");
                let file = std::fs::File::open(path).unwrap();
                let reader = arrow::ipc::reader::FileReader::try_new(file, None).unwrap();
                assert_eq!(reader.schema().metadata()["weir.delete_prefix"], "1");
                for batch in reader {
                    let batch = batch.unwrap();
                    let delete = batch.column(2).as_any().downcast_ref::<BooleanArray>();
                    let delete = delete.unwrap();
                    deletes += delete.true_count();
                    upserts += delete.false_count();
                }
            }
            assert_eq!(
                (upserts, deletes),
                (1, 2),
                "open's 3; closed, in each partition"
            );
        }
        let location = StoreLocation::parse(&dir.path().to_string_lossy(), true).unwrap();
        let restarted = QueryState::new(location, 2);
        let ids = ["op.distinct-0".to_string(), "op.distinct-1".to_string()];
        restarted.load(&ids, Some(BatchId(1))).await.unwrap();
        for id in &ids {
            let set = restarted.pair_set("op", id);
            set.begin(&schema).unwrap();
            let first = insert(&set, &schema, &groups, values(&[1, 1, 2, 2, 4]));
            assert_eq!(
                first,
                [false, true, false, true, true],
                "{id} after a restart"
            );
        }
    }

    #[tokio::test]
    async fn closing_a_group_forgets_its_pairs_only_with_values_kept_as_bits() {
        closing_a_group_forgets_its_pairs_only(ints).await;
    }

    #[tokio::test]
    async fn closing_a_group_forgets_its_pairs_only_with_encoded_values() {
        closing_a_group_forgets_its_pairs_only(|values| {
            let strings: Vec<String> = values.iter().map(|v| format!("value {v}")).collect();
            Arc::new(StringArray::from(strings)) as ArrayRef
        })
        .await;
    }
}
