//! Comma-separated values, with or without a header line: columns by the header's names
//! when it names the declared columns, else in schema order. A quoted field left open (the
//! file has an odd number of quotes) makes the line it opened on a bad record; the lines
//! after it are read.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;

use super::BATCH_SIZE;
use super::bad_records::{BadRecord, BadRecords};
use super::json::{record_text, without_bom};
use crate::error::{ConnectorError, Result};
use crate::options::ConnectorOptions;

/// Options of the csv format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Whether the first line holds column names (skipped when decoding).
    pub header: bool,
    /// The field delimiter.
    pub delimiter: u8,
}

impl CsvOptions {
    pub(super) fn from_options(options: &ConnectorOptions) -> Result<Self> {
        let header = options.boolean("header")?.unwrap_or(true);
        let delimiter = match options.get("delimiter") {
            None => b',',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some("\\t") => b'\t',
            Some(d) => return Err(options.bad_value("delimiter", d, "a single character")),
        };
        Ok(Self { header, delimiter })
    }

    pub(super) fn infer_schema(&self, bytes: Bytes, location: &str) -> Result<SchemaRef> {
        let bytes = without_bom(bytes);
        let format = arrow::csv::reader::Format::default()
            .with_header(self.header)
            .with_delimiter(self.delimiter);
        let (schema, _) = format
            .infer_schema(Cursor::new(bytes), Some(1000))
            .map_err(|e| {
                ConnectorError::arrow(format!("cannot infer a CSV schema from {location}"), e)
            })?;
        Ok(Arc::new(schema))
    }

    /// Decodes a file. With a header that names the declared columns in another order,
    /// columns are read by name, so values never land in the wrong column; a header with
    /// other names is read by position, as Spark does by default (`enforceSchema`) (logged
    /// at debug: it is often meant).
    pub(super) fn decode(
        &self,
        bytes: Bytes,
        schema: &SchemaRef,
        location: &str,
        bad: &mut BadRecords,
    ) -> Result<Vec<RecordBatch>> {
        let bytes = without_bom(bytes);
        let Some((file_schema, order)) = self.header_order(&bytes, schema, location) else {
            return self.decode_in_order(bytes, schema, location, bad);
        };
        let batches = self.decode_in_order(bytes, &file_schema, location, bad)?;
        batches
            .iter()
            .map(|b| {
                b.project(&order).map_err(|e| {
                    ConnectorError::arrow(format!("ordering the columns of {location}"), e)
                })
            })
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .map(|b| {
                RecordBatch::try_new(Arc::clone(schema), b.columns().to_vec()).map_err(|e| {
                    ConnectorError::arrow(format!("ordering the columns of {location}"), e)
                })
            })
            .collect()
    }

    /// When the header line names the declared columns in another order: the schema in the
    /// file's order, and for each declared column its position in the file.
    fn header_order(
        &self,
        bytes: &[u8],
        schema: &SchemaRef,
        location: &str,
    ) -> Option<(SchemaRef, Vec<usize>)> {
        if !self.header {
            return None;
        }
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(self.delimiter)
            .flexible(true)
            .from_reader(bytes);
        let mut header = ::csv::StringRecord::new();
        if !reader.read_record(&mut header).ok()? {
            return None;
        }
        let names: Vec<String> = header
            .iter()
            .map(|n| n.trim().trim_start_matches('\u{feff}').to_lowercase())
            .collect();
        let declared: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| f.name().to_lowercase())
            .collect();
        if names == declared {
            return None;
        }
        let order: Option<Vec<usize>> = declared
            .iter()
            .map(|d| names.iter().position(|n| n == d))
            .collect();
        match order {
            Some(order) if names.len() == declared.len() => {
                let fields: Vec<_> = names
                    .iter()
                    .filter_map(|n| declared.iter().position(|d| d == n))
                    .map(|i| schema.field(i).clone())
                    .collect();
                Some((Arc::new(arrow::datatypes::Schema::new(fields)), order))
            }
            _ => {
                tracing::debug!(file = %location, header = ?names, columns = ?declared,
                    "the csv header does not name the declared columns; reading them by position");
                None
            }
        }
    }

    fn decode_in_order(
        &self,
        bytes: Bytes,
        schema: &SchemaRef,
        location: &str,
        bad: &mut BadRecords,
    ) -> Result<Vec<RecordBatch>> {
        // An odd number of quotes means a quoted field is never closed: arrow's reader would
        // take the rest of the file into it, so such a file takes the slow path.
        if quotes(&bytes).is_multiple_of(2)
            && let Ok(batches) = self.decode_all(&bytes, schema, self.header)
        {
            return Ok(batches);
        }
        let good = self.good_records(&bytes, schema, location, bad)?;
        self.decode_all(&good, schema, false).map_err(|e| {
            ConnectorError::arrow(format!("decoding the good records of {location}"), e)
        })
    }

    /// Slow path, taken only for a file with a malformed record: finds each one by line and
    /// returns the others, re-encoded. A quoted field still open at the end of the file costs
    /// only the line it opened on: reading goes on from the next line.
    fn good_records(
        &self,
        bytes: &[u8],
        schema: &SchemaRef,
        location: &str,
        bad: &mut BadRecords,
    ) -> Result<Vec<u8>> {
        let mut good = ::csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .flexible(true)
            .from_writer(Vec::new());
        // With an odd number of quotes in the file, some quoted field is never closed: the
        // record it opens (a record over several lines with an odd number of quotes) costs
        // only its first line, wherever it is.
        let unbalanced = !quotes(bytes).is_multiple_of(2);
        // `rest` starts at line `first_line` of the file.
        let (mut rest, mut header, mut first_line) = (bytes, self.header, 1);
        'rest: loop {
            // The header is read as a record (and skipped), so that an open quote in it is
            // found like any other.
            let mut reader = ::csv::ReaderBuilder::new()
                .has_headers(false)
                .delimiter(self.delimiter)
                .flexible(true)
                .from_reader(rest);
            let mut record = ::csv::ByteRecord::new();
            loop {
                let line = reader.position().line();
                match reader.read_byte_record(&mut record) {
                    Ok(false) => break 'rest,
                    Ok(true) => {}
                    Err(e) => {
                        // (A header that cannot be read is reported like a record.)
                        header = false;
                        bad.reject(BadRecord::record(
                            format!("{location}:{}", first_line + line - 1),
                            e.to_string(),
                            String::new(),
                        ))?;
                        continue;
                    }
                }
                let (line, start) = record
                    .position()
                    .map_or((line, 0), |p| (p.line(), p.byte() as usize));
                let end = reader.position().byte() as usize;
                if unbalanced && never_closed(&rest[start..end.min(rest.len())]) {
                    let opened = rest[start..]
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(rest.len(), |i| start + i + 1);
                    bad.reject(BadRecord::record(
                        format!("{location}:{}", first_line + line - 1),
                        "a quoted field opened on this line is never closed (the file has \
                         an odd number of quotes)"
                            .into(),
                        record_text(&rest[start..opened]),
                    ))?;
                    (rest, header, first_line) = (&rest[opened..], false, first_line + line);
                    continue 'rest;
                }
                if std::mem::take(&mut header) {
                    continue;
                }
                let single = write_record(&record, self.delimiter)?;
                match self.decode_all(&single, schema, false) {
                    Ok(_) => good
                        .write_byte_record(&record)
                        .map_err(|e| ConnectorError::Internal(format!("re-encoding csv: {e}")))?,
                    Err(reason) => bad.reject(BadRecord::record(
                        format!("{location}:{}", first_line + line - 1),
                        reason.to_string(),
                        record_text(&single),
                    ))?,
                }
            }
        }
        good.into_inner()
            .map_err(|e| ConnectorError::Internal(format!("re-encoding csv: {e}")))
    }

    fn decode_all(
        &self,
        bytes: &[u8],
        schema: &SchemaRef,
        header: bool,
    ) -> Result<Vec<RecordBatch>, arrow::error::ArrowError> {
        arrow::csv::ReaderBuilder::new(Arc::clone(schema))
            .with_header(header)
            .with_delimiter(self.delimiter)
            .with_batch_size(BATCH_SIZE)
            .build(Cursor::new(bytes))?
            .collect()
    }
}

fn quotes(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| **b == b'"').count()
}

/// Whether a record (its bytes) holds a quoted field that is not closed where it should be:
/// it spans lines and holds an odd number of quotes.
fn never_closed(record: &[u8]) -> bool {
    let body = record.strip_suffix(b"\n").unwrap_or(record);
    body.contains(&b'\n') && !quotes(body).is_multiple_of(2)
}

fn write_record(record: &::csv::ByteRecord, delimiter: u8) -> Result<Vec<u8>> {
    let mut writer = ::csv::WriterBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_writer(Vec::new());
    writer
        .write_byte_record(record)
        .map_err(|e| ConnectorError::Internal(format!("re-encoding csv: {e}")))?;
    writer
        .into_inner()
        .map_err(|e| ConnectorError::Internal(format!("re-encoding csv: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::pretty::pretty_format_batches;

    use super::*;
    use crate::format::OnError;

    #[test]
    fn bad_rows_are_found_by_line_and_good_rows_kept() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let input = "id,name\n1,\"a,b\"\nx,c\n3,\"multi\nline\"\n";
        let options = CsvOptions {
            header: true,
            delimiter: b',',
        };
        let mut bad = BadRecords::new(OnError::Skip);
        let batches = options
            .decode(Bytes::from(input), &schema, "f.csv", &mut bad)
            .unwrap();
        assert_eq!(
            pretty_format_batches(&batches).unwrap().to_string(),
            "+----+-------+\n| id | name  |\n+----+-------+\n| 1  | a,b   |\n| 3  | multi |\n|    | line  |\n+----+-------+"
        );
        assert_eq!(bad.rejected().len(), 1);
        assert_eq!(bad.rejected()[0].location, "f.csv:3");
        assert_eq!(bad.rejected()[0].record, "x,c");
    }

    #[test]
    fn a_header_naming_the_columns_in_another_order_is_read_by_name() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
            Field::new("c", DataType::Utf8, true),
        ]));
        let options = CsvOptions {
            header: true,
            delimiter: b',',
        };
        let mut bad = BadRecords::new(OnError::Skip);
        let decode = |input: &str, bad: &mut BadRecords| {
            let batches = options
                .decode(Bytes::from(input.to_string()), &schema, "f.csv", bad)
                .unwrap();
            pretty_format_batches(&batches).unwrap().to_string()
        };
        let expected = "+---+---+---+
| a | b | c |
+---+---+---+
| 1 | 2 | x |
+---+---+---+";
        assert_eq!(
            decode(
                "c,B,a
x,2,1
",
                &mut bad
            ),
            expected
        );
        assert_eq!(
            decode(
                "a,b,c
1,2,x
",
                &mut bad
            ),
            expected
        );
        // Other names: by position, as Spark reads them by default.
        assert_eq!(
            decode(
                "p,q,r
1,2,x
",
                &mut bad
            ),
            expected
        );
        assert!(bad.rejected().is_empty());
    }

    /// Decodes `input` as `(id BIGINT, name VARCHAR)` skipping bad records: the rows as a
    /// table, and the bad records' lines, texts and reasons.
    fn ids_and_names(input: &str, header: bool) -> (String, Vec<(String, String, String)>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let options = CsvOptions {
            header,
            delimiter: b',',
        };
        let mut bad = BadRecords::new(OnError::Skip);
        let batches = options
            .decode(Bytes::from(input.to_string()), &schema, "f.csv", &mut bad)
            .unwrap();
        let rejected = bad
            .rejected()
            .iter()
            .map(|r| (r.location.clone(), r.record.clone(), r.reason.clone()))
            .collect();
        (
            pretty_format_batches(&batches).unwrap().to_string(),
            rejected,
        )
    }

    const NEVER_CLOSED: &str =
        "a quoted field opened on this line is never closed (the file has an odd number of quotes)";

    const ONE_THREE_FOUR: &str = "+----+------+\n| id | name |\n+----+------+\n| 1  | a    |\n| 3  | c    |\n| 4  | d    |\n+----+------+";

    #[test]
    fn an_unclosed_quote_on_the_last_record_loses_only_its_line() {
        let (rows, rejected) = ids_and_names("id,name\n1,a\n2,\"b\n3,c\n4,d\n", true);
        assert_eq!(rows, ONE_THREE_FOUR);
        let bad = ("f.csv:3".into(), "2,\"b".into(), NEVER_CLOSED.into());
        assert_eq!(rejected, [bad]);
    }

    #[test]
    fn a_quote_left_open_before_a_quoted_field_costs_only_its_line() {
        let (rows, rejected) = ids_and_names("1,a\n2,\"b\n3,\"c\"\n4,d\n", false);
        assert_eq!(rows, ONE_THREE_FOUR);
        let bad = ("f.csv:2".into(), "2,\"b".into(), NEVER_CLOSED.into());
        assert_eq!(rejected, [bad]);
    }

    #[test]
    fn a_quote_left_open_in_the_header_costs_the_header_not_the_file() {
        let (rows, rejected) = ids_and_names("id,\"name\n1,a\n3,c\n4,d\n", true);
        assert_eq!(
            rows,
            "+----+------+\n| id | name |\n+----+------+\n| 1  | a    |\n| 3  | c    |\n| 4  | d    |\n+----+------+"
        );
        let bad = ("f.csv:1".into(), "id,\"name".into(), NEVER_CLOSED.into());
        assert_eq!(rejected, [bad]);
    }
}
