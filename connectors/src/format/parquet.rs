//! Apache Parquet: columns are matched to the schema by name and cast where the declared type
//! differs; a value that cannot be cast is a bad record (row number in the file). Only the
//! columns the schema names are decoded, so reading some of a source's columns decodes just
//! those.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, new_null_array,
};
use arrow::compute::{CastOptions, cast_with_options, filter_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::util::display::array_value_to_string;
use bytes::Bytes;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

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
    // Only the file's columns that `schema` names are decoded.
    let reader = match ParquetRecordBatchReaderBuilder::try_new(bytes).and_then(|b| {
        let roots = b.parquet_schema().root_schema().get_fields().iter();
        let wanted = roots
            .enumerate()
            .filter(|(_, field)| schema.index_of(field.name()).is_ok())
            .map(|(i, _)| i);
        let mask = ProjectionMask::roots(b.parquet_schema(), wanted);
        b.with_projection(mask).with_batch_size(BATCH_SIZE).build()
    }) {
        Ok(reader) => reader,
        Err(e) => {
            bad.reject(whole_file(
                location,
                format!("not a readable parquet file: {e}"),
            ))?;
            return Ok(Vec::new());
        }
    };
    let mut batches = Vec::new();
    let mut first_row = 0;
    for batch in reader {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                bad.reject(whole_file(location, format!("corrupt parquet data: {e}")))?;
                return Ok(Vec::new());
            }
        };
        let rows = batch.num_rows();
        match conform(&batch, schema, location, first_row, bad)? {
            Conformed::Batch(b) => batches.push(b),
            Conformed::FileRejected => return Ok(Vec::new()),
        }
        first_row += rows;
    }
    Ok(batches)
}

enum Conformed {
    Batch(RecordBatch),
    FileRejected,
}

/// Matches `batch` to `schema` by column name, casting; rows with a value that cannot be
/// cast, or a null in a NOT NULL column, are rejected.
fn conform(
    batch: &RecordBatch,
    schema: &SchemaRef,
    location: &str,
    first_row: usize,
    bad: &mut BadRecords,
) -> Result<Conformed> {
    let safe = CastOptions {
        safe: true,
        ..Default::default()
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    let mut keep: Option<Vec<bool>> = None;
    for field in schema.fields() {
        let Some(input) = batch.column_by_name(field.name()) else {
            if field.is_nullable() {
                columns.push(new_null_array(field.data_type(), batch.num_rows()));
                continue;
            }
            bad.reject(whole_file(
                location,
                format!(
                    "the file has no column '{}', declared NOT NULL",
                    field.name()
                ),
            ))?;
            return Ok(Conformed::FileRejected);
        };
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
            bad.reject(BadRecord {
                location: format!("{location} row {}", first_row + row + 1),
                reason,
                record: array_value_to_string(input, row).unwrap_or_default(),
            })?;
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
    Ok(Conformed::Batch(conformed))
}

fn whole_file(location: &str, reason: String) -> BadRecord {
    BadRecord {
        location: location.to_string(),
        reason,
        record: String::new(),
    }
}
