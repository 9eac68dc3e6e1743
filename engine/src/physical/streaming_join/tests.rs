//! The join's rules on scripted batches (see the module docs for the rules): each expected
//! row is derived from Spark's state-watermark rule, not from running Weir.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::pretty::pretty_format_batches;

use crate::physical::harness::OperatorHarness;
use crate::runtime::OutputMode;

fn schema(time: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new(
            time,
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]))
}

/// Rows `(k, time in seconds)` of a side whose time column is `time`.
fn rows(time: &str, rows: &[(i64, i64)]) -> Vec<RecordBatch> {
    let keys = Int64Array::from_iter_values(rows.iter().map(|r| r.0));
    let times = TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.1 * 1000));
    vec![RecordBatch::try_new(schema(time), vec![Arc::new(keys), Arc::new(times)]).unwrap()]
}

/// The rows as sorted lines `k,lt,rt` (times in seconds, `-` for null).
fn lines(batches: &[RecordBatch]) -> Vec<String> {
    let text = pretty_format_batches(batches).unwrap().to_string();
    let mut lines: Vec<String> = text
        .lines()
        .skip(3)
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|cell| {
                    let cell = cell.trim();
                    match cell.strip_prefix("1970-01-01T00:00:") {
                        Some(seconds) => seconds.trim_start_matches('0').to_string(),
                        None if cell.is_empty() => "-".to_string(),
                        None => cell.to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    lines.sort();
    lines
}

async fn harness(select: &str) -> OperatorHarness {
    OperatorHarness::with_sources(
        &[
            ("l", schema("lt"), Some("lt")),
            ("r", schema("rt"), Some("rt")),
        ],
        select,
        OutputMode::Append,
    )
    .await
}

const INNER: &str = "SELECT l.k, l.lt, r.rt FROM l JOIN r ON l.k = r.k AND \
                     l.lt BETWEEN r.rt - INTERVAL '10' SECOND AND r.rt + INTERVAL '5' SECOND";

/// `l.lt >= r.rt - 10 s` keeps a left row while a right row not yet late could match it:
/// Spark evicts it at `lt <= watermark - 10 s - 1 ms`; `l.lt <= r.rt + 5 s` evicts right rows
/// at `rt <= watermark - 5 s - 1 ms`. Each pair is emitted once, in the batch of its later row.
#[tokio::test]
async fn an_inner_join_with_a_time_bound_pairs_each_row_once_and_evicts_by_spark_rule() {
    for restart in [false, true] {
        let mut join = harness(INNER).await;
        let out = join
            .batch_of(
                vec![
                    ("l", rows("lt", &[(1, 10), (2, 20)])),
                    ("r", rows("rt", &[(1, 12)])),
                ],
                None,
                None,
            )
            .await;
        assert_eq!(lines(&out), ["1,10,12"]);
        assert_eq!(join.state_rows(), 3);
        if restart {
            join.restart().await;
        }
        // Watermark 25 s: left rows at or before 14.999 s go (1, 10 s); right rows at or
        // before 19.999 s go (1, 12 s). (2, 20 s) meets the new right row (2, 30 s).
        let out = join
            .batch_of(
                vec![("l", rows("lt", &[])), ("r", rows("rt", &[(2, 30)]))],
                None,
                Some(25_000),
            )
            .await;
        assert_eq!(lines(&out), ["2,20,30"]);
        assert_eq!(join.metrics("join-0").rows_evicted, 2);
        assert_eq!(join.state_rows(), 2);
        if restart {
            join.restart().await;
            assert_eq!(join.state_rows(), 2);
        }
        // Late by the previous watermark (25 s): (1, 20 s) on the left, (1, 24 s) on the right.
        let out = join
            .batch_of(
                vec![
                    ("l", rows("lt", &[(1, 20), (2, 26)])),
                    ("r", rows("rt", &[(1, 24)])),
                ],
                Some(25_000),
                Some(25_000),
            )
            .await;
        assert_eq!(lines(&out), ["2,26,30"]);
        let metrics = join.metrics("join-0");
        assert_eq!(metrics.late_rows, 2);
        assert_eq!(metrics.late_rows_by_input["left"], 1);
        assert_eq!(metrics.late_rows_by_input["right"], 1);
    }
}

const LEFT_OUTER: &str = "SELECT l.k, l.lt, r.rt FROM l LEFT JOIN r ON l.k = r.k AND \
                          r.rt BETWEEN l.lt - INTERVAL '5' SECOND AND l.lt + INTERVAL '5' SECOND";

/// A left row's null-padded row comes once, when Spark's rule evicts it unmatched:
/// `r.rt <= l.lt + 5 s` evicts left rows at `lt <= watermark - 5 s - 1 ms`.
#[tokio::test]
async fn a_left_outer_join_emits_a_null_row_once_when_the_watermark_passes_its_bound() {
    for restart in [false, true] {
        let mut join = harness(LEFT_OUTER).await;
        let out = join
            .batch_of(
                vec![
                    ("l", rows("lt", &[(1, 5), (2, 6), (3, 7)])),
                    ("r", rows("rt", &[(1, 8)])),
                ],
                None,
                None,
            )
            .await;
        assert_eq!(lines(&out), ["1,5,8"]);
        // Watermark 10 s evicts left rows at or before 4.999 s: none.
        let out = join
            .batch_of(
                vec![("l", rows("lt", &[])), ("r", rows("rt", &[(2, 20)]))],
                None,
                Some(10_000),
            )
            .await;
        assert_eq!(lines(&out), Vec::<String>::new());
        if restart {
            join.restart().await;
        }
        // 12 s: (1, 5 s) goes matched, (2, 6 s) unmatched: its null row; (3, 7 s) stays.
        let out = join
            .batch_of(
                vec![("l", rows("lt", &[])), ("r", rows("rt", &[]))],
                Some(10_000),
                Some(12_000),
            )
            .await;
        assert_eq!(lines(&out), ["2,6,-"]);
        if restart {
            join.restart().await;
        }
        let out = join
            .batch_of(
                vec![("l", rows("lt", &[])), ("r", rows("rt", &[]))],
                Some(12_000),
                Some(13_000),
            )
            .await;
        assert_eq!(lines(&out), ["3,7,-"]);
        let out = join
            .batch_of(
                vec![("l", rows("lt", &[])), ("r", rows("rt", &[]))],
                Some(13_000),
                Some(60_000),
            )
            .await;
        assert_eq!(lines(&out), Vec::<String>::new(), "each null row once");
        assert_eq!(join.state_rows(), 0);
    }
}

/// A full outer join pads both sides; a left semi join emits a left row once, on its first
/// match, whatever matches it later.
#[tokio::test]
async fn full_outer_and_left_semi_joins_emit_each_row_once() {
    let full = "SELECT l.k, l.lt, r.rt FROM l FULL JOIN r ON l.k = r.k AND \
                r.rt BETWEEN l.lt - INTERVAL '5' SECOND AND l.lt + INTERVAL '5' SECOND";
    let mut join = harness(full).await;
    let out = join
        .batch_of(
            vec![
                ("l", rows("lt", &[(1, 5), (2, 6)])),
                ("r", rows("rt", &[(1, 8), (3, 9)])),
            ],
            None,
            None,
        )
        .await;
    assert_eq!(lines(&out), ["1,5,8"]);
    let out = join
        .batch_of(
            vec![("l", rows("lt", &[])), ("r", rows("rt", &[]))],
            None,
            Some(30_000),
        )
        .await;
    assert_eq!(lines(&out), ["-,-,9", "2,6,-"]);

    let semi = "SELECT l.k, l.lt FROM l LEFT SEMI JOIN r ON l.k = r.k AND \
                r.rt BETWEEN l.lt - INTERVAL '5' SECOND AND l.lt + INTERVAL '5' SECOND";
    let mut join = harness(semi).await;
    let out = join
        .batch_of(
            vec![
                ("l", rows("lt", &[(1, 5), (2, 6)])),
                ("r", rows("rt", &[(1, 8), (1, 9)])),
            ],
            None,
            None,
        )
        .await;
    assert_eq!(lines(&out), ["1,5"]);
    let out = join
        .batch_of(
            vec![
                ("l", rows("lt", &[])),
                ("r", rows("rt", &[(1, 7), (2, 10)])),
            ],
            None,
            None,
        )
        .await;
    assert_eq!(lines(&out), ["2,6"]);
}
