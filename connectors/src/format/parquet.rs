//! Apache Parquet: columns are matched to the schema by name and cast where the declared type
//! differs; a value that cannot be cast is a bad record (row number in the file). Only the
//! columns the schema names are decoded, so reading some of a source's columns decodes just
//! those.
//!
//! A whole file can be bad: unreadable (truncated, not parquet), damaged part way (the rows
//! before the damage are kept), or not matching the source (a declared column missing, or of a
//! type that cannot be cast). Such a file follows `on_error` as one rejection that carries the
//! rows it held, from the file's footer, so progress counts the rows lost and the file.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions};
use arrow::compute::{CastOptions, can_cast_types, cast_with_options, filter_record_batch};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::util::display::array_value_to_string;
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};

use super::BATCH_SIZE;
use super::bad_records::{BadRecord, BadRecords};
use crate::error::{ConnectorError, Result};

pub(super) fn infer_schema(bytes: Bytes, location: &str) -> Result<SchemaRef> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| ConnectorError::BadRecord {
            location: location.to_string(),
            reason: format!("not a readable parquet file: {e}"),
        })?;
    Ok(Arc::clone(builder.schema()))
}

pub(super) fn decode(
    bytes: Bytes,
    schema: &SchemaRef,
    location: &str,
    bad: &mut BadRecords,
) -> Result<Vec<RecordBatch>> {
    let metadata = match ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::default()) {
        Ok(metadata) => metadata,
        Err(e) => {
            let reason = format!("not a readable parquet file ({e}); none of its rows were read");
            bad.reject(BadRecord::file(location, reason, None))?;
            return Ok(Vec::new());
        }
    };
    let held = u64::try_from(metadata.metadata().file_metadata().num_rows()).unwrap_or(0);
    if let Err(mismatch) = check_columns(metadata.schema(), schema) {
        let reason = format!("{mismatch}; none of its {held} rows were read");
        bad.reject(BadRecord::file(location, reason, Some(held)))?;
        return Ok(Vec::new());
    }
    // Only the file's columns that `schema` names are decoded.
    let roots = metadata.parquet_schema().root_schema().get_fields().iter();
    let wanted = roots
        .enumerate()
        .filter(|(_, field)| schema.index_of(field.name()).is_ok())
        .map(|(i, _)| i);
    let mask = ProjectionMask::roots(metadata.parquet_schema(), wanted);
    // Row group by row group, so that damage in one keeps the rows of those before it, as
    // Spark's `ignoreCorruptFiles` keeps what it read; the rest is counted.
    let mut batches = Vec::new();
    let mut first_row = 0;
    for group in 0..metadata.metadata().num_row_groups() {
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(bytes.clone(), metadata.clone())
                .with_projection(mask.clone())
                .with_row_groups(vec![group])
                .with_batch_size(BATCH_SIZE)
                .build();
        let damage = match reader {
            Err(e) => Some(e.to_string()),
            Ok(mut reader) => loop {
                match reader.next() {
                    None => break None,
                    Some(Err(e)) => break Some(e.to_string()),
                    Some(Ok(batch)) => {
                        let rows = batch.num_rows();
                        batches.push(conform(&batch, schema, location, first_row, bad)?);
                        first_row += rows;
                    }
                }
            },
        };
        if let Some(e) = damage {
            let lost = held.saturating_sub(first_row as u64);
            let reason = format!(
                "corrupt parquet data after row {first_row} ({e}); its last {lost} rows were not \
                 read"
            );
            bad.reject(BadRecord::file(location, reason, Some(lost)))?;
            return Ok(batches);
        }
    }
    Ok(batches)
}

/// Whether a file with columns `file` can be read as `declared` (the columns a query reads):
/// every declared column is in the file (by name) with a type that casts to the declared one. A missing column is not read
/// as nulls (as Spark does): it usually means a file of another dataset or a renamed column,
/// and it follows `on_error` like any other input that does not match the source.
fn check_columns(file: &Schema, declared: &Schema) -> std::result::Result<(), String> {
    for field in declared.fields() {
        let Ok(found) = file.field_with_name(field.name()) else {
            let columns: Vec<&str> = file.fields().iter().map(|f| f.name().as_str()).collect();
            return Err(format!(
                "the file has no column '{}' (its columns: {})",
                field.name(),
                columns.join(", ")
            ));
        };
        if !can_cast_types(found.data_type(), field.data_type()) {
            return Err(format!(
                "column '{}' is {} in the file and cannot be read as the declared {}",
                field.name(),
                found.data_type(),
                field.data_type()
            ));
        }
    }
    Ok(())
}

/// Matches `batch` (with the columns [`check_columns`] found) to `schema` by column name,
/// casting; rows with a value that cannot be cast, or a null in a NOT NULL column, are
/// rejected.
fn conform(
    batch: &RecordBatch,
    schema: &SchemaRef,
    location: &str,
    first_row: usize,
    bad: &mut BadRecords,
) -> Result<RecordBatch> {
    let safe = CastOptions {
        safe: true,
        ..Default::default()
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    let mut keep: Option<Vec<bool>> = None;
    for field in schema.fields() {
        let input = batch.column_by_name(field.name()).ok_or_else(|| {
            ConnectorError::Internal(format!(
                "column '{}' of {location} vanished after its check",
                field.name()
            ))
        })?;
        let output = if input.data_type() == field.data_type() {
            Arc::clone(input)
        } else {
            cast_with_options(input, field.data_type(), &safe).map_err(|e| {
                ConnectorError::Config(format!(
                    "column '{}' of {location} is {} and cannot be read as the declared {}: {e}",
                    field.name(),
                    input.data_type(),
                    field.data_type()
                ))
            })?
        };
        for row in 0..batch.num_rows() {
            let lost_in_cast = input.is_valid(row) && output.is_null(row);
            let null_in_not_null = !field.is_nullable() && output.is_null(row);
            if !(lost_in_cast || null_in_not_null) {
                continue;
            }
            let reason = if lost_in_cast {
                format!(
                    "column '{}': value cannot be cast from {} to {}",
                    field.name(),
                    input.data_type(),
                    field.data_type()
                )
            } else {
                format!("column '{}' is null but declared NOT NULL", field.name())
            };
            bad.reject(BadRecord::record(
                format!("{location} row {}", first_row + row + 1),
                reason,
                array_value_to_string(input, row).unwrap_or_default(),
            ))?;
            keep.get_or_insert_with(|| vec![true; batch.num_rows()])[row] = false;
        }
        columns.push(output);
    }
    // Rejected rows may hold nulls in NOT NULL columns: assemble and filter on a nullable
    // view of the schema, then restore the declared one.
    let loose: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    // With no column decoded, the batch still has its rows.
    let rows = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    let loose = Arc::new(arrow::datatypes::Schema::new(loose));
    let mut conformed = RecordBatch::try_new_with_options(loose, columns, &rows)
        .map_err(|e| ConnectorError::arrow(format!("reading {location}"), e))?;
    if let Some(keep) = keep {
        conformed = filter_record_batch(&conformed, &BooleanArray::from(keep))
            .map_err(|e| ConnectorError::arrow(format!("dropping bad rows of {location}"), e))?;
    }
    let rows = RecordBatchOptions::new().with_row_count(Some(conformed.num_rows()));
    let columns = conformed.columns().to_vec();
    let conformed = RecordBatch::try_new_with_options(Arc::clone(schema), columns, &rows)
        .map_err(|e| ConnectorError::arrow(format!("reading {location}"), e))?;
    Ok(conformed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    use super::*;
    use crate::format::{Extent, OnError};

    /// A file of `rows` rows (`id`, `name`) in row groups of 100.
    fn file(rows: i64) -> Bytes {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows)),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("n{i}")),
                )),
            ],
        )
        .unwrap();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(100))
            .build();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, schema, Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        Bytes::from(out)
    }

    fn declared(columns: &[(&str, DataType)]) -> SchemaRef {
        let fields: Vec<_> = columns
            .iter()
            .map(|(name, t)| Field::new(*name, t.clone(), true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    fn rows(batches: &[RecordBatch]) -> usize {
        batches.iter().map(RecordBatch::num_rows).sum()
    }

    #[test]
    fn a_missing_column_follows_on_error_and_counts_the_files_rows() {
        let schema = declared(&[("id", DataType::Int64), ("price", DataType::Int64)]);
        let mut fail = BadRecords::new(OnError::Fail);
        let err = decode(file(150), &schema, "d/f.parquet", &mut fail)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "bad record at d/f.parquet: the file has no column 'price' (its columns: id, name); \
             none of its 150 rows were read; set on_error = 'skip' or 'dead_letter' to go past \
             malformed records"
        );
        let mut skip = BadRecords::new(OnError::Skip);
        let batches = decode(file(150), &schema, "d/f.parquet", &mut skip).unwrap();
        assert_eq!(rows(&batches), 0);
        assert_eq!(skip.rejected()[0].extent, Extent::File { rows: Some(150) });
    }

    #[test]
    fn a_column_of_a_type_that_cannot_be_cast_rejects_the_file() {
        let schema = declared(&[("name", DataType::Struct(Vec::<Field>::new().into()))]);
        let mut skip = BadRecords::new(OnError::Skip);
        let batches = decode(file(10), &schema, "f.parquet", &mut skip).unwrap();
        assert_eq!(rows(&batches), 0);
        assert_eq!(
            skip.rejected()[0].reason,
            "column 'name' is Utf8 in the file and cannot be read as the declared Struct(); \
             none of its 10 rows were read"
        );
    }

    #[test]
    fn a_truncated_file_is_one_bad_file_of_unknown_rows() {
        let whole = file(150);
        let truncated = whole.slice(..whole.len() / 2);
        let schema = declared(&[("id", DataType::Int64)]);
        let mut skip = BadRecords::new(OnError::Skip);
        let batches = decode(truncated, &schema, "f.parquet", &mut skip).unwrap();
        assert_eq!(rows(&batches), 0);
        let rejected = &skip.rejected()[0];
        assert_eq!(rejected.extent, Extent::File { rows: None });
        assert!(
            rejected.reason.starts_with("not a readable parquet file"),
            "{}",
            rejected.reason
        );
    }

    #[test]
    fn damage_part_way_keeps_the_rows_before_it_and_counts_the_rest() {
        let whole = file(250);
        let metadata = ArrowReaderMetadata::load(&whole, ArrowReaderOptions::default())
            .unwrap()
            .metadata()
            .clone();
        // Overwrite the second row group's column chunks (headers and pages) with garbage.
        let group = metadata.row_group(1);
        let first = group.column(0).byte_range().0 as usize;
        let (start, length) = group.column(1).byte_range();
        let mut damaged = whole.to_vec();
        damaged[first..(start + length) as usize].fill(0xFF);
        let schema = declared(&[("id", DataType::Int64), ("name", DataType::Utf8)]);
        let mut skip = BadRecords::new(OnError::Skip);
        let batches = decode(Bytes::from(damaged), &schema, "f.parquet", &mut skip).unwrap();
        assert_eq!(rows(&batches), 100);
        let rejected = &skip.rejected()[0];
        assert_eq!(rejected.extent, Extent::File { rows: Some(150) });
        assert!(
            rejected
                .reason
                .starts_with("corrupt parquet data after row 100"),
            "{}",
            rejected.reason
        );
    }
}
