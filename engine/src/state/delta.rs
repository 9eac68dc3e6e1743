//! State deltas: the difference between an operator's state before and after a batch, and
//! replaying deltas onto a snapshot.
//!
//! A delta has the state's columns plus a boolean `__weir_delete`: a row with `false` is an
//! upsert (a group that is new or whose state changed), a row with `true` removes the group
//! with that row's key. Groups are identified by their first `keys` columns.
//!
//! A delta may instead remove keys by a prefix of them ([`Delta::delete_prefix`]): a delete
//! row then removes every key whose first `delete_prefix` columns are the row's, whatever
//! its other columns. A [`PairSet`](super::PairSet) records a closed window this way: one
//! row per closed group instead of one per `(group, value)` pair it counted.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, filter_record_batch, interleave, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};

use crate::error::{Result, WeirError};

const DELETE_COLUMN: &str = "__weir_delete";

fn arrow_error(e: arrow::error::ArrowError) -> WeirError {
    WeirError::Internal(format!("computing a state delta: {e}"))
}

/// A row converter for the first `columns` (key) columns of `schema`.
pub(crate) fn key_converter(schema: &Schema, columns: usize) -> Result<RowConverter> {
    let fields = schema.fields()[..columns]
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    RowConverter::new(fields).map_err(arrow_error)
}

/// The schema of deltas for a state schema.
pub(crate) fn delta_schema(state: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = state.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(DELETE_COLUMN, DataType::Boolean, false));
    Arc::new(Schema::new(fields))
}

/// The delta turning `old` into `new`, comparing whole rows: for state whose keys change
/// (merged sessions); other operators know what they changed and use [`delta_of`].
pub(crate) fn diff(
    schema: &SchemaRef,
    keys: usize,
    old: &[RecordBatch],
    new: &[RecordBatch],
) -> Result<RecordBatch> {
    let old = concat_batches(schema, old).map_err(arrow_error)?;
    let new = concat_batches(schema, new).map_err(arrow_error)?;
    let full = key_converter(schema, schema.fields().len())?;
    let by_key = key_converter(schema, keys)?;
    let old_rows = full.convert_columns(old.columns()).map_err(arrow_error)?;
    let new_rows = full.convert_columns(new.columns()).map_err(arrow_error)?;
    let unchanged: HashSet<&[u8]> = old_rows.iter().map(|r| r.data()).collect();
    let upsert: BooleanArray = new_rows
        .iter()
        .map(|r| Some(!unchanged.contains(r.data())))
        .collect();
    let new_keys = by_key
        .convert_columns(&new.columns()[..keys])
        .map_err(arrow_error)?;
    let live: HashSet<&[u8]> = new_keys.iter().map(|r| r.data()).collect();
    let old_keys = by_key
        .convert_columns(&old.columns()[..keys])
        .map_err(arrow_error)?;
    let delete: BooleanArray = old_keys
        .iter()
        .map(|r| Some(!live.contains(r.data())))
        .collect();
    delta_of(
        schema,
        filter_record_batch(&new, &upsert).map_err(arrow_error)?,
        filter_record_batch(&old, &delete).map_err(arrow_error)?,
    )
}

/// A delta read back from its file.
#[derive(Debug)]
pub(crate) struct Delta {
    /// The state's columns, then `__weir_delete`.
    pub rows: RecordBatch,
    /// How many leading key columns a delete row matches (all the keys, unless the delta
    /// removes keys by a prefix of them; see the module docs).
    pub delete_prefix: usize,
}

/// The keys added since a prefix delete became possible, by the row encoding of their prefix.
struct KeysByPrefix {
    converter: RowConverter,
    columns: usize,
    keys: HashMap<Vec<u8>, Vec<Vec<u8>>>,
}

impl KeysByPrefix {
    fn new(schema: &SchemaRef, columns: usize) -> Result<Self> {
        Ok(Self {
            converter: key_converter(schema, columns)?,
            columns,
            keys: HashMap::new(),
        })
    }

    /// The row encodings of the prefixes of `batch`'s rows.
    fn prefixes(&self, batch: &RecordBatch) -> Result<arrow::row::Rows> {
        self.converter
            .convert_columns(&batch.columns()[..self.columns])
            .map_err(arrow_error)
    }
}

/// Applies `deltas`, oldest first, to `base`; returns the resulting state.
pub(crate) fn replay(
    schema: &SchemaRef,
    keys: usize,
    base: Vec<RecordBatch>,
    deltas: Vec<Delta>,
) -> Result<Vec<RecordBatch>> {
    let by_key = key_converter(schema, keys)?;
    let width = schema.fields().len();
    // Only one prefix is ever used for an operator's deletes (a pair set's group columns).
    let mut by_prefix = match deltas.iter().map(|d| d.delete_prefix).find(|p| *p < keys) {
        Some(prefix) => Some(KeysByPrefix::new(schema, prefix)?),
        None => None,
    };
    // Every row ever seen, by (batch, row); the map keeps each live key's latest position.
    let mut sources: Vec<RecordBatch> = Vec::new();
    let mut live: HashMap<Vec<u8>, (usize, usize)> = HashMap::new();
    let mut order: Vec<Vec<u8>> = Vec::new();
    let parts = base.into_iter().map(|rows| (rows, false, keys)).chain(
        deltas
            .into_iter()
            .map(|delta| (delta.rows, true, delta.delete_prefix)),
    );
    for (batch, is_delta, delete_prefix) in parts {
        let deleted = match is_delta {
            false => None,
            true => Some(
                batch
                    .column(width)
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .cloned()
                    .ok_or_else(|| {
                        WeirError::Internal("a state delta has no delete column".to_string())
                    })?,
            ),
        };
        let state_part =
            RecordBatch::try_new(Arc::clone(schema), batch.columns()[..width].to_vec())
                .map_err(arrow_error)?;
        let index = sources.len();
        let rows = by_key
            .convert_columns(&state_part.columns()[..keys])
            .map_err(arrow_error)?;
        let prefixes = match &by_prefix {
            Some(by_prefix) => Some(by_prefix.prefixes(&state_part)?),
            None => None,
        };
        if delete_prefix < keys
            && by_prefix
                .as_ref()
                .is_some_and(|p| p.columns != delete_prefix)
        {
            return Err(WeirError::Internal(
                "state deltas delete by different key prefixes".to_string(),
            ));
        }
        for (row, key) in rows.iter().enumerate() {
            let key = key.data().to_vec();
            let prefix = prefixes.as_ref().map(|p| p.row(row));
            if deleted.as_ref().is_some_and(|d| d.value(row)) {
                match (&mut by_prefix, prefix) {
                    (Some(by_prefix), Some(prefix)) if delete_prefix < keys => {
                        for key in by_prefix.keys.remove(prefix.data()).unwrap_or_default() {
                            live.remove(&key);
                        }
                    }
                    _ => {
                        live.remove(&key);
                    }
                }
                continue;
            }
            if let (Some(by_prefix), Some(prefix)) = (&mut by_prefix, prefix) {
                let keys_of_prefix = by_prefix.keys.entry(prefix.data().to_vec());
                keys_of_prefix.or_default().push(key.clone());
            }
            if live.insert(key.clone(), (index, row)).is_none() {
                order.push(key);
            }
        }
        sources.push(state_part);
    }
    let positions: Vec<(usize, usize)> =
        order.iter().filter_map(|k| live.get(k).copied()).collect();
    let mut seen = HashSet::new();
    let positions: Vec<(usize, usize)> =
        positions.into_iter().filter(|p| seen.insert(*p)).collect();
    if positions.is_empty() {
        return Ok(Vec::new());
    }
    let columns = (0..width)
        .map(|c| {
            let arrays: Vec<&dyn arrow::array::Array> =
                sources.iter().map(|b| b.column(c).as_ref()).collect();
            interleave(&arrays, &positions)
        })
        .collect::<std::result::Result<Vec<ArrayRef>, _>>()
        .map_err(arrow_error)?;
    Ok(vec![
        RecordBatch::try_new(Arc::clone(schema), columns).map_err(arrow_error)?,
    ])
}

/// The delta made of `upserts` (rows of state) and the groups of `deletes` (rows of state
/// whose keys are removed).
pub(crate) fn delta_of(
    schema: &SchemaRef,
    upserts: RecordBatch,
    deletes: RecordBatch,
) -> Result<RecordBatch> {
    let with_flag = |batch: RecordBatch, deleted: bool| -> Result<RecordBatch> {
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(BooleanArray::from(vec![
            deleted;
            batch.num_rows()
        ])));
        RecordBatch::try_new(delta_schema(schema), columns).map_err(arrow_error)
    };
    // Most batches close no group (or change none): their delta is one side, not copied.
    if deletes.num_rows() == 0 {
        return with_flag(upserts, false);
    }
    if upserts.num_rows() == 0 {
        return with_flag(deletes, true);
    }
    concat_batches(
        &delta_schema(schema),
        &[with_flag(upserts, false)?, with_flag(deletes, true)?],
    )
    .map_err(arrow_error)
}

/// Splits `batch` into `partitions` parts by a hash of each row's `key_columns`. The hash
/// (FNV-1a over the key's row encoding) is stable across processes and releases, so a key
/// stays in its partition for the life of a checkpoint. Without key columns every row goes to
/// the first part.
pub(crate) fn split_by_key(
    batch: &RecordBatch,
    key_columns: &[usize],
    partitions: usize,
) -> Result<Vec<RecordBatch>> {
    let columns: Vec<ArrayRef> = key_columns
        .iter()
        .map(|c| Arc::clone(batch.column(*c)))
        .collect();
    split_by_key_arrays(batch, &columns, partitions)
}

/// As [`split_by_key`], with the keys given as arrays (computed from the rows, such as a
/// join's key expressions): rows with equal keys of equal types go to the same part, whatever
/// the batch they come in.
pub(crate) fn split_by_key_arrays(
    batch: &RecordBatch,
    keys: &[ArrayRef],
    partitions: usize,
) -> Result<Vec<RecordBatch>> {
    let empty = || batch.slice(0, 0);
    if partitions <= 1 || keys.is_empty() {
        let mut parts = vec![batch.clone()];
        parts.resize_with(partitions.max(1), empty);
        return Ok(parts);
    }
    let fields = keys
        .iter()
        .map(|k| SortField::new(k.data_type().clone()))
        .collect();
    let by_key = RowConverter::new(fields).map_err(arrow_error)?;
    let rows = by_key.convert_columns(keys).map_err(arrow_error)?;
    let mut owned: Vec<Vec<u32>> = vec![Vec::new(); partitions];
    for (i, row) in rows.iter().enumerate() {
        owned[partition_of(row.data(), partitions)].push(i as u32);
    }
    owned
        .into_iter()
        .map(|indices| {
            if indices.len() == batch.num_rows() {
                return Ok(batch.clone());
            }
            take_record_batch(batch, &UInt32Array::from(indices)).map_err(arrow_error)
        })
        .collect()
}

/// The partition of a key with row encoding `key`, out of `partitions`: stable across
/// processes and releases (FNV-1a).
fn partition_of(key: &[u8], partitions: usize) -> usize {
    (fnv1a(key) % partitions.max(1) as u64) as usize
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::util::pretty::pretty_format_batches;

    use super::*;

    /// State rows `(k, v)`, a null `v` where `values` has none.
    fn rows(keys: &[&str], values: &[Option<i64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, false),
            Field::new("v", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys.to_vec())),
                Arc::new(Int64Array::from(values.to_vec())),
            ],
        )
        .unwrap()
    }

    fn state(keys: &[&str], values: &[i64]) -> RecordBatch {
        let values: Vec<Option<i64>> = values.iter().copied().map(Some).collect();
        rows(keys, &values)
    }

    #[test]
    fn deltas_replayed_on_a_snapshot_rebuild_the_state() {
        let schema = state(&[], &[]).schema();
        let v0 = state(&["a", "b", "c"], &[1, 2, 3]);
        let v1 = state(&["a", "c", "d"], &[1, 30, 4]); // b evicted, c changed, d new, a same
        let v2 = state(&["d", "e"], &[5, 6]);
        let d1 = diff(&schema, 1, &[v0.clone()], &[v1.clone()]).unwrap();
        assert_eq!(
            d1.num_rows(),
            3,
            "c and d upserted, b deleted; a unchanged is not written"
        );
        let d2 = diff(&schema, 1, &[v1.clone()], &[v2.clone()]).unwrap();
        let by_key = |rows: &RecordBatch| Delta {
            rows: rows.clone(),
            delete_prefix: 1,
        };
        let rebuilt = replay(&schema, 1, vec![v0], vec![by_key(&d1), by_key(&d2)]).unwrap();
        let sorted = |b: &[RecordBatch]| {
            let mut lines: Vec<String> = pretty_format_batches(b)
                .unwrap()
                .to_string()
                .lines()
                .map(str::to_string)
                .collect();
            lines.sort();
            lines
        };
        assert_eq!(sorted(&rebuilt), sorted(&[v2.clone()]));
        // From nothing, with the first delta being everything.
        let d0 = diff(&schema, 1, &[], &[state(&["a", "b", "c"], &[1, 2, 3])]).unwrap();
        let from_empty = replay(
            &schema,
            1,
            vec![],
            vec![by_key(&d0), by_key(&d1), by_key(&d2)],
        );
        let from_empty = from_empty.unwrap();
        assert_eq!(sorted(&from_empty), sorted(&[v2]));
    }

    #[test]
    fn a_delta_with_one_side_empty_flags_that_sides_rows_only() {
        let pairs = rows;
        let some = pairs(&["a", "b"], &[Some(1), Some(2)]);
        let none = some.slice(0, 0);
        let schema = some.schema();
        let flags = |delta: &RecordBatch| -> Vec<bool> {
            assert_eq!(delta.schema(), delta_schema(&schema));
            let flag = delta.column(2).as_any().downcast_ref::<BooleanArray>();
            flag.unwrap().iter().map(Option::unwrap).collect()
        };
        let upserts = delta_of(&schema, some.clone(), none.clone()).unwrap();
        assert_eq!(upserts.columns()[..2], some.columns()[..]);
        assert_eq!(flags(&upserts), [false, false]);
        let deletes = delta_of(&schema, none.clone(), some.clone()).unwrap();
        assert_eq!(deletes.columns()[..2], some.columns()[..]);
        assert_eq!(flags(&deletes), [true, true]);
        let nothing = delta_of(&schema, none.clone(), none).unwrap();
        assert_eq!((nothing.num_rows(), flags(&nothing)), (0, vec![]));
    }

    #[test]
    fn a_delete_by_prefix_removes_every_key_of_its_group_and_nothing_added_after() {
        // Pairs (k, v), both keys.
        let pairs = rows;
        let base = pairs(&["a", "a", "b", "c"], &[Some(1), Some(2), Some(1), Some(5)]);
        let schema = base.schema();
        // Batch 1 adds a pair to "a" and "b", then closes "a" and "c" (value null: any value).
        let added = pairs(&["a", "b"], &[Some(3), Some(2)]);
        let closed = pairs(&["a", "c"], &[None, None]);
        let d1 = delta_of(&schema, added, closed).unwrap();
        // Batch 2 adds to "a" again, a group of the same key opened anew, and closes "b".
        let d2 = delta_of(&schema, pairs(&["a"], &[Some(9)]), pairs(&["b"], &[None])).unwrap();
        let by_group = |rows: RecordBatch| Delta {
            rows,
            delete_prefix: 1,
        };
        let state = replay(&schema, 2, vec![base], vec![by_group(d1), by_group(d2)]).unwrap();
        let state = pretty_format_batches(&state).unwrap().to_string();
        assert_eq!(
            state.lines().collect::<Vec<_>>(),
            [
                "+---+---+",
                "| k | v |",
                "+---+---+",
                "| a | 9 |",
                "+---+---+"
            ]
        );
    }
}
