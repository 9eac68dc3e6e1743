//! Deduplication's rules on scripted batches; each expected row follows from the rule in the
//! module docs (Spark's `dropDuplicates` for `DISTINCT`; the earliest row by event time for
//! keep-first), not from running Weir.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::pretty::pretty_format_batches;

use crate::physical::harness::OperatorHarness;
use crate::runtime::OutputMode;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]))
}

/// Rows `(k, ts seconds)`.
fn rows(rows: &[(i64, i64)]) -> Vec<RecordBatch> {
    let keys = Int64Array::from_iter_values(rows.iter().map(|r| r.0));
    let times = TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1 * 1000));
    vec![RecordBatch::try_new(schema(), vec![Arc::new(keys), Arc::new(times)]).unwrap()]
}

/// Sorted lines `k,seconds[,rn]`.
fn lines(batches: &[RecordBatch]) -> Vec<String> {
    let text = pretty_format_batches(batches).unwrap().to_string();
    let mut lines: Vec<String> = text
        .lines()
        .skip(3)
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| {
                    let c = c.trim();
                    c.strip_prefix("1970-01-01T00:00:").unwrap_or(c).to_string()
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    lines.sort();
    lines
}

async fn harness(select: &str) -> OperatorHarness {
    OperatorHarness::new(schema(), Some("ts"), select, OutputMode::Append).await
}

/// Spark's `dropDuplicates` with the event time in the key: each row once, as first seen;
/// a key leaves state when its time is at or before the watermark in force; a row at or
/// before the previous batch's watermark is late, even if its key has left.
#[tokio::test]
async fn distinct_with_the_event_time_emits_each_row_once_and_evicts_by_the_watermark() {
    for restart in [false, true] {
        let mut dedup = harness("SELECT DISTINCT k, ts FROM s").await;
        let out = dedup
            .batch(rows(&[(1, 10), (1, 10), (2, 11)]), None, None)
            .await;
        assert_eq!(lines(&out), ["1,10", "2,11"]);
        assert_eq!(dedup.state_rows(), 2);
        if restart {
            dedup.restart().await;
        }
        let out = dedup
            .batch(rows(&[(1, 10), (3, 12)]), None, Some(10_000))
            .await;
        assert_eq!(lines(&out), ["3,12"]);
        assert_eq!(dedup.state_rows(), 2, "(1, 10) left at watermark 10 s");
        if restart {
            dedup.restart().await;
        }
        let out = dedup
            .batch(
                rows(&[(1, 10), (2, 11), (4, 16)]),
                Some(10_000),
                Some(15_000),
            )
            .await;
        assert_eq!(lines(&out), ["4,16"]);
        let metrics = dedup.metrics("dedup-0");
        assert_eq!((metrics.late_rows, metrics.rows_evicted), (1, 2));
        assert_eq!(dedup.state_rows(), 1);
    }
}

/// Without an event time in the key nothing leaves state: a key is emitted once, ever.
#[tokio::test]
async fn distinct_without_the_event_time_keeps_its_keys() {
    let mut dedup = harness("SELECT DISTINCT k FROM s").await;
    let out = dedup
        .batch(rows(&[(1, 10), (2, 11), (1, 12)]), None, None)
        .await;
    assert_eq!(lines(&out), ["1", "2"]);
    let out = dedup
        .batch(rows(&[(1, 100), (3, 101)]), None, Some(90_000))
        .await;
    assert_eq!(lines(&out), ["3"]);
    assert_eq!(dedup.state_rows(), 3);
}

const KEEP_FIRST: &str = "SELECT k, ts, rn FROM (SELECT k, ts, row_number() OVER \
                          (PARTITION BY k ORDER BY ts) AS rn FROM s) WHERE rn = 1";

/// Keep-first emits a key's earliest row once the watermark reaches it (no earlier row can
/// come after that), and drops the key's rows from then on.
#[tokio::test]
async fn keep_first_emits_the_earliest_row_per_key_when_the_watermark_reaches_it() {
    for restart in [false, true] {
        let mut dedup = harness(KEEP_FIRST).await;
        let out = dedup
            .batch(rows(&[(1, 20), (1, 15), (2, 30)]), None, None)
            .await;
        assert_eq!(lines(&out), Vec::<String>::new());
        if restart {
            dedup.restart().await;
        }
        // (1, 12) is earlier than (1, 15) and the watermark (16 s) reaches it: final.
        let out = dedup
            .batch(rows(&[(1, 12), (2, 31)]), None, Some(16_000))
            .await;
        assert_eq!(lines(&out), ["1,12,1"]);
        if restart {
            dedup.restart().await;
        }
        // Key 1 is done; (2, 25) beats (2, 30); (3, 14) is late.
        let out = dedup
            .batch(
                rows(&[(1, 17), (2, 25), (3, 14)]),
                Some(16_000),
                Some(40_000),
            )
            .await;
        assert_eq!(lines(&out), ["2,25,1"]);
        assert_eq!(dedup.metrics("dedup-0").late_rows, 1);
        let out = dedup
            .batch(rows(&[(2, 41)]), Some(40_000), Some(60_000))
            .await;
        assert_eq!(lines(&out), Vec::<String>::new(), "each key once");
    }
}

/// Without PARTITION BY the stream's earliest row is kept; a row without an event time sorts
/// last and never blocks a real one.
#[tokio::test]
async fn keep_first_without_partition_and_with_null_times() {
    let query = "SELECT k, ts, rn FROM (SELECT k, ts, row_number() OVER (ORDER BY ts) AS rn \
                 FROM s) WHERE rn = 1";
    let mut dedup = harness(query).await;
    dedup.batch(rows(&[(3, 20), (2, 15)]), None, None).await;
    let out = dedup.batch(rows(&[(1, 17)]), None, Some(30_000)).await;
    assert_eq!(lines(&out), ["2,15,1"]);

    let nullable = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    let mut dedup = OperatorHarness::new(
        Arc::clone(&nullable),
        Some("ts"),
        KEEP_FIRST,
        OutputMode::Append,
    )
    .await;
    let batch = RecordBatch::try_new(
        nullable,
        vec![
            Arc::new(Int64Array::from(vec![1, 1])),
            Arc::new(TimestampMillisecondArray::from(vec![None, Some(10_000)])),
        ],
    )
    .unwrap();
    let out = dedup.batch(vec![batch], None, Some(20_000)).await;
    assert_eq!(lines(&out), ["1,10,1"]);
}
