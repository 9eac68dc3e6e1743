//! Newline-delimited JSON: one object per line; fields not in the schema are ignored, missing
//! fields are null.
//!
//! Values are not changed silently. A top-level integer column takes only a whole number in
//! its range (or a string holding one): `1.5`, `1e3` or `-9223372036854775809` for a BIGINT
//! is a bad record, as Spark's JSON reader rejects any token but an integer for a long, where
//! arrow's decoder alone would truncate or clamp it. (Integers inside structs and lists are
//! still arrow's: a fraction there is truncated.) A number or boolean read into a text column keeps
//! its text, as in Spark. A UTF-8 byte-order mark before the first record is skipped.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::ReaderBuilder;
use arrow::json::writer::{LineDelimited, WriterBuilder};
use arrow::util::display::array_value_to_string;
use bytes::Bytes;

use super::BATCH_SIZE;
use super::bad_records::{BadRecord, BadRecords};
use crate::error::{ConnectorError, Result};

/// Largest part of a bad record kept in the dead-letter output.
pub(super) const MAX_RECORD_TEXT: usize = 64 * 1024;

pub(super) fn infer_schema(bytes: Bytes, location: &str) -> Result<SchemaRef> {
    let bytes = without_bom(bytes);
    let (schema, _) =
        arrow::json::reader::infer_json_schema_from_seekable(Cursor::new(bytes), Some(1000))
            .map_err(|e| {
                ConnectorError::arrow(format!("cannot infer a JSON schema from {location}"), e)
            })?;
    Ok(Arc::new(schema))
}

pub(super) fn decode(
    bytes: Bytes,
    schema: &SchemaRef,
    location: &str,
    bad: &mut BadRecords,
) -> Result<Vec<RecordBatch>> {
    let bytes = without_bom(bytes);
    if let Ok(batches) = decode_all(&bytes, schema) {
        return Ok(batches);
    }
    // Slow path, taken only for a file with a malformed record: find each one by line.
    let mut good = Vec::with_capacity(bytes.len());
    for (index, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match decode_all(line, schema) {
            Ok(_) => {
                good.extend_from_slice(line);
                good.push(b'\n');
            }
            Err(reason) => bad.reject(BadRecord::record(
                format!("{location}:{}", index + 1),
                reason.to_string(),
                record_text(line),
            ))?,
        }
    }
    decode_all(&good, schema)
        .map_err(|e| ConnectorError::arrow(format!("decoding the good records of {location}"), e))
}

/// `bytes` without a leading UTF-8 byte-order mark.
pub(super) fn without_bom(bytes: Bytes) -> Bytes {
    match bytes.strip_prefix(BOM) {
        Some(_) => bytes.slice(BOM.len()..),
        None => bytes,
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn decode_all(bytes: &[u8], schema: &SchemaRef) -> Result<Vec<RecordBatch>, ArrowError> {
    let Some(as_text) = integers_as_text(schema) else {
        return decode_as(bytes, schema);
    };
    decode_as(bytes, &as_text)?
        .into_iter()
        .map(|batch| parse_integers(batch, schema))
        .collect()
}

/// `schema` with its top-level integer columns as text, or `None` when it has none.
fn integers_as_text(schema: &SchemaRef) -> Option<SchemaRef> {
    if !schema.fields().iter().any(|f| f.data_type().is_integer()) {
        return None;
    }
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type().is_integer() {
            true => f.as_ref().clone().with_data_type(DataType::Utf8),
            false => f.as_ref().clone(),
        })
        .collect();
    Some(Arc::new(Schema::new(fields)))
}

/// Turns the text of `batch`'s integer columns into integers of `schema`, strictly: the
/// first value that is not a whole number in range is an error naming it.
fn parse_integers(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let mut columns = batch.columns().to_vec();
    for (column, field) in columns.iter_mut().zip(schema.fields()) {
        if !field.data_type().is_integer() {
            continue;
        }
        let safe = CastOptions {
            safe: true,
            ..Default::default()
        };
        let parsed = cast_with_options(column, field.data_type(), &safe)?;
        if parsed.null_count() != column.null_count() {
            let row = (0..column.len())
                .find(|&r| column.is_valid(r) && parsed.is_null(r))
                .unwrap_or_default();
            return Err(ArrowError::JsonError(format!(
                "column '{}': {} is not a whole number that fits {}",
                field.name(),
                array_value_to_string(column, row)?,
                field.data_type()
            )));
        }
        *column = parsed;
    }
    RecordBatch::try_new(Arc::clone(schema), columns)
}

fn decode_as(bytes: &[u8], schema: &SchemaRef) -> Result<Vec<RecordBatch>, ArrowError> {
    let mut decoder = ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(BATCH_SIZE)
        .with_coerce_primitive(true)
        .build_decoder()?;
    let mut batches = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let consumed = decoder.decode(rest)?;
        rest = &rest[consumed..];
        if let Some(batch) = decoder.flush()? {
            batches.push(batch);
        }
    }
    if let Some(batch) = decoder.flush()? {
        batches.push(batch);
    }
    Ok(batches)
}

pub(super) fn record_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_RECORD_TEXT)]);
    text.trim_end_matches(['\r', '\n']).to_string()
}

/// Each row of `batch` as a JSON object (nulls written as `null`), as the sinks that write
/// JSON (`sink` names the one asking, for errors) encode them.
pub(crate) fn json_lines(batch: &RecordBatch, sink: &str) -> Result<Vec<Vec<u8>>> {
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, LineDelimited>(Vec::new());
    writer
        .write(batch)
        .and_then(|()| writer.finish())
        .map_err(|e| ConnectorError::arrow(format!("encoding rows as JSON for {sink}"), e))?;
    let text = writer.into_inner();
    // INVARIANT: the JSON writer escapes newlines inside values, so lines are rows.
    let lines: Vec<Vec<u8>> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    if lines.len() != batch.num_rows() {
        return Err(ConnectorError::Internal(format!(
            "{} rows encoded as {} JSON lines",
            batch.num_rows(),
            lines.len()
        )));
    }
    Ok(lines)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::datatypes::Field;
    use arrow::util::pretty::pretty_format_batches;

    use super::*;
    use crate::format::OnError;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    const INPUT: &str = "{\"id\": 1, \"name\": \"a\"}\n{\"id\": \"x\"}\n\n{\"name\": \"no id\"}\n{\"id\": 4, \"extra\": true}\n";

    #[test]
    fn skip_drops_and_reports_each_bad_line() {
        let mut bad = BadRecords::new(OnError::Skip);
        let batches = decode(Bytes::from(INPUT), &schema(), "f.json", &mut bad).unwrap();
        let table = pretty_format_batches(&batches).unwrap().to_string();
        assert_eq!(
            table,
            "+----+------+\n| id | name |\n+----+------+\n| 1  | a    |\n| 4  |      |\n+----+------+"
        );
        let locations: Vec<_> = bad.rejected().iter().map(|r| r.location.as_str()).collect();
        assert_eq!(locations, ["f.json:2", "f.json:4"]);
        assert_eq!(bad.rejected()[0].record, "{\"id\": \"x\"}");
    }

    #[test]
    fn fail_names_file_and_line() {
        let mut bad = BadRecords::new(OnError::Fail);
        let err = decode(Bytes::from(INPUT), &schema(), "f.json", &mut bad)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("bad record at f.json:2: "), "{err}");
        assert!(err.contains("on_error = 'skip'"), "{err}");
    }

    #[test]
    fn integers_are_never_truncated_or_clamped() {
        let input = "{\"id\": 1.5}\n{\"id\": -9223372036854775809}\n{\"id\": 9223372036854775808}\n\
                     {\"id\": 1e3}\n{\"id\": true}\n{\"id\": -9223372036854775808, \"name\": 7}\n\
                     {\"id\": \"12\", \"name\": false}\n";
        let mut bad = BadRecords::new(OnError::Skip);
        let batches = decode(Bytes::from(input), &schema(), "f.json", &mut bad).unwrap();
        assert_eq!(
            pretty_format_batches(&batches).unwrap().to_string(),
            "+----------------------+-------+\n\
             | id                   | name  |\n\
             +----------------------+-------+\n\
             | -9223372036854775808 | 7     |\n\
             | 12                   | false |\n\
             +----------------------+-------+"
        );
        let rejected: Vec<_> = bad
            .rejected()
            .iter()
            .map(|r| format!("{} {}", r.location, r.reason))
            .collect();
        assert_eq!(
            rejected,
            [
                "f.json:1 Json error: column 'id': 1.5 is not a whole number that fits Int64",
                "f.json:2 Json error: column 'id': -9223372036854775809 is not a whole number that fits Int64",
                "f.json:3 Json error: column 'id': 9223372036854775808 is not a whole number that fits Int64",
                "f.json:4 Json error: column 'id': 1e3 is not a whole number that fits Int64",
                "f.json:5 Json error: column 'id': true is not a whole number that fits Int64",
            ]
        );
    }

    #[test]
    fn a_byte_order_mark_before_the_first_record_is_skipped() {
        let input = "\u{feff}{\"id\": 1, \"name\": \"a\"}\n{\"id\": 2}\n";
        let mut bad = BadRecords::new(OnError::Fail);
        let batches = decode(Bytes::from(input), &schema(), "f.json", &mut bad).unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
        let inferred = infer_schema(Bytes::from(input), "f.json").unwrap();
        assert_eq!(inferred.field(0).name(), "id");
    }
}
