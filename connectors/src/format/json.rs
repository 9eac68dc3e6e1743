//! Newline-delimited JSON: one object per line; fields not in the schema are ignored, missing
//! fields are null.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::json::ReaderBuilder;
use bytes::Bytes;

use super::BATCH_SIZE;
use super::bad_records::{BadRecord, BadRecords};
use crate::error::{ConnectorError, Result};

/// Largest part of a bad record kept in the dead-letter output.
pub(super) const MAX_RECORD_TEXT: usize = 64 * 1024;

pub(super) fn infer_schema(bytes: Bytes, location: &str) -> Result<SchemaRef> {
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
            Err(reason) => bad.reject(BadRecord {
                location: format!("{location}:{}", index + 1),
                reason: reason.to_string(),
                record: record_text(line),
            })?,
        }
    }
    decode_all(&good, schema)
        .map_err(|e| ConnectorError::arrow(format!("decoding the good records of {location}"), e))
}

fn decode_all(
    bytes: &[u8],
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    let mut decoder = ReaderBuilder::new(Arc::clone(schema))
        .with_batch_size(BATCH_SIZE)
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};
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
}
