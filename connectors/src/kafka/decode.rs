//! Kafka records to Arrow: [`SourceColumns`] splits a declared schema into metadata columns
//! (`_topic`, `_partition`, `_offset`, `_timestamp`, `_key`) and value columns, and
//! [`decode`] turns the [`Fetched`] records of one partition into record batches, one row per
//! record, sending each malformed record through the `on_error` policy as
//! `topic/partition@offset`.
//!
//! JSON and CSV values are joined with `'\n'` and decoded at once (one decoder call per
//! [`BATCH_SIZE`] records); only a chunk holding a bad record is decoded record by record to
//! find it. A record must decode to exactly one row, so the metadata columns line up.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Array, Int64Array, RecordBatch, RecordBatchOptions, StringArray,
    StringBuilder, TimestampMillisecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use bytes::Bytes;

use crate::error::{ConnectorError, Result};
use crate::format::{BATCH_SIZE, BadRecord, BadRecords, Format, OnError};

/// A column filled from the record's metadata rather than its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Metadata {
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
}

impl Metadata {
    fn named(name: &str) -> Option<Self> {
        Some(match name {
            "_topic" => Metadata::Topic,
            "_partition" => Metadata::Partition,
            "_offset" => Metadata::Offset,
            "_timestamp" => Metadata::Timestamp,
            "_key" => Metadata::Key,
            _ => return None,
        })
    }

    /// Whether a column of type `declared` can hold this metadata.
    fn fits(self, declared: &DataType) -> bool {
        match self {
            Metadata::Topic => is_text(declared),
            Metadata::Partition => matches!(declared, DataType::Int32 | DataType::Int64),
            Metadata::Offset => *declared == DataType::Int64,
            Metadata::Timestamp => matches!(declared, DataType::Timestamp(..)),
            Metadata::Key => is_text(declared) || is_binary(declared),
        }
    }
}

/// How a record's value becomes columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ValueFormat {
    /// Decoded with a [`Format`] (json or csv) into the value columns.
    Decoded(Format),
    /// The value itself is the one value column (text or bytes).
    Raw,
}

/// Where each declared column comes from.
#[derive(Debug, Clone)]
pub(super) struct SourceColumns {
    schema: SchemaRef,
    value_schema: SchemaRef,
    /// Per declared column: a metadata field, or the index of a value column.
    columns: Vec<std::result::Result<Metadata, usize>>,
    format: ValueFormat,
}

impl SourceColumns {
    /// Splits `schema` for `format`, checking the metadata columns' types.
    pub fn try_new(schema: SchemaRef, format: ValueFormat, source: &str) -> Result<Self> {
        let mut value_fields = Vec::new();
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            match Metadata::named(field.name()) {
                Some(metadata) => {
                    if !metadata.fits(field.data_type()) {
                        return Err(ConnectorError::Config(format!(
                            "column '{}' of kafka source '{source}' holds record metadata and \
                             cannot be {}; declare it as {}",
                            field.name(),
                            field.data_type(),
                            expected_type(metadata)
                        )));
                    }
                    columns.push(Ok(metadata));
                }
                None => {
                    columns.push(Err(value_fields.len()));
                    value_fields.push(Arc::clone(field));
                }
            }
        }
        if format == ValueFormat::Raw {
            let ok = value_fields.len() == 1
                && (is_text(value_fields[0].data_type()) || is_binary(value_fields[0].data_type()));
            if !ok {
                return Err(ConnectorError::Config(format!(
                    "kafka source '{source}' with format 'raw' needs exactly one column besides \
                     the metadata columns (_topic, _partition, _offset, _timestamp, _key), of type \
                     VARCHAR or BYTEA, to hold the record's value"
                )));
            }
        }
        Ok(Self {
            schema,
            value_schema: Arc::new(Schema::new(value_fields)),
            columns,
            format,
        })
    }

    /// Whether records need a value (json and csv cannot decode a null one).
    fn needs_value(&self) -> bool {
        matches!(self.format, ValueFormat::Decoded(_)) && !self.value_schema.fields().is_empty()
    }

    fn key_is_text(&self) -> bool {
        self.schema
            .fields()
            .iter()
            .zip(&self.columns)
            .any(|(f, c)| *c == Ok(Metadata::Key) && !is_binary(f.data_type()))
    }
}

fn expected_type(metadata: Metadata) -> &'static str {
    match metadata {
        Metadata::Topic => "VARCHAR",
        Metadata::Partition => "INT",
        Metadata::Offset => "BIGINT",
        Metadata::Timestamp => "TIMESTAMP",
        Metadata::Key => "VARCHAR or BYTEA",
    }
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

fn is_binary(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

/// The records read from one partition, in offset order, stored column-wise.
#[derive(Debug, Default)]
pub(super) struct Fetched {
    pub partition: i32,
    offsets: Vec<i64>,
    timestamps: Vec<Option<i64>>,
    keys: Vec<Option<(usize, usize)>>,
    key_bytes: Vec<u8>,
    /// Each value's span in `value_bytes`; values are followed by `'\n'`.
    values: Vec<Option<(usize, usize)>>,
    value_bytes: Vec<u8>,
}

impl Fetched {
    /// An empty set for `partition`.
    pub fn new(partition: i32) -> Self {
        Self {
            partition,
            ..Default::default()
        }
    }

    /// Appends one record.
    pub fn push(
        &mut self,
        offset: i64,
        timestamp: Option<i64>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) {
        self.offsets.push(offset);
        self.timestamps.push(timestamp);
        self.keys.push(key.map(|k| {
            let start = self.key_bytes.len();
            self.key_bytes.extend_from_slice(k);
            (start, self.key_bytes.len())
        }));
        self.values.push(value.map(|v| {
            let start = self.value_bytes.len();
            self.value_bytes.extend_from_slice(v);
            let span = (start, self.value_bytes.len());
            self.value_bytes.push(b'\n');
            span
        }));
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    fn key(&self, i: usize) -> Option<&[u8]> {
        self.keys[i].map(|(a, b)| &self.key_bytes[a..b])
    }

    fn value(&self, i: usize) -> Option<&[u8]> {
        self.values[i].map(|(a, b)| &self.value_bytes[a..b])
    }
}

/// Decodes the records of one partition into batches of the declared schema.
pub(super) fn decode(
    columns: &SourceColumns,
    topic: &str,
    fetched: &Fetched,
    bad: &mut BadRecords,
) -> Result<Vec<RecordBatch>> {
    let location = |i: usize| format!("{topic}/{}@{}", fetched.partition, fetched.offsets[i]);
    let mut batches = Vec::new();
    let mut first = 0;
    while first < fetched.len() {
        let end = (first + BATCH_SIZE).min(fetched.len());
        let mut good = Vec::with_capacity(end - first);
        for i in first..end {
            match precheck(columns, fetched, i) {
                Ok(()) => good.push(i),
                Err(reason) => bad.reject(BadRecord::record(
                    location(i),
                    reason,
                    record_text(fetched.value(i).unwrap_or_default()),
                ))?,
            }
        }
        let values = decode_values(columns, fetched, &mut good, &location, bad)?;
        if !good.is_empty() {
            batches.push(assemble(columns, topic, fetched, &good, values)?);
        }
        first = end;
    }
    Ok(batches)
}

/// Rejects what no decoder can take: a missing value, or a key that is not text for a text
/// `_key` column.
fn precheck(
    columns: &SourceColumns,
    fetched: &Fetched,
    i: usize,
) -> std::result::Result<(), String> {
    if columns.needs_value() && fetched.value(i).is_none() {
        return Err("the record has no value (a tombstone)".into());
    }
    if columns.key_is_text()
        && let Some(key) = fetched.key(i)
        && std::str::from_utf8(key).is_err()
    {
        return Err("the key is not valid UTF-8; declare _key as BYTEA to read it".into());
    }
    if columns.format == ValueFormat::Raw
        && is_text(columns.value_schema.field(0).data_type())
        && let Some(value) = fetched.value(i)
        && std::str::from_utf8(value).is_err()
    {
        return Err("the value is not valid UTF-8; declare the column as BYTEA to read it".into());
    }
    Ok(())
}

/// The value columns of the records in `good` (which loses the records found bad).
fn decode_values(
    columns: &SourceColumns,
    fetched: &Fetched,
    good: &mut Vec<usize>,
    location: &dyn Fn(usize) -> String,
    bad: &mut BadRecords,
) -> Result<Vec<ArrayRef>> {
    let format = match &columns.format {
        ValueFormat::Raw => return Ok(vec![raw_column(columns, fetched, good)?]),
        ValueFormat::Decoded(_) if columns.value_schema.fields().is_empty() => return Ok(vec![]),
        ValueFormat::Decoded(format) => format,
    };
    if let Some(columns) = decode_exactly(
        format,
        &columns.value_schema,
        join(fetched, good),
        good.len(),
    ) {
        return Ok(columns);
    }
    // Slow path, for a chunk holding a bad record: decode each record alone to find it.
    let mut kept = Vec::with_capacity(good.len());
    for &i in good.iter() {
        let one = join(fetched, &[i]);
        match decode_one(format, &columns.value_schema, one) {
            Ok(()) => kept.push(i),
            Err(reason) => bad.reject(BadRecord::record(
                location(i),
                reason,
                record_text(fetched.value(i).unwrap_or_default()),
            ))?,
        }
    }
    *good = kept;
    decode_exactly(
        format,
        &columns.value_schema,
        join(fetched, good),
        good.len(),
    )
    .ok_or_else(|| {
        ConnectorError::Internal(format!(
            "records of partition {} decoded one by one but not together",
            fetched.partition
        ))
    })
}

/// The values of `records`, each followed by `'\n'`; borrowed when they are contiguous.
fn join(fetched: &Fetched, records: &[usize]) -> Bytes {
    let span = |i: usize| fetched.values[i].map(|(a, b)| (a, b + 1));
    let contiguous = records.windows(2).all(|w| w[1] == w[0] + 1);
    if let (true, Some(&first), Some(&last)) = (contiguous, records.first(), records.last())
        && let (Some((a, _)), Some((_, b))) = (span(first), span(last))
    {
        return Bytes::copy_from_slice(&fetched.value_bytes[a..b]);
    }
    let mut joined = Vec::new();
    for &i in records {
        if let Some((a, b)) = span(i) {
            joined.extend_from_slice(&fetched.value_bytes[a..b]);
        }
    }
    Bytes::from(joined)
}

/// The columns of `bytes` decoded with a strict policy, if that gives exactly `rows` rows.
fn decode_exactly(
    format: &Format,
    schema: &SchemaRef,
    bytes: Bytes,
    rows: usize,
) -> Option<Vec<ArrayRef>> {
    let mut strict = BadRecords::new(OnError::Fail);
    let batches = format.decode(bytes, schema, "", &mut strict).ok()?;
    if batches.iter().map(RecordBatch::num_rows).sum::<usize>() != rows {
        return None;
    }
    let batch = arrow::compute::concat_batches(schema, &batches).ok()?;
    Some(batch.columns().to_vec())
}

/// Why one record does not decode to exactly one row.
fn decode_one(
    format: &Format,
    schema: &SchemaRef,
    bytes: Bytes,
) -> std::result::Result<(), String> {
    let mut strict = BadRecords::new(OnError::Fail);
    let batches = format
        .decode(bytes, schema, "", &mut strict)
        .map_err(|e| match e {
            ConnectorError::BadRecord { reason, .. } => reason
                .split("; set on_error")
                .next()
                .unwrap_or_default()
                .to_string(),
            other => other.to_string(),
        })?;
    match batches.iter().map(RecordBatch::num_rows).sum::<usize>() {
        1 => Ok(()),
        n => Err(format!(
            "the value holds {n} records; a kafka record must hold exactly one"
        )),
    }
}

fn raw_column(columns: &SourceColumns, fetched: &Fetched, good: &[usize]) -> Result<ArrayRef> {
    let declared = columns.value_schema.field(0).data_type();
    let native: ArrayRef = if is_text(declared) {
        let mut builder = StringBuilder::with_capacity(good.len(), fetched.value_bytes.len());
        for &i in good {
            // INVARIANT: precheck rejected values that are not UTF-8.
            builder.append_option(fetched.value(i).and_then(|v| std::str::from_utf8(v).ok()));
        }
        Arc::new(builder.finish())
    } else {
        let mut builder = BinaryBuilder::with_capacity(good.len(), fetched.value_bytes.len());
        for &i in good {
            builder.append_option(fetched.value(i));
        }
        Arc::new(builder.finish())
    };
    cast(&native, declared).map_err(|e| ConnectorError::arrow("casting kafka values", e))
}

/// The declared columns of the records `good`, given their decoded value columns.
fn assemble(
    columns: &SourceColumns,
    topic: &str,
    fetched: &Fetched,
    good: &[usize],
    values: Vec<ArrayRef>,
) -> Result<RecordBatch> {
    let mut arrays = Vec::with_capacity(columns.columns.len());
    for (field, source) in columns.schema.fields().iter().zip(&columns.columns) {
        let array = match source {
            Err(index) => Arc::clone(&values[*index]),
            Ok(metadata) => {
                let native = metadata_column(*metadata, field, topic, fetched, good);
                cast(&native, field.data_type()).map_err(|e| {
                    ConnectorError::arrow(format!("filling column '{}'", field.name()), e)
                })?
            }
        };
        arrays.push(array);
    }
    RecordBatch::try_new_with_options(
        Arc::clone(&columns.schema),
        arrays,
        &RecordBatchOptions::new().with_row_count(Some(good.len())),
    )
    .map_err(|e| ConnectorError::arrow("assembling kafka records", e))
}

fn metadata_column(
    metadata: Metadata,
    field: &Field,
    topic: &str,
    fetched: &Fetched,
    good: &[usize],
) -> ArrayRef {
    match metadata {
        Metadata::Topic => Arc::new(StringArray::from(vec![topic; good.len()])),
        Metadata::Partition => Arc::new(Int32Array::from(vec![fetched.partition; good.len()])),
        Metadata::Offset => Arc::new(Int64Array::from_iter_values(
            good.iter().map(|&i| fetched.offsets[i]),
        )),
        Metadata::Timestamp => Arc::new(TimestampMillisecondArray::from_iter(
            good.iter().map(|&i| fetched.timestamps[i]),
        )),
        Metadata::Key if is_binary(field.data_type()) => {
            let mut builder = BinaryBuilder::new();
            for &i in good {
                builder.append_option(fetched.key(i));
            }
            Arc::new(builder.finish())
        }
        Metadata::Key => {
            let mut builder = StringBuilder::new();
            for &i in good {
                // INVARIANT: precheck rejected keys that are not UTF-8.
                builder.append_option(fetched.key(i).and_then(|k| std::str::from_utf8(k).ok()));
            }
            Arc::new(builder.finish())
        }
    }
}

/// The part of a bad record kept for the dead-letter output.
fn record_text(bytes: &[u8]) -> String {
    const MAX: usize = 64 * 1024;
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use arrow::util::pretty::pretty_format_batches;

    use arrow::datatypes::TimeUnit;

    use super::*;
    use crate::format::CsvOptions;

    fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        ))
    }

    fn fetched(records: &[(Option<&str>, Option<&[u8]>)]) -> Fetched {
        let mut fetched = Fetched::new(3);
        for (i, (key, value)) in records.iter().enumerate() {
            fetched.push(
                10 + i as i64,
                Some(1_700_000_000_000 + i as i64),
                key.map(str::as_bytes),
                *value,
            );
        }
        fetched
    }

    fn table(batches: &[RecordBatch]) -> String {
        pretty_format_batches(batches).unwrap().to_string()
    }

    #[test]
    fn json_values_and_metadata_line_up_and_bad_records_are_named_by_offset() {
        let declared = schema(&[
            ("id", DataType::Int64),
            ("_key", DataType::Utf8View),
            ("_partition", DataType::Int32),
            ("_offset", DataType::Int64),
            ("_topic", DataType::Utf8),
            (
                "_timestamp",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
            ),
            ("name", DataType::Utf8View),
        ]);
        let columns =
            SourceColumns::try_new(declared, ValueFormat::Decoded(Format::Json), "s").unwrap();
        let records = fetched(&[
            (Some("k1"), Some(b"{\"id\": 1, \"name\": \"a\"}")),
            (None, Some(b"not json")),
            (Some("k3"), None),
            (Some("k4"), Some(b"{\"id\": 4}{\"id\": 5}")),
            (
                Some("k5"),
                Some(b"{\n  \"id\": 6,\n  \"name\": \"pretty\"\n}"),
            ),
        ]);
        let mut bad = BadRecords::new(OnError::Skip);
        let batches = decode(&columns, "orders", &records, &mut bad).unwrap();
        assert_eq!(
            table(&batches),
            "+----+------+------------+---------+--------+-------------------------+--------+\n\
             | id | _key | _partition | _offset | _topic | _timestamp              | name   |\n\
             +----+------+------------+---------+--------+-------------------------+--------+\n\
             | 1  | k1   | 3          | 10      | orders | 2023-11-14T22:13:20     | a      |\n\
             | 6  | k5   | 3          | 14      | orders | 2023-11-14T22:13:20.004 | pretty |\n\
             +----+------+------------+---------+--------+-------------------------+--------+"
        );
        let rejected: Vec<(&str, &str)> = bad
            .rejected()
            .iter()
            .map(|r| (r.location.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            rejected[0],
            ("orders/3@12", "the record has no value (a tombstone)")
        );
        assert_eq!(rejected[1].0, "orders/3@11");
        assert!(rejected[1].1.contains("expected"), "{}", rejected[1].1);
        assert_eq!(
            rejected[2],
            (
                "orders/3@13",
                "the value holds 2 records; a kafka record must hold exactly one"
            )
        );
        assert_eq!(bad.rejected()[1].record, "not json");

        let mut fail = BadRecords::new(OnError::Fail);
        let err = decode(&columns, "orders", &records, &mut fail)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("bad record at orders/3@12: the record has no value"),
            "{err}"
        );
    }

    #[test]
    fn raw_values_fill_the_one_value_column_as_text_or_bytes() {
        let records = fetched(&[
            (Some("a"), Some(b"hello")),
            (None, Some(&[0xff, 0x00])),
            (None, None),
        ]);
        let text = SourceColumns::try_new(
            schema(&[("line", DataType::Utf8View), ("_offset", DataType::Int64)]),
            ValueFormat::Raw,
            "s",
        )
        .unwrap();
        let mut bad = BadRecords::new(OnError::Skip);
        let batches = decode(&text, "t", &records, &mut bad).unwrap();
        assert_eq!(
            table(&batches),
            "+-------+---------+\n| line  | _offset |\n+-------+---------+\n| hello | 10      |\n|       | 12      |\n+-------+---------+"
        );
        assert_eq!(bad.rejected()[0].location, "t/3@11");

        let bytes = SourceColumns::try_new(
            schema(&[("payload", DataType::Binary), ("_key", DataType::Binary)]),
            ValueFormat::Raw,
            "s",
        )
        .unwrap();
        let mut bad = BadRecords::new(OnError::Fail);
        let batches = decode(&bytes, "t", &records, &mut bad).unwrap();
        assert_eq!(
            table(&batches),
            "+------------+------+\n| payload    | _key |\n+------------+------+\n| 68656c6c6f | 61   |\n| ff00       |      |\n|            |      |\n+------------+------+"
        );
    }

    #[test]
    fn csv_values_are_one_record_each_and_bad_schemas_are_refused() {
        let columns = SourceColumns::try_new(
            schema(&[("id", DataType::Int32), ("name", DataType::Utf8)]),
            ValueFormat::Decoded(Format::Csv(CsvOptions {
                header: false,
                delimiter: b';',
            })),
            "s",
        )
        .unwrap();
        let records = fetched(&[
            (None, Some(b"1;one")),
            (None, Some(b"x;bad")),
            (None, Some(b"3;\"semi;colon\"")),
        ]);
        let mut bad = BadRecords::new(OnError::Skip);
        let batches = decode(&columns, "t", &records, &mut bad).unwrap();
        assert_eq!(
            table(&batches),
            "+----+------------+\n| id | name       |\n+----+------------+\n| 1  | one        |\n| 3  | semi;colon |\n+----+------------+"
        );
        assert_eq!(bad.rejected()[0].location, "t/3@11");

        let err = SourceColumns::try_new(
            schema(&[("_offset", DataType::Boolean)]),
            ValueFormat::Decoded(Format::Json),
            "s",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "column '_offset' of kafka source 's' holds record metadata and cannot be Boolean; declare it as BIGINT"
        );
        let err = SourceColumns::try_new(
            schema(&[("a", DataType::Utf8), ("b", DataType::Utf8)]),
            ValueFormat::Raw,
            "s",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("needs exactly one column"),
            "{err}"
        );
    }
}
