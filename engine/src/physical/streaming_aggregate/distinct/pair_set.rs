//! [`PairSet`]: the `(group, value)` pairs that the `count(DISTINCT value)` aggregates of
//! one `value` have counted, kept across batches. A batch asks which of its pairs are new to
//! which count; only those go into the batch's delta, so a batch's work grows with its own
//! rows, not with the pairs counted so far.
//!
//! The counts of one value (say `count(DISTINCT bidder)` and `count(DISTINCT bidder)
//! FILTER (WHERE price < 10000)`) are the set's members, at most
//! [`PairSet::MAX_MEMBERS`]. A row is probed once for all the members whose `FILTER` it
//! passes, and each pair in memory records which members counted it (as Flink shares one
//! distinct map among such aggregates).
//!
//! The pairs are kept twice:
//! - as Arrow record batches, in an [`OperatorState`] per member whose columns are the group
//!   keys and the value, all of them key columns, so they are persisted (a delta per batch,
//!   with the pairs added and removed), snapshotted and loaded like any operator's state;
//! - in memory, per state partition, in one [`PairTable`] for all the members (see
//!   `pair_table.rs`), with the groups numbered by the aggregation's [`GroupNumbers`].
//!
//! Pairs leave the set a group at a time, when the group's window closes: a batch's `stage`
//! is told which groups closed, and only then touches the pairs kept.
//!
//! The tables change as a batch runs. A batch starts with [`PairSet::begin`], which rebuilds
//! them from the committed pairs when they do not reflect those (after a restart, or when the
//! previous batch failed before it committed), and ends with [`PairSet::stage`], which stages
//! each state partition's pairs on a thread of its own.

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

use arrow::array::{ArrayRef, BooleanBufferBuilder, RecordBatch, UInt32Array};
use arrow::buffer::BooleanBuffer;
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef};

use super::group_numbers::{BatchGroups, ClosedGroups, GroupNumbers};
use super::pair_slots::{MAX_MEMBERS, Members};
use super::pair_table::{BatchScratch, PairHashes, PairTable, Probe, ValueKeys};
use crate::error::{Result, WeirError};
use crate::state::{OperatorState, StagedPartition, compact, delta_of, key_converter};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn arrow_error(e: arrow::error::ArrowError) -> WeirError {
    WeirError::Internal(format!("updating distinct pairs: {e}"))
}

/// What the tables hold.
#[derive(Debug, Clone, PartialEq)]
enum Reflects {
    /// Nothing known: rebuild before use.
    Unknown,
    /// Exactly the committed pairs of these generations of the members' states.
    Committed(Vec<u64>),
    /// The committed pairs plus the pairs of a batch in flight.
    InFlight,
}

#[derive(Debug)]
struct LivePartition {
    pairs: PairTable,
    /// By member, the pairs it added in the batch in flight.
    added: Vec<Vec<RecordBatch>>,
}

/// The pairs of the `count(DISTINCT)` aggregates of one value; see the module docs.
#[derive(Debug)]
pub struct PairSet {
    /// By member, the state its pairs are persisted in.
    members: Vec<Arc<OperatorState>>,
    reflects: Mutex<Reflects>,
    /// The numbers of the groups, shared with the aggregation's other pair sets.
    numbers: Arc<GroupNumbers>,
    partitions: Vec<Mutex<LivePartition>>,
}

impl PairSet {
    /// The most counts one set can hold.
    pub const MAX_MEMBERS: usize = MAX_MEMBERS;

    /// A set for counts whose pairs are persisted in `members` (at least one, at most
    /// [`Self::MAX_MEMBERS`], all with the same partitions).
    pub(crate) fn new(
        members: Vec<Arc<OperatorState>>,
        numbers: Arc<GroupNumbers>,
    ) -> Result<Self> {
        if members.is_empty() || members.len() > MAX_MEMBERS {
            return Err(WeirError::Internal(format!(
                "a distinct pair set shared by {} counts (1 to {MAX_MEMBERS} can share one)",
                members.len()
            )));
        }
        let partitions = (0..members[0].partitions())
            .map(|_| {
                Mutex::new(LivePartition {
                    pairs: PairTable::new(&DataType::Null),
                    added: Vec::new(),
                })
            })
            .collect();
        Ok(Self {
            members,
            reflects: Mutex::new(Reflects::Unknown),
            numbers,
            partitions,
        })
    }

    fn generations(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.generation()).collect()
    }

    /// Starts a batch over pairs of `schema` (the group keys, then the value): the tables are
    /// made to hold the committed pairs.
    pub fn begin(&self, schema: &SchemaRef) -> Result<()> {
        let mut reflects = lock(&self.reflects);
        if *reflects != Reflects::Committed(self.generations()) {
            self.rebuild(schema)?;
        }
        for partition in &self.partitions {
            let mut live = lock(partition);
            live.added.clear();
            live.added.resize(self.members.len(), Vec::new());
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
        for (member, state) in self.members.iter().enumerate() {
            for batch in state.committed().iter().flatten() {
                let columns = batch.columns()[..value_column].to_vec();
                let groups = self.numbers.number(&converter, columns, batch.num_rows())?;
                let values = ValueKeys::new(batch.column(value_column))?;
                for (i, group) in groups.of_row.iter().enumerate() {
                    let value_hash = values.hash(i);
                    let partition = PairHashes::partition(group.hash, value_hash, tables.len());
                    tables[partition].insert(
                        group.number,
                        &values,
                        i,
                        value_hash,
                        1 << member,
                        &mut scratch,
                    )?;
                }
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

    /// Adds the pairs of `groups` and `values`: for each member, of the rows for which its
    /// `candidates` entry is true. Says, per member and row, whether the member had not
    /// counted the row's pair: not before, and not for an earlier row. `schema` is the
    /// pairs' schema. Safe to call from several tasks at once within one batch.
    pub fn insert(
        &self,
        schema: &SchemaRef,
        groups: &BatchGroups,
        values: &ArrayRef,
        candidates: &[BooleanBuffer],
    ) -> Result<Vec<BooleanBuffer>> {
        if *lock(&self.reflects) != Reflects::InFlight {
            return Err(WeirError::Internal(
                "pairs were added to a distinct count outside a batch".to_string(),
            ));
        }
        if candidates.len() != self.members.len() {
            return Err(WeirError::Internal(format!(
                "{} candidate masks for a pair set of {} counts",
                candidates.len(),
                self.members.len()
            )));
        }
        let keys = ValueKeys::new(values)?;
        let rows = groups.of_row.len();
        let partitions = self.partitions.len();
        let most = candidates.iter().map(|c| c.count_set_bits()).max();
        let share = most.unwrap_or(0) / partitions + 64;
        let mut by_partition: Vec<Vec<Probe>> =
            (0..partitions).map(|_| Vec::with_capacity(share)).collect();
        let mut probe = |row: usize, members: Members| {
            let value_hash = keys.hash(row);
            let group = groups.of_row[row];
            let partition = PairHashes::partition(group.hash, value_hash, partitions);
            by_partition[partition].push(Probe {
                row: row as u32,
                members,
                value_hash,
            });
        };
        if let [candidate] = candidates {
            candidate.set_indices().for_each(|row| probe(row, 1));
        } else {
            let mut members_of_row: Vec<Members> = vec![0; rows];
            for (member, candidate) in candidates.iter().enumerate() {
                for row in candidate.set_indices() {
                    members_of_row[row] |= 1 << member;
                }
            }
            for (row, members) in members_of_row.into_iter().enumerate() {
                if members != 0 {
                    probe(row, members);
                }
            }
        }
        let mut pair_columns = groups.columns.clone();
        pair_columns.push(Arc::clone(values));
        let pairs = RecordBatch::try_new(Arc::clone(schema), pair_columns).map_err(arrow_error)?;
        let mut new: Vec<BooleanBufferBuilder> = candidates
            .iter()
            .map(|_| {
                let mut flags = BooleanBufferBuilder::new(rows);
                flags.append_n(rows, false);
                flags
            })
            .collect();
        let mut scratch = BatchScratch::default();
        let mut insert_into = |live: &mut LivePartition, probes: &[Probe]| -> Result<()> {
            let mut added: Vec<Vec<u32>> = vec![Vec::new(); new.len()];
            live.pairs.insert_rows(
                probes,
                &groups.of_row,
                &keys,
                &mut scratch,
                |row, members| {
                    for (member, flags) in new.iter_mut().enumerate() {
                        if members & (1 << member) != 0 {
                            flags.set_bit(row as usize, true);
                            added[member].push(row);
                        }
                    }
                },
            )?;
            for (member, rows) in added.into_iter().enumerate() {
                if !rows.is_empty() {
                    let rows = UInt32Array::from(rows);
                    let added = take_record_batch(&pairs, &rows).map_err(arrow_error)?;
                    live.added[member].push(added);
                }
            }
            Ok(())
        };
        // The partitions no other task holds first, then the others, waiting for each: tasks
        // that all went in partition order would queue behind each other at every one.
        let mut busy = Vec::new();
        for (partition, probes) in self.partitions.iter().zip(by_partition) {
            if probes.is_empty() {
                continue;
            }
            match partition.try_lock() {
                Ok(mut live) => insert_into(&mut live, &probes)?,
                Err(TryLockError::Poisoned(poisoned)) => {
                    insert_into(&mut poisoned.into_inner(), &probes)?
                }
                Err(TryLockError::WouldBlock) => busy.push((partition, probes)),
            }
        }
        for (partition, probes) in busy {
            insert_into(&mut lock(partition), &probes)?;
        }
        Ok(new.iter_mut().map(BooleanBufferBuilder::finish).collect())
    }

    /// Ends the batch: the groups in `closed` leave the set with their pairs, and each
    /// member's state and delta are staged, per partition. A delta holds the pairs the member
    /// added and a delete row per closed group, which removes all its pairs (see `delta.rs`).
    /// `split` returns a batch's `(kept, closed)` pairs: those of the groups in `closed` (see
    /// [`GroupNumbers::close`]).
    pub fn stage(
        &self,
        schema: &SchemaRef,
        split: impl Fn(&RecordBatch) -> Result<(RecordBatch, RecordBatch)> + Sync,
        closed: &ClosedGroups,
    ) -> Result<()> {
        let generations = self.generations();
        let mut reflects = lock(&self.reflects);
        let value_type = schema.field(schema.fields().len() - 1).data_type();
        let group_columns = schema.fields().len() - 1;
        // The pairs of a group that closed in this very batch are neither kept nor written.
        let deletes = closed.as_pairs(schema)?;
        let committed: Vec<Vec<Vec<RecordBatch>>> =
            self.members.iter().map(|m| m.committed()).collect();
        // Each partition is staged on its own thread: the work is a copy of its pairs.
        let stage_partition = |partition: usize| -> Result<Vec<StagedPartition>> {
            let mut live = lock(&self.partitions[partition]);
            if !closed.is_empty() {
                live.pairs.remove_groups(&closed.numbers);
                if live.pairs.len() == 0 {
                    live.pairs = PairTable::new(value_type);
                }
            }
            let mut staged = Vec::with_capacity(self.members.len());
            for (member, committed) in committed.iter().enumerate() {
                let added = live.added.get_mut(member).map(std::mem::take);
                let mut added =
                    concat_batches(schema, &added.unwrap_or_default()).map_err(arrow_error)?;
                let mut kept = committed.get(partition).cloned().unwrap_or_default();
                if !closed.is_empty() {
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
            Ok(staged)
        };
        let by_partition: Vec<Vec<StagedPartition>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..self.partitions.len())
                .map(|partition| scope.spawn(move || stage_partition(partition)))
                .collect();
            threads
                .into_iter()
                .map(|thread| {
                    thread.join().unwrap_or_else(|_| {
                        Err(WeirError::Internal(
                            "staging distinct pairs: a partition's thread panicked".to_string(),
                        ))
                    })
                })
                .collect::<Result<_>>()
        })?;
        // By member, its partitions in order.
        let mut staged: Vec<Vec<StagedPartition>> = self
            .members
            .iter()
            .map(|_| Vec::with_capacity(self.partitions.len()))
            .collect();
        for partition in by_partition {
            for (member, part) in partition.into_iter().enumerate() {
                staged[member].push(part);
            }
        }
        for (state, staged) in self.members.iter().zip(staged) {
            state.stage_deleting_by_prefix(
                Arc::clone(schema),
                schema.fields().len(),
                group_columns,
                staged,
            );
        }
        // Promoting the staged states makes them the next generation.
        *reflects = Reflects::Committed(generations.iter().map(|g| g + 1).collect());
        Ok(())
    }

    /// Rows and bytes of the committed pairs of all the members, including their tables
    /// (not the group numbers, which the aggregation's pair sets share).
    pub fn size(&self) -> (u64, u64) {
        let (rows, bytes) = self
            .members
            .iter()
            .map(|m| m.size())
            .fold((0, 0), |(r, b), (mr, mb)| (r + mr, b + mb));
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

    /// Inserts the pairs of `groups` and `values`, row by row, into `set` (of one member);
    /// which were new.
    fn insert(set: &PairSet, schema: &SchemaRef, groups: &[&str], values: ArrayRef) -> Vec<bool> {
        let every_row = vec![true; values.len()];
        insert_for(set, schema, groups, values, &[&every_row]).remove(0)
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    fn ints(values: &[i64]) -> ArrayRef {
        Arc::new(Int64Array::from(values.to_vec()))
    }

    /// `values` as strings, which the tables keep row-encoded.
    fn strings(values: &[i64]) -> ArrayRef {
        let strings: Vec<String> = values.iter().map(|v| format!("value {v}")).collect();
        Arc::new(StringArray::from(strings))
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
        let set = super::super::pair_set(&state, "op", &ids(&["op.distinct-0"])).unwrap();
        let schema = schema(DataType::Int64);

        // Batch 0: repeated pairs within the batch are new once; a non-candidate is not added.
        set.begin(&schema).unwrap();
        let converter = key_converter(&schema, 1).unwrap();
        let columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec!["a", "a", "b", "c"]))];
        let groups = set.numbers().number(&converter, columns, 4).unwrap();
        let candidate = BooleanBuffer::from(vec![true, true, true, false]);
        let first = set
            .insert(&schema, &groups, &ints(&[1, 1, 1, 1]), &[candidate])
            .unwrap();
        assert_eq!(
            first[0].iter().collect::<Vec<_>>(),
            [true, false, true, false]
        );
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
        let set = super::super::pair_set(&restarted, "op", &ids(&["op.distinct-0"])).unwrap();
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
            super::super::pair_set(&state, "op", &ids(&["op.distinct-0"])).unwrap(),
            super::super::pair_set(&state, "op", &ids(&["op.distinct-1"])).unwrap(),
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
            let set = super::super::pair_set(&restarted, "op", std::slice::from_ref(id)).unwrap();
            set.begin(&schema).unwrap();
            let first = insert(&set, &schema, &groups, values(&[1, 1, 2, 2, 4]));
            assert_eq!(
                first,
                [false, true, false, true, true],
                "{id} after a restart"
            );
        }
    }

    /// Inserts the pairs of `groups` and `values` for the members of `set` whose rows
    /// `candidates` gives; which were new to each member.
    fn insert_for(
        set: &PairSet,
        schema: &SchemaRef,
        groups: &[&str],
        values: ArrayRef,
        candidates: &[&[bool]],
    ) -> Vec<Vec<bool>> {
        let converter = key_converter(schema, 1).unwrap();
        let columns: Vec<ArrayRef> = vec![Arc::new(StringArray::from(groups.to_vec()))];
        let groups = set
            .numbers()
            .number(&converter, columns, values.len())
            .unwrap();
        let candidates: Vec<BooleanBuffer> = candidates
            .iter()
            .map(|c| BooleanBuffer::from(c.to_vec()))
            .collect();
        let new = set.insert(schema, &groups, &values, &candidates).unwrap();
        new.iter().map(|n| n.iter().collect()).collect()
    }

    /// Two counts of one value share a set: a pair is new once to each, whichever rows count
    /// it for which; each count's pairs are persisted on their own and reloaded into one set.
    async fn counts_of_one_value_share_a_set(values: impl Fn(&[i64]) -> ArrayRef) {
        let dir = tempfile::tempdir().unwrap();
        let location = || StoreLocation::parse(&dir.path().to_string_lossy(), true).unwrap();
        let state = QueryState::new(location(), 2);
        let members = ids(&["op.distinct-0", "op.distinct-2"]);
        let set = super::super::pair_set(&state, "op", &members).unwrap();
        assert!(Arc::ptr_eq(
            &set,
            &super::super::pair_set(&state, "op", &members).unwrap()
        ));
        let schema = schema(values(&[]).data_type().clone());
        let (t, f) = (true, false);

        set.begin(&schema).unwrap();
        let new = insert_for(
            &set,
            &schema,
            &["a", "a", "a", "b", "b"],
            values(&[1, 1, 2, 1, 1]),
            &[&[t, t, t, f, t], &[f, t, f, t, t]],
        );
        assert_eq!(new, [[t, f, t, f, t], [f, t, f, t, f]]);
        set.stage(&schema, keep_all, &ClosedGroups::none(&schema))
            .unwrap();
        state.persist(BatchId(0)).await.unwrap();
        state.promote();
        assert_eq!(state.operator("op.distinct-0").size().0, 3);
        assert_eq!(state.operator("op.distinct-2").size().0, 2);
        assert_eq!(set.size().0, 5, "the rows of both counts' states");
        assert_eq!(set.pairs_in_tables(), 3, "one table entry per pair");

        // A batch that fails before it commits leaves nothing behind.
        set.begin(&schema).unwrap();
        let new = insert_for(&set, &schema, &["a"], values(&[2]), &[&[t], &[t]]);
        assert_eq!(new, [[f], [t]]);
        set.begin(&schema).unwrap();
        let new = insert_for(
            &set,
            &schema,
            &["a", "a", "c"],
            values(&[2, 1, 1]),
            &[&[f, t, f], &[t, t, f]],
        );
        assert_eq!(new, [[f, f, f], [t, f, f]], "a member's own pairs only");
        set.stage(&schema, keep_all, &ClosedGroups::none(&schema))
            .unwrap();
        state.persist(BatchId(1)).await.unwrap();
        state.promote();

        let restarted = QueryState::new(location(), 2);
        restarted.load(&members, Some(BatchId(1))).await.unwrap();
        let set = super::super::pair_set(&restarted, "op", &members).unwrap();
        set.begin(&schema).unwrap();
        let all = [t; 4];
        let new = insert_for(
            &set,
            &schema,
            &["a", "a", "b", "c"],
            values(&[1, 2, 1, 1]),
            &[&all, &all],
        );
        assert_eq!(new, [[f, f, f, t], [f, f, f, t]]);
    }

    #[tokio::test]
    async fn counts_of_one_value_share_a_set_with_values_kept_as_bits() {
        counts_of_one_value_share_a_set(ints).await;
    }

    #[tokio::test]
    async fn counts_of_one_value_share_a_set_with_encoded_values() {
        counts_of_one_value_share_a_set(strings).await;
    }

    #[tokio::test]
    async fn closing_a_group_forgets_its_pairs_only_with_values_kept_as_bits() {
        closing_a_group_forgets_its_pairs_only(ints).await;
    }

    #[tokio::test]
    async fn closing_a_group_forgets_its_pairs_only_with_encoded_values() {
        closing_a_group_forgets_its_pairs_only(strings).await;
    }
}
