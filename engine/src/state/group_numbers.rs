//! [`GroupNumbers`]: the groups of one aggregation that its `count(DISTINCT)` pairs refer to,
//! numbered once for all of the aggregation's [`PairSet`](super::PairSet)s.
//!
//! A batch's rows are numbered once ([`GroupNumbers::number`]), whatever the number of
//! distinct counts; a batch's closed groups are found once ([`GroupNumbers::close`]) and
//! every pair set drops their pairs. Numbers are never reused, so a number means one group
//! for the life of the process, even across a failed batch.

use std::sync::{Arc, RwLock};

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use arrow::datatypes::SchemaRef;
use arrow::row::RowConverter;
use hashbrown::{HashMap, HashSet};

use super::delta::key_converter;
use super::pair_table::stable_hash;
use crate::error::{Result, WeirError};

fn arrow_error(e: arrow::error::ArrowError) -> WeirError {
    WeirError::Internal(format!("numbering distinct-count groups: {e}"))
}

/// A process-local group number, with the stable hash of the group's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct GroupId {
    pub number: u64,
    pub hash: u64,
}

/// The groups that have pairs, by row-encoded key.
#[derive(Debug, Default)]
pub(super) struct GroupIds {
    ids: HashMap<Box<[u8]>, GroupId>,
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
        self.ids.insert(key.into(), id);
        id
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<GroupId> {
        self.ids.remove(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.ids.keys().map(|k| k.as_ref())
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Bytes held, roughly: the keys, their allocations' headers and the table's slots.
    pub fn memory(&self) -> usize {
        let keys: usize = self.ids.keys().map(|k| k.len() + 16).sum();
        keys + self.ids.capacity() * (std::mem::size_of::<(Box<[u8]>, GroupId)>() + 1)
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
    pub fn number(
        &self,
        converter: &RowConverter,
        columns: Vec<ArrayRef>,
        num_rows: usize,
    ) -> Result<BatchGroups> {
        let rows = if columns.is_empty() {
            None
        } else {
            Some(converter.convert_columns(&columns).map_err(arrow_error)?)
        };
        let key = |i: usize| rows.as_ref().map_or(&[][..], |rows| rows.row(i).data());
        let unknown = GroupId {
            number: u64::MAX,
            hash: 0,
        };
        let mut of_row = Vec::with_capacity(num_rows);
        let mut missing = Vec::new();
        {
            let ids = self.ids.read().unwrap_or_else(|p| p.into_inner());
            let mut previous: Option<(&[u8], GroupId)> = None;
            for i in 0..num_rows {
                let row = key(i);
                // Rows of one group often come together (one window, in event-time order).
                let id = match previous {
                    Some((last, id)) if last == row => id,
                    _ => match ids.get(row) {
                        Some(id) => id,
                        None => {
                            missing.push(i);
                            unknown
                        }
                    },
                };
                previous = (id != unknown).then_some((row, id));
                of_row.push(id);
            }
        }
        if !missing.is_empty() {
            let mut ids = self.ids.write().unwrap_or_else(|p| p.into_inner());
            for i in missing {
                of_row[i] = ids.get_or_insert(key(i));
            }
        }
        Ok(BatchGroups { columns, of_row })
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
            converter
                .convert_rows(keys.iter().map(|key| parser.parse(key)))
                .map_err(arrow_error)?
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
