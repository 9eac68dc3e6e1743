//! Rows between Arrow in Rust and `pyarrow`: an answer's batches as one `pyarrow.Table`, and
//! a table from Python made to fit a memory source's columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options, concat_batches};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow_pyarrow::{IntoPyArrow, Table};
use pyo3::prelude::*;

use crate::WeirError;

/// `batches` as a `pyarrow.Table` (the buffers are shared, not copied). With no batches, a
/// table of `schema`'s columns and no rows.
pub fn to_pyarrow_table(
    py: Python<'_>,
    batches: Vec<RecordBatch>,
    schema: Option<SchemaRef>,
) -> PyResult<Py<PyAny>> {
    let schema = batches
        .first()
        .map(RecordBatch::schema)
        .or(schema)
        .unwrap_or_else(|| Arc::new(Schema::empty()));
    // Batches of one plan share a schema; one that differs only in metadata is taken as is.
    let batches = batches
        .into_iter()
        .map(|batch| batch.with_schema(Arc::clone(&schema)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WeirError::new_err(e.to_string()))?;
    let table = Table::try_new(batches, schema).map_err(|e| WeirError::new_err(e.to_string()))?;
    Ok(table.into_pyarrow(py)?.unbind())
}

/// The rows of `table` as one batch of `target`'s schema: columns are matched by name
/// (exactly, else ignoring case), cast to the target's types, and checked for nulls where the
/// target allows none. The error says which column does not fit and why.
pub fn conform(source: &str, table: Table, target: &SchemaRef) -> Result<RecordBatch, String> {
    let (batches, schema) = table.into_inner();
    let given = concat_batches(&schema, &batches).map_err(|e| e.to_string())?;
    let mut used = vec![false; schema.fields().len()];
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        // By exact name; else by name ignoring case, when that names one column only and
        // no other target column has it exactly.
        let index = schema.index_of(field.name()).ok().or_else(|| {
            let mut alike = schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| f.name().eq_ignore_ascii_case(field.name()))
                .map(|(i, _)| i);
            let only = alike.next().filter(|_| alike.next().is_none())?;
            let taken = target
                .fields()
                .iter()
                .any(|t| t.name() == schema.field(only).name());
            (!taken).then_some(only)
        });
        let Some(index) = index else {
            return Err(format!(
                "'{source}' has a column '{}' ({}) that the data lacks; the data has: {}",
                field.name(),
                field.data_type(),
                column_list(&schema)
            ));
        };
        used[index] = true;
        let column = given.column(index);
        let column = cast_exactly(column, field.data_type()).map_err(|e| {
            format!(
                "column '{}' of the data is {}, which does not cast to {} ('{source}'): {e}",
                schema.field(index).name(),
                column.data_type(),
                field.data_type()
            )
        })?;
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(format!(
                "column '{}' of '{source}' is NOT NULL but the data has {} nulls in it",
                field.name(),
                column.null_count()
            ));
        }
        columns.push(column);
    }
    if let Some(extra) = used.iter().position(|used| !used) {
        return Err(format!(
            "the data has a column '{}' that '{source}' does not; its columns are: {}",
            schema.field(extra).name(),
            column_list(target)
        ));
    }
    RecordBatch::try_new(Arc::clone(target), columns).map_err(|e| e.to_string())
}

/// `array` as `to`, refusing what would change a value rather than only its type: a value
/// that does not convert (`'soon'` as a number, an overflow) and, into an integer or a
/// decimal, a number that would lose digits (1.7 into an INT). Never a silent null.
pub fn cast_exactly(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, String> {
    if array.data_type() == to {
        return Ok(Arc::clone(array));
    }
    let strict = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let cast = cast_with_options(array, to, &strict).map_err(|e| e.to_string())?;
    let exact_target =
        to.is_integer() || matches!(to, DataType::Decimal128(..) | DataType::Decimal256(..));
    if exact_target && array.data_type().is_numeric() {
        let back =
            cast_with_options(&cast, array.data_type(), &strict).map_err(|e| e.to_string())?;
        if back.as_ref() != array.as_ref() {
            return Err(format!("a value would lose digits as {to}"));
        }
    }
    Ok(cast)
}

fn column_list(schema: &Schema) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    if names.is_empty() {
        "no columns".to_string()
    } else {
        names.join(", ")
    }
}
