//! Top-N's rules on scripted batches; each expected row follows from the rule in the module
//! docs (Flink's window Top-N; a whole-stream ranking in update and complete modes).

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::pretty::pretty_format_batches;

use crate::physical::harness::OperatorHarness;
use crate::runtime::OutputMode;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("price", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]))
}

/// Rows `(k, price, ts seconds)`.
fn rows(rows: &[(i64, i64, i64)]) -> Vec<RecordBatch> {
    let column = |f: fn(&(i64, i64, i64)) -> i64| Int64Array::from_iter_values(rows.iter().map(f));
    let times = TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.2 * 1000));
    vec![
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(column(|r| r.0)),
                Arc::new(column(|r| r.1)),
                Arc::new(times),
            ],
        )
        .unwrap(),
    ]
}

/// Sorted lines of the cells, times as seconds.
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

const WINDOW_TOP_2: &str = "SELECT window_start, k, price, rn FROM (SELECT *, row_number() OVER \
    (PARTITION BY window_start, window_end ORDER BY price DESC) AS rn \
    FROM TUMBLE(s, ts, INTERVAL '10' SECOND)) WHERE rn <= 2";

/// A window's two highest prices, emitted once, when the watermark passes the window's end;
/// a row for a window the previous batch's watermark closed is late.
#[tokio::test]
async fn a_window_top_n_emits_each_windows_ranking_once_when_it_closes() {
    for restart in [false, true] {
        let mut top =
            OperatorHarness::new(schema(), Some("ts"), WINDOW_TOP_2, OutputMode::Append).await;
        let out = top
            .batch(
                rows(&[(1, 5, 1), (2, 9, 2), (3, 7, 3), (4, 8, 12)]),
                None,
                None,
            )
            .await;
        assert_eq!(lines(&out), Vec::<String>::new());
        assert_eq!(
            top.state_rows(),
            3,
            "only the window's first two rows are kept"
        );
        if restart {
            top.restart().await;
        }
        // (5, 8, 9): a tie with nothing; it beats 7. Watermark 10 s closes [0, 10).
        let out = top.batch(rows(&[(5, 8, 9)]), None, Some(10_000)).await;
        assert_eq!(lines(&out), ["00,2,9,1", "00,5,8,2"]);
        if restart {
            top.restart().await;
        }
        // Late: (6, 99, 4) belongs to the closed window.
        let out = top
            .batch(rows(&[(6, 99, 4), (7, 8, 15)]), Some(10_000), Some(20_000))
            .await;
        assert_eq!(
            lines(&out),
            ["10,4,8,1", "10,7,8,2"],
            "ties rank in arrival order"
        );
        assert_eq!(top.metrics("top-n-0").late_rows, 1);
        assert_eq!(top.state_rows(), 0);
    }
}

const TOP_2_PER_KEY: &str = "SELECT k, price, rn FROM (SELECT *, row_number() OVER \
    (PARTITION BY k ORDER BY price DESC) AS rn FROM s) WHERE rn <= 2";

/// Over the whole stream: `update` emits the ranking of each key a batch changed, `complete`
/// every ranking each batch.
#[tokio::test]
async fn a_top_n_over_the_stream_emits_changed_rankings_in_update_and_all_in_complete() {
    let mut top =
        OperatorHarness::new(schema(), Some("ts"), TOP_2_PER_KEY, OutputMode::Update).await;
    let out = top
        .batch(rows(&[(1, 5, 1), (1, 7, 2), (2, 3, 3)]), None, None)
        .await;
    assert_eq!(lines(&out), ["1,5,2", "1,7,1", "2,3,1"]);
    // 4 does not enter key 1's ranking; 6 does.
    let out = top.batch(rows(&[(1, 4, 4), (2, 1, 5)]), None, None).await;
    assert_eq!(lines(&out), ["2,1,2", "2,3,1"]);
    let out = top.batch(rows(&[(1, 6, 6)]), None, None).await;
    assert_eq!(lines(&out), ["1,6,2", "1,7,1"]);
    assert_eq!(top.state_rows(), 4);
    // A batch the watermark alone triggers changes no ranking.
    let out = top.batch(rows(&[]), None, Some(60_000)).await;
    assert_eq!(lines(&out), Vec::<String>::new());
    assert_eq!(top.state_rows(), 4);
    let out = top.batch(rows(&[(2, 0, 7)]), None, Some(60_000)).await;
    assert_eq!(lines(&out), Vec::<String>::new(), "2 enters no ranking");
    let out = top.batch(rows(&[(2, 9, 8)]), None, Some(60_000)).await;
    assert_eq!(lines(&out), ["2,3,2", "2,9,1"]);

    let mut top =
        OperatorHarness::new(schema(), Some("ts"), TOP_2_PER_KEY, OutputMode::Complete).await;
    top.batch(rows(&[(1, 5, 1), (1, 7, 2), (2, 3, 3)]), None, None)
        .await;
    let out = top.batch(rows(&[(1, 6, 6)]), None, None).await;
    assert_eq!(lines(&out), ["1,6,2", "1,7,1", "2,3,1"]);
}

/// Without PARTITION BY the whole stream is one ranking; ties rank by the rows' values
/// whichever arrives first.
#[tokio::test]
async fn a_top_n_without_partition_ranks_the_whole_stream_and_ties_by_value() {
    let query = "SELECT k, price, rn FROM (SELECT *, row_number() OVER (ORDER BY price DESC) \
                 AS rn FROM s) WHERE rn <= 2";
    let mut top = OperatorHarness::new(schema(), Some("ts"), query, OutputMode::Complete).await;
    top.batch(rows(&[(7, 8, 1), (1, 5, 2)]), None, None).await;
    let out = top.batch(rows(&[(4, 8, 3), (2, 3, 4)]), None, None).await;
    assert_eq!(lines(&out), ["4,8,1", "7,8,2"]);
    assert_eq!(top.state_rows(), 2);
}
