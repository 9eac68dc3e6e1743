//! [`GroupNumbers`]: the groups of one aggregation that its `count(DISTINCT)` pairs refer to,
//! numbered once for all of the aggregation's [`PairSet`](super::PairSet)s.
//!
//! A batch's rows are numbered once ([`GroupNumbers::number`]), whatever the number of
//! distinct counts; a batch's closed groups are found once ([`GroupNumbers::close`]) and
//! every pair set drops their pairs. Numbers are never reused, so a number means one group
//! for the life of the process, even across a failed batch.

use std::sync::{Arc, RwLock};

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, UInt64Array, new_null_array};
use arrow::compute::cast;
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use arrow::row::{Row, RowConverter};
use datafusion::logical_expr::EmitTo;
use datafusion::physical_plan::aggregates::group_values::new_group_values;
use datafusion::physical_plan::aggregates::order::GroupOrdering;
use hashbrown::{HashMap, HashSet};

use crate::error::{Result, WeirError};
use crate::physical::row_hash::stable_hash;
use crate::state::key_converter;

fn arrow_error(e: arrow::error::ArrowError) -> WeirError {
    WeirError::Internal(format!("numbering distinct-count groups: {e}"))
}

fn datafusion_error(e: datafusion::error::DataFusionError) -> WeirError {
    WeirError::Internal(format!("numbering distinct-count groups: {e}"))
}

/// `rows` decoded by `converter` into columns of the types of `fields`: the row format
/// gives a dictionary's values, not the dictionary, so those are cast back.
fn decode<'a>(
    converter: &RowConverter,
    rows: impl IntoIterator<Item = Row<'a>>,
    fields: &[FieldRef],
) -> Result<Vec<ArrayRef>> {
    let columns = converter.convert_rows(rows).map_err(arrow_error)?;
    columns
        .into_iter()
        .zip(fields)
        .map(
            |(column, field)| match column.data_type() == field.data_type() {
                true => Ok(column),
                false => cast(&column, field.data_type()).map_err(arrow_error),
            },
        )
        .collect()
}

/// A process-local group number, with the stable hash of the group's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct GroupId {
    pub number: u64,
    pub hash: u64,
}

/// The groups that have pairs, by row-encoded key, and their keys by number.
#[derive(Debug, Default)]
pub(super) struct GroupIds {
    ids: HashMap<Arc<[u8]>, GroupId>,
    keys: HashMap<u64, Arc<[u8]>>,
    next: u64,
}

impl GroupIds {
    pub fn get(&self, key: &[u8]) -> Option<GroupId> {
        self.ids.get(key).copied()
    }

    pub fn get_or_insert(&mut self, key: &[u8]) -> GroupId {
        if let Some(id) = self.ids.get(key) {
            return *id;
        }
        let id = GroupId {
            number: self.next,
            hash: stable_hash(key),
        };
        self.next += 1;
        let key: Arc<[u8]> = key.into();
        self.keys.insert(id.number, Arc::clone(&key));
        self.ids.insert(key, id);
        id
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<GroupId> {
        let id = self.ids.remove(key)?;
        self.keys.remove(&id.number);
        Some(id)
    }

    /// The row-encoded key of group `number`.
    fn key(&self, number: u64) -> Option<&[u8]> {
        self.keys.get(&number).map(|key| key.as_ref())
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.ids.keys().map(|k| k.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Bytes held, roughly: the keys, their allocations' headers and the tables' slots.
    pub fn memory(&self) -> usize {
        let keys: usize = self.ids.keys().map(|k| k.len() + 16).sum();
        keys + self.ids.capacity() * (std::mem::size_of::<(Arc<[u8]>, GroupId)>() + 1)
            + self.keys.capacity() * (std::mem::size_of::<(u64, Arc<[u8]>)>() + 1)
    }
}

/// The group keys of a batch's rows and each row's group number.
#[derive(Debug)]
pub struct BatchGroups {
    /// The group key columns of the rows.
    pub(super) columns: Vec<ArrayRef>,
    /// Each row's group.
    pub(super) of_row: Vec<GroupId>,
}

impl BatchGroups {
    /// Each row's group number.
    pub fn numbers(&self) -> UInt64Array {
        UInt64Array::from_iter_values(self.of_row.iter().map(|group| group.number))
    }
}

/// The groups a batch closed.
#[derive(Debug)]
pub struct ClosedGroups {
    /// Their numbers.
    pub(super) numbers: HashSet<u64>,
    /// Their group key columns.
    keys: Vec<ArrayRef>,
    rows: usize,
}

impl ClosedGroups {
    /// No group, for pair sets of `schema`.
    pub(super) fn none(schema: &SchemaRef) -> Self {
        let value_column = schema.fields().len() - 1;
        Self {
            numbers: HashSet::new(),
            keys: schema.fields()[..value_column]
                .iter()
                .map(|f| arrow::array::new_empty_array(f.data_type()))
                .collect(),
            rows: 0,
        }
    }

    /// How many groups closed.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The groups as rows of a pair set of `schema` (the group keys, then the value) whose
    /// value is null: the delete rows that remove each group's pairs.
    pub(super) fn as_pairs(&self, schema: &SchemaRef) -> Result<RecordBatch> {
        let value_column = schema.fields().len() - 1;
        let mut columns = self.keys.clone();
        columns.push(new_null_array(
            schema.field(value_column).data_type(),
            self.rows,
        ));
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
            .map_err(arrow_error)
    }
}

/// The numbered groups of one aggregation; see the module docs.
#[derive(Debug, Default)]
pub struct GroupNumbers {
    ids: RwLock<GroupIds>,
}

impl GroupNumbers {
    /// Numbers the groups of `num_rows` rows whose group key columns are `columns`, encoded by
    /// `converter` (a converter for those columns' types); groups not seen before get new
    /// numbers.
    ///
    /// A batch has far fewer groups than rows: its distinct groups are found column-wise by
    /// DataFusion's [`GroupValues`](datafusion::physical_plan::aggregates::group_values::GroupValues)
    /// (as its hash aggregation finds them), and only those are
    /// row-encoded and looked up.
    pub fn number(
        &self,
        converter: &RowConverter,
        columns: Vec<ArrayRef>,
        num_rows: usize,
    ) -> Result<BatchGroups> {
        if columns.is_empty() {
            // A global aggregate's one group has the empty key.
            let id = self.ids_of(&[&[][..]])[0];
            return Ok(BatchGroups {
                columns,
                of_row: vec![id; num_rows],
            });
        }
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("key_{i}"), c.data_type().clone(), true))
            .collect();
        let mut interner = new_group_values(Arc::new(Schema::new(fields)), &GroupOrdering::None)
            .map_err(datafusion_error)?;
        let mut of_row_local = Vec::with_capacity(num_rows);
        interner
            .intern(&columns, &mut of_row_local)
            .map_err(datafusion_error)?;
        let distinct = interner
            .emit(EmitTo::All)
            .map_err(datafusion_error)?
            .into_iter()
            .zip(&columns)
            .map(
                |(keys, column)| match keys.data_type() == column.data_type() {
                    true => Ok(keys),
                    false => cast(&keys, column.data_type()),
                },
            )
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(arrow_error)?;
        let keys = converter.convert_columns(&distinct).map_err(arrow_error)?;
        let keys: Vec<&[u8]> = keys.iter().map(|row| row.data()).collect();
        let ids = self.ids_of(&keys);
        let of_row = of_row_local.into_iter().map(|local| ids[local]).collect();
        Ok(BatchGroups { columns, of_row })
    }

    /// The groups of `keys` (row-encoded), numbering those not seen before.
    fn ids_of(&self, keys: &[&[u8]]) -> Vec<GroupId> {
        let found: Vec<Option<GroupId>> = {
            let known = self.ids.read().unwrap_or_else(|p| p.into_inner());
            keys.iter().map(|key| known.get(key)).collect()
        };
        if found.iter().all(Option::is_some) {
            return found.into_iter().flatten().collect();
        }
        let mut known = self.ids.write().unwrap_or_else(|p| p.into_inner());
        found
            .into_iter()
            .zip(keys)
            .map(|(id, key)| id.unwrap_or_else(|| known.get_or_insert(key)))
            .collect()
    }

    /// The key columns, of the types of `fields`, of the groups numbered `numbers`, decoded
    /// by `converter` (the one their rows were numbered with, or one for the same types).
    pub fn keys_of(
        &self,
        converter: &RowConverter,
        numbers: &UInt64Array,
        fields: &[FieldRef],
    ) -> Result<Vec<ArrayRef>> {
        let ids = self.ids.read().unwrap_or_else(|p| p.into_inner());
        let parser = converter.parser();
        let keys = numbers
            .values()
            .iter()
            .map(|&number| {
                ids.key(number).map(|key| parser.parse(key)).ok_or_else(|| {
                    WeirError::Internal(format!("no distinct-count group numbered {number}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        decode(converter, keys, fields)
    }

    /// Removes the groups `split` says are closed (it returns a batch's `(kept, closed)`
    /// rows). `schema` is a pair set's: the group keys, then the value.
    pub fn close(
        &self,
        schema: &SchemaRef,
        split: &impl Fn(&RecordBatch) -> Result<(RecordBatch, RecordBatch)>,
    ) -> Result<ClosedGroups> {
        let mut ids = self.ids.write().unwrap_or_else(|p| p.into_inner());
        if ids.is_empty() {
            return Ok(ClosedGroups::none(schema));
        }
        let value_column = schema.fields().len() - 1;
        let converter = key_converter(schema, value_column)?;
        let keys: Vec<Box<[u8]>> = ids.keys().map(Box::from).collect();
        let mut columns = if value_column == 0 {
            Vec::new()
        } else {
            let parser = converter.parser();
            let rows = keys.iter().map(|key| parser.parse(key));
            decode(&converter, rows, &schema.fields()[..value_column])?
        };
        columns.push(new_null_array(
            schema.field(value_column).data_type(),
            keys.len(),
        ));
        let options = RecordBatchOptions::new().with_row_count(Some(keys.len()));
        let groups = RecordBatch::try_new_with_options(Arc::clone(schema), columns, &options)
            .map_err(arrow_error)?;
        let (_, closed) = split(&groups)?;
        if closed.num_rows() == 0 {
            return Ok(ClosedGroups::none(schema));
        }
        let keys = if value_column == 0 {
            vec![Box::from(&[][..])]
        } else {
            let rows = converter
                .convert_columns(&closed.columns()[..value_column])
                .map_err(arrow_error)?;
            rows.iter().map(|row| Box::from(row.data())).collect()
        };
        let numbers = keys
            .iter()
            .filter_map(|key| ids.remove(key))
            .map(|id| id.number)
            .collect();
        Ok(ClosedGroups {
            numbers,
            keys: closed.columns()[..value_column].to_vec(),
            rows: closed.num_rows(),
        })
    }

    /// Bytes held.
    pub fn memory(&self) -> usize {
        self.ids.read().unwrap_or_else(|p| p.into_inner()).memory()
    }
}
