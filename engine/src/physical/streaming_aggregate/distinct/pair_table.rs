//! The in-memory tables of a [`PairSet`](super::PairSet): which `(group, value)` pairs a
//! `count(DISTINCT value)` has counted.
//!
//! - [`PairTable`] holds one state partition's pairs. A value of a fixed-width integer type
//!   (integers, dates, times, timestamps, durations) is kept as its bits, so a pair is two
//!   `u64`s, in a [`PairSlots`]; any other value (strings, floats, decimals, …) is kept as its
//!   row encoding, after the group's number, in one buffer per partition ([`RowSet`]).
//! - Each pair also holds which of the counts sharing the table counted it ([`Members`]), so
//!   that the `count(DISTINCT x)` aggregates of one `x` (with different `FILTER`s) probe
//!   once per row between them.
//!
//! A pair's state partition follows from a hash of the group's key and of the value that is
//! the same in every process and release ([`stable_hash`](crate::physical::row_hash::stable_hash), [`PairHashes::partition`]); group
//! numbers are local to the process and only used within a partition's table.

use arrow::array::{Array, ArrayRef};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, Rows, SortField};
use hashbrown::{HashSet, HashTable};

use super::group_numbers::GroupId;
use super::pair_slots::{MAX_GROUP, Members, Pair, PairSlots};
use crate::error::{Result, WeirError};
use crate::physical::row_hash::{K, mix, stable_hash};

/// The two hashes of a pair, from its group's and its value's stable hashes.
pub(super) struct PairHashes;

impl PairHashes {
    /// The state partition of a pair, out of `partitions`: stable, as both hashes are.
    pub fn partition(group_hash: u64, value_hash: u64, partitions: usize) -> usize {
        let hash = mix(group_hash.rotate_left(23) ^ value_hash ^ 0x5851_f42d_4c95_7f2d);
        (((hash >> 32) * partitions as u64) >> 32) as usize
    }

    /// A pair's hash within its partition's table, from the process-local group number.
    pub fn in_table(group: u64, value_hash: u64) -> u64 {
        mix(group.wrapping_mul(K) ^ value_hash)
    }
}

/// Whether values of `data_type` are kept as their bits: integer-like types of at most 8
/// bytes, whose equality is their bits' equality (not floats: `-0.0` and `NaN`s).
pub(super) fn kept_as_bits(data_type: &DataType) -> bool {
    use DataType::*;
    matches!(
        data_type,
        Int8 | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Date32
            | Date64
            | Time32(_)
            | Time64(_)
            | Timestamp(_, _)
            | Duration(_)
    )
}

/// A batch's values of one `count(DISTINCT value)`, keyed as its pair tables keep them.
pub(super) enum ValueKeys {
    /// The values' bits (see [`kept_as_bits`]).
    Bits(Vec<u64>),
    /// The values' row encodings.
    Encoded(Rows),
}

fn value_error(e: arrow::error::ArrowError) -> WeirError {
    WeirError::Internal(format!("encoding distinct values: {e}"))
}

impl ValueKeys {
    pub fn new(values: &ArrayRef) -> Result<Self> {
        let data_type = values.data_type();
        if !kept_as_bits(data_type) {
            let converter =
                RowConverter::new(vec![SortField::new(data_type.clone())]).map_err(value_error)?;
            let rows = converter
                .convert_columns(std::slice::from_ref(values))
                .map_err(value_error)?;
            return Ok(Self::Encoded(rows));
        }
        let data = values.to_data();
        let width = data_type.primitive_width().unwrap_or(8);
        let bytes = data.buffers().first().map(|b| b.as_slice()).unwrap_or(&[]);
        let start = data.offset() * width;
        let Some(bytes) = bytes.get(start..start + data.len() * width) else {
            return Err(WeirError::Internal(format!(
                "a {data_type} array shorter than its length"
            )));
        };
        // One loop per width, so that each reads its values with a fixed-size load.
        fn read<const N: usize>(bytes: &[u8], to_bits: fn([u8; N]) -> u64) -> Vec<u64> {
            bytes
                .chunks_exact(N)
                .map(|value| to_bits(value.try_into().unwrap_or([0; N])))
                .collect()
        }
        let bits = match width {
            1 => read::<1>(bytes, |b| u64::from(b[0])),
            2 => read::<2>(bytes, |b| u64::from(u16::from_le_bytes(b))),
            4 => read::<4>(bytes, |b| u64::from(u32::from_le_bytes(b))),
            8 => read::<8>(bytes, u64::from_le_bytes),
            _ => {
                return Err(WeirError::Internal(format!(
                    "{data_type} values of {width} bytes cannot be kept as bits"
                )));
            }
        };
        Ok(Self::Bits(bits))
    }

    /// The stable hash of value `i`.
    pub fn hash(&self, i: usize) -> u64 {
        match self {
            Self::Bits(bits) => hash_bits(bits[i]),
            Self::Encoded(rows) => stable_hash(rows.row(i).data()),
        }
    }
}

fn hash_bits(bits: u64) -> u64 {
    mix(bits ^ 0x2545_f491_4f6c_dd1d)
}

/// Row-encoded keys, one after the other in one buffer, found through a hash table of their
/// positions: no allocation per key. Each key has a set of [`Members`].
#[derive(Debug, Default)]
pub(super) struct RowSet {
    table: HashTable<u32>,
    bytes: Vec<u8>,
    /// Key `i` is `bytes[ends[i - 1]..ends[i]]` (from 0 for the first).
    ends: Vec<usize>,
    /// Key `i`'s hash, so growing the table does not hash the keys again.
    hashes: Vec<u64>,
    /// Key `i`'s members.
    members: Vec<Members>,
    /// Bytes of removed keys, still in `bytes` until the next compaction.
    removed_bytes: usize,
}

impl RowSet {
    fn key<'a>(bytes: &'a [u8], ends: &[usize], i: u32) -> &'a [u8] {
        let i = i as usize;
        let start = if i == 0 { 0 } else { ends[i - 1] };
        &bytes[start..ends[i]]
    }

    /// Adds `key` (with hash `hash`) for `members`; returns those of `members` that did not
    /// have it.
    pub fn insert(&mut self, hash: u64, key: &[u8], members: Members) -> Members {
        let Self {
            table,
            bytes,
            ends,
            hashes,
            members: members_of,
            ..
        } = self;
        // One probe finds the key or the slot for it.
        let entry = table.entry(
            hash,
            |i| Self::key(bytes, ends, *i) == key,
            |i| hashes[*i as usize],
        );
        let slot = match entry {
            hashbrown::hash_table::Entry::Occupied(found) => {
                let had = &mut members_of[*found.get() as usize];
                let new = members & !*had;
                *had |= new;
                return new;
            }
            hashbrown::hash_table::Entry::Vacant(slot) => slot,
        };
        let index = ends.len() as u32;
        slot.insert(index);
        bytes.extend_from_slice(key);
        ends.push(bytes.len());
        hashes.push(hash);
        members_of.push(members);
        members
    }

    /// Removes the keys `keep` says no to, then drops their bytes once they are more than
    /// the bytes of the keys kept.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let Self {
            table,
            bytes,
            ends,
            removed_bytes,
            ..
        } = self;
        table.retain(|i| {
            let key = Self::key(bytes, ends, *i);
            let kept = keep(key);
            if !kept {
                *removed_bytes += key.len();
            }
            kept
        });
        if self.removed_bytes <= self.bytes.len() / 2 {
            return;
        }
        let mut kept = Self {
            table: HashTable::with_capacity(self.table.len()),
            ..Self::default()
        };
        for &i in self.table.iter() {
            let key = Self::key(&self.bytes, &self.ends, i);
            let i = i as usize;
            kept.insert(self.hashes[i], key, self.members[i]);
        }
        *self = kept;
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Bytes held, including the table's slots.
    pub fn memory(&self) -> usize {
        self.bytes.capacity()
            + (self.ends.capacity() + self.hashes.capacity()) * std::mem::size_of::<u64>()
            + self.members.capacity() * std::mem::size_of::<Members>()
            + self.table.capacity() * (std::mem::size_of::<u32>() + 1)
    }
}

/// One row's pair to add to a [`PairTable`]: the row, the members it counts for, and its
/// value's stable hash.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    pub row: u32,
    pub members: Members,
    pub value_hash: u64,
}

/// Buffers [`PairTable::insert_rows`] reuses from one call to the next.
#[derive(Debug, Default)]
pub(super) struct BatchScratch {
    pairs: Vec<(Pair, u64)>,
    key: Vec<u8>,
}

/// One state partition's pairs: `(group number, value bits)`, or the group number's bytes
/// followed by the value's row encoding.
#[derive(Debug)]
pub(super) enum PairTable {
    Bits(PairSlots),
    Encoded(RowSet),
}

/// The hash in its table of a pair kept as bits.
fn hash_in_table(pair: &Pair) -> u64 {
    PairHashes::in_table(pair.group(), hash_bits(pair.bits))
}

fn check_group(group: u64) -> Result<()> {
    if group > MAX_GROUP {
        return Err(WeirError::Internal(format!(
            "this process has numbered more than {MAX_GROUP} groups with distinct counts; \
             restart the query to number them afresh"
        )));
    }
    Ok(())
}

impl PairTable {
    /// An empty table for values of `data_type`.
    pub fn new(data_type: &DataType) -> Self {
        if kept_as_bits(data_type) {
            Self::Bits(PairSlots::default())
        } else {
            Self::Encoded(RowSet::default())
        }
    }

    /// Adds the pair of `group` and value `i` of `values`, whose stable hash is
    /// `value_hash`, for `members`; returns those of `members` that did not have it.
    /// `scratch` is reused for encoded keys.
    pub fn insert(
        &mut self,
        group: u64,
        values: &ValueKeys,
        i: usize,
        value_hash: u64,
        members: Members,
        scratch: &mut Vec<u8>,
    ) -> Result<Members> {
        check_group(group)?;
        let hash = PairHashes::in_table(group, value_hash);
        match (self, values) {
            (Self::Bits(slots), ValueKeys::Bits(bits)) => {
                Ok(slots.insert(Pair::new(group, bits[i], members), hash, hash_in_table))
            }
            (Self::Encoded(set), ValueKeys::Encoded(rows)) => {
                scratch.clear();
                scratch.extend_from_slice(&group.to_le_bytes());
                scratch.extend_from_slice(rows.row(i).data());
                Ok(set.insert(hash, scratch, members))
            }
            _ => Err(WeirError::Internal(
                "a distinct value of another type than its pair table's".to_string(),
            )),
        }
    }

    /// Adds the pairs of `probes`, with the values of `values` and the groups `groups`
    /// gives by row; calls `on_new` with each row and those of its members that did not have
    /// its pair (nor an earlier row's), when there are any. `scratch` is reused between
    /// calls.
    pub fn insert_rows(
        &mut self,
        probes: &[Probe],
        groups: &[GroupId],
        values: &ValueKeys,
        scratch: &mut BatchScratch,
        mut on_new: impl FnMut(u32, Members),
    ) -> Result<()> {
        if let (Self::Bits(slots), ValueKeys::Bits(bits)) = (&mut *self, values) {
            // A batch's pairs go in together, so that their probes overlap (see `PairSlots`).
            scratch.pairs.clear();
            scratch.pairs.reserve(probes.len());
            for probe in probes {
                let row = probe.row as usize;
                let group = groups[row].number;
                check_group(group)?;
                let pair = Pair::new(group, bits[row], probe.members);
                let hash = PairHashes::in_table(group, probe.value_hash);
                scratch.pairs.push((pair, hash));
            }
            slots.insert_batch(&scratch.pairs, hash_in_table, |i, new| {
                on_new(probes[i].row, new)
            });
            return Ok(());
        }
        for probe in probes {
            let row = probe.row as usize;
            let group = groups[row].number;
            let new = self.insert(
                group,
                values,
                row,
                probe.value_hash,
                probe.members,
                &mut scratch.key,
            )?;
            if new != 0 {
                on_new(probe.row, new);
            }
        }
        Ok(())
    }

    /// Removes the pairs of the groups numbered in `closed`.
    pub fn remove_groups(&mut self, closed: &HashSet<u64>) {
        match self {
            Self::Bits(slots) => {
                slots.retain(|pair| !closed.contains(&pair.group()), hash_in_table)
            }
            Self::Encoded(set) => set.retain(|key| {
                let mut group = [0; 8];
                group.copy_from_slice(&key[..8]);
                !closed.contains(&u64::from_le_bytes(group))
            }),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Bits(slots) => slots.len(),
            Self::Encoded(set) => set.len(),
        }
    }

    /// Bytes held, including the table's slots.
    pub fn memory(&self) -> usize {
        match self {
            Self::Bits(slots) => slots.memory(),
            Self::Encoded(set) => set.memory(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int16Array, TimestampMillisecondArray};

    use super::*;

    #[test]
    fn removed_keys_are_gone_and_the_others_stay_through_compaction() {
        let mut set = RowSet::default();
        let key = |i: u32| format!("key-{i}").into_bytes();
        for i in 0..100 {
            assert_eq!(set.insert(stable_hash(&key(i)), &key(i), 1), 1);
        }
        assert_eq!(set.insert(stable_hash(&key(7)), &key(7), 1), 0);
        let number = |k: &[u8]| {
            std::str::from_utf8(&k[4..])
                .unwrap()
                .parse::<u32>()
                .unwrap()
        };
        assert_eq!(set.insert(stable_hash(&key(80)), &key(80), 0b11), 0b10);
        set.retain(|k| number(k) >= 70);
        assert_eq!(set.len(), 30, "keys 70..100 stay");
        assert_eq!(set.removed_bytes, 0, "compacted once sparse");
        for i in 0..100 {
            // A removed key is new again; a kept one is not.
            let new = set.insert(stable_hash(&key(i)), &key(i), 0b111);
            let had = match i {
                ..70 => 0,
                80 => 0b11,
                _ => 0b1,
            };
            assert_eq!(
                new,
                0b111 & !had,
                "key {i} keeps its members through compaction"
            );
        }
    }

    #[test]
    fn values_kept_as_bits_are_read_from_where_a_sliced_array_starts() {
        let values: ArrayRef = Arc::new(Int16Array::from(vec![5, -1, 7, 300]));
        let ValueKeys::Bits(bits) = ValueKeys::new(&values.slice(1, 3)).unwrap() else {
            panic!("an Int16 value is kept as bits");
        };
        assert_eq!(bits, [0xffff, 7, 300]);
        let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![-2, 1_700_000]));
        let ValueKeys::Bits(bits) = ValueKeys::new(&times).unwrap() else {
            panic!("a timestamp is kept as bits");
        };
        assert_eq!(bits, [(-2i64) as u64, 1_700_000]);
    }

    #[test]
    fn a_pair_is_its_group_and_value_whichever_way_the_value_is_kept() {
        let strings: ArrayRef = Arc::new(arrow::array::StringArray::from(vec!["x", "y", "x"]));
        let ints: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![1, 2, 1]));
        for values in [strings, ints] {
            let keys = ValueKeys::new(&values).unwrap();
            let mut table = PairTable::new(values.data_type());
            let mut scratch = Vec::new();
            let mut insert = |table: &mut PairTable, group: u64, i: usize| {
                table
                    .insert(group, &keys, i, keys.hash(i), 1, &mut scratch)
                    .unwrap()
                    == 1
            };
            assert!(insert(&mut table, 1, 0));
            assert!(insert(&mut table, 1, 1));
            assert!(!insert(&mut table, 1, 2), "value 2 is value 0 again");
            assert!(insert(&mut table, 2, 2), "in another group it is new");
            assert!(!insert(&mut table, 2, 0));
            table.remove_groups(&HashSet::from([1]));
            assert_eq!(table.len(), 1);
            assert!(insert(&mut table, 1, 1), "group 1's pairs were removed");
        }
    }
}
