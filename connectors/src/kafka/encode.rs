//! Rows to Kafka records for the sink: [`SinkColumns`] checks which column is the key and how
//! the value is made (`json`: one object per row; `raw`: the one value column), [`encode`]
//! makes one [`OutRecord`] per row, and [`assign_partitions`] places them deterministically
//! (keyed rows by Kafka's murmur2 hash of the key, as Java clients do, so a compacted topic
//! keeps each key in one partition; other rows round-robin).

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, SchemaRef};

use crate::error::{ConnectorError, Result};
use crate::format::json::json_lines;

/// How the sink turns a row into a record value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SinkFormat {
    /// A JSON object with every column (the key column included).
    Json,
    /// The bytes of the one column that is not the key.
    Raw,
}

/// Which columns make the key and the value.
#[derive(Debug, Clone)]
pub(super) struct SinkColumns {
    format: SinkFormat,
    key: Option<usize>,
    /// With `raw`: the value column.
    value: Option<usize>,
}

impl SinkColumns {
    /// Checks `schema` against the format and the `key` option.
    pub fn try_new(
        schema: &SchemaRef,
        format: SinkFormat,
        key: Option<&str>,
        sink: &str,
    ) -> Result<Self> {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let key = key
            .map(|key| {
                names.iter().position(|n| *n == key).ok_or_else(|| {
                    ConnectorError::Config(format!(
                        "option 'key' of kafka sink '{sink}' names column '{key}', which the query \
                         does not output; its columns are: {}",
                        names.join(", ")
                    ))
                })
            })
            .transpose()?;
        let value = match format {
            SinkFormat::Json => None,
            SinkFormat::Raw => {
                let others: Vec<usize> = (0..names.len()).filter(|i| Some(*i) != key).collect();
                let [value] = others[..] else {
                    return Err(ConnectorError::Config(format!(
                        "kafka sink '{sink}' with format 'raw' writes one column as the record \
                         value, but the query outputs {} columns besides the key ({}); select one \
                         column (and the key column, if 'key' is set)",
                        others.len(),
                        names.join(", ")
                    )));
                };
                Some(value)
            }
        };
        Ok(Self { format, key, value })
    }
}

/// One record to write.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct OutRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// One record per row of `batches`, in row order.
pub(super) fn encode(columns: &SinkColumns, batches: &[RecordBatch]) -> Result<Vec<OutRecord>> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut records = Vec::with_capacity(rows);
    for batch in batches.iter().filter(|b| b.num_rows() > 0) {
        let keys = match columns.key {
            Some(i) => bytes_of(batch.column(i))?,
            None => vec![None; batch.num_rows()],
        };
        let values = match (columns.format, columns.value) {
            (SinkFormat::Raw, Some(i)) => bytes_of(batch.column(i))?,
            _ => json_lines(batch, "kafka")?.into_iter().map(Some).collect(),
        };
        records.extend(
            keys.into_iter()
                .zip(values)
                .map(|(key, value)| OutRecord { key, value }),
        );
    }
    Ok(records)
}

/// The bytes of each value of `array`: text as UTF-8, binary as is, anything else as its text
/// form (numbers, dates).
fn bytes_of(array: &dyn Array) -> Result<Vec<Option<Vec<u8>>>> {
    let failed = |e| ConnectorError::arrow("converting a column to kafka bytes", e);
    let binary = matches!(
        array.data_type(),
        DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
    );
    Ok(if binary {
        let array = cast(array, &DataType::Binary).map_err(failed)?;
        array
            .as_binary::<i32>()
            .iter()
            .map(|v| v.map(<[u8]>::to_vec))
            .collect()
    } else {
        let array = cast(array, &DataType::Utf8).map_err(failed)?;
        array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(|s| s.as_bytes().to_vec()))
            .collect()
    })
}

/// The partition of each record: keyed records by murmur2 of the key modulo `partitions`
/// (Kafka's default partitioner), others round-robin starting at `batch`.
pub(super) fn assign_partitions(records: &[OutRecord], batch: u64, partitions: i32) -> Vec<i32> {
    let n = partitions.max(1) as u64;
    records
        .iter()
        .enumerate()
        .map(|(i, record)| match &record.key {
            Some(key) => ((murmur2(key) & 0x7fff_ffff) as u64 % n) as i32,
            None => ((i as u64).wrapping_add(batch) % n) as i32,
        })
        .collect()
}

/// Kafka's murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`).
fn murmur2(data: &[u8]) -> i32 {
    const M: i32 = 0x5bd1_e995;
    const SEED: u32 = 0x9747_b28c;
    let mut h: i32 = (SEED as i32) ^ (data.len() as i32);
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= ((k as u32) >> 24) as i32;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if tail.len() == 3 {
        h ^= i32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= i32::from(tail[1]) << 8;
    }
    if let Some(first) = tail.first() {
        h ^= i32::from(*first);
        h = h.wrapping_mul(M);
    }
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(M);
    h ^= ((h as u32) >> 15) as i32;
    h
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BinaryArray, Int64Array, StringArray, StringViewArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn murmur2_matches_kafkas_java_partitioner() {
        // Expected values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58897971
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8View, true),
            Field::new("blob", DataType::Binary, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringViewArray::from(vec![Some("a\nb \"q\""), None])),
                Arc::new(BinaryArray::from(vec![Some(&b"\x00\xff"[..]), None])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn json_rows_carry_every_column_and_keys_take_their_text_form() {
        let batch = batch();
        let columns =
            SinkColumns::try_new(&batch.schema(), SinkFormat::Json, Some("id"), "s").unwrap();
        let records = encode(&columns, &[batch]).unwrap();
        let text: Vec<(Option<String>, String)> = records
            .iter()
            .map(|r| {
                (
                    r.key.clone().map(|k| String::from_utf8(k).unwrap()),
                    String::from_utf8(r.value.clone().unwrap()).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            text,
            [
                (
                    Some("1".to_string()),
                    r#"{"id":1,"name":"a\nb \"q\"","blob":"00ff"}"#.to_string()
                ),
                (None, r#"{"id":null,"name":null,"blob":null}"#.to_string()),
            ]
        );
    }

    #[test]
    fn raw_takes_the_one_column_besides_the_key() {
        let batch = batch();
        let schema = batch.schema();
        let err = SinkColumns::try_new(&schema, SinkFormat::Raw, Some("id"), "s").unwrap_err();
        assert!(
            err.to_string()
                .contains("outputs 2 columns besides the key (id, name, blob)"),
            "{err}"
        );
        let err = SinkColumns::try_new(&schema, SinkFormat::Json, Some("nope"), "s").unwrap_err();
        assert!(err.to_string().contains("names column 'nope'"), "{err}");

        let two = batch.project(&[0, 2]).unwrap();
        let columns =
            SinkColumns::try_new(&two.schema(), SinkFormat::Raw, Some("id"), "s").unwrap();
        let records = encode(&columns, &[two]).unwrap();
        assert_eq!(
            records,
            [
                OutRecord {
                    key: Some(b"1".to_vec()),
                    value: Some(vec![0, 255])
                },
                OutRecord {
                    key: None,
                    value: None
                },
            ]
        );
        let text =
            RecordBatch::try_from_iter([("line", Arc::new(StringArray::from(vec!["x"])) as _)])
                .unwrap();
        let columns = SinkColumns::try_new(&text.schema(), SinkFormat::Raw, None, "s").unwrap();
        assert_eq!(
            encode(&columns, &[text]).unwrap()[0].value,
            Some(b"x".to_vec())
        );
    }

    #[test]
    fn partitions_follow_the_key_hash_or_go_round_robin() {
        let records: Vec<OutRecord> = [Some("21"), None, None, Some("foobar"), None]
            .iter()
            .map(|k| OutRecord {
                key: k.map(|k| k.as_bytes().to_vec()),
                value: None,
            })
            .collect();
        // murmur2("21") & 0x7fffffff = 1173551340, % 3 = 0; "foobar": 1357151166 % 3 = 0.
        assert_eq!(assign_partitions(&records, 7, 3), [0, 2, 0, 0, 2]);
    }
}
