//! Stream-stream joins end to end: the oracle property (for any split of both inputs into
//! micro-batches, a join's output equals DataFusion's batch join over all the input), the
//! refusals, EXPLAIN's account of the state, and per-side late rows in progress.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use proptest::prelude::*;
use weir::Engine;

use crate::property::{batch_lines, case_runtime, sorted_lines};

/// Joins of `l` and `r` (each `k, ts, v`, watermarked 5 s behind): with a time bound, on an
/// event-time key, without a bound (state kept forever), and the outer and semi kinds.
const JOINS: &[&str] = &[
    "SELECT l.k, l.ts AS lt, l.v AS lv, r.ts AS rt, r.v AS rv FROM l JOIN r ON l.k = r.k \
     AND r.ts BETWEEN l.ts - INTERVAL '3' SECOND AND l.ts + INTERVAL '4' SECOND",
    "SELECT l.k, l.ts AS lt, l.v AS lv, r.ts AS rt, r.v AS rv FROM l, r WHERE l.k = r.k \
     AND l.v < r.v",
    "SELECT l.k, l.ts AS lt, r.v AS rv FROM l JOIN r ON l.ts = r.ts AND l.k = r.k",
    "SELECT l.k, l.ts AS lt, l.v AS lv, r.ts AS rt, r.v AS rv FROM l LEFT JOIN r ON l.k = r.k \
     AND r.ts BETWEEN l.ts - INTERVAL '3' SECOND AND l.ts + INTERVAL '4' SECOND",
    "SELECT l.k, l.ts AS lt, r.ts AS rt, r.v AS rv FROM l RIGHT JOIN r ON l.k = r.k \
     AND l.ts > r.ts - INTERVAL '2' SECOND AND l.ts < r.ts + INTERVAL '5' SECOND AND l.v <> r.v",
    "SELECT l.k AS lk, l.ts AS lt, r.k AS rk, r.ts AS rt FROM l FULL JOIN r ON l.k = r.k \
     AND r.ts BETWEEN l.ts AND l.ts + INTERVAL '6' SECOND",
    "SELECT l.k, l.ts AS lt, l.v AS lv FROM l LEFT SEMI JOIN r ON l.k = r.k \
     AND r.ts BETWEEN l.ts - INTERVAL '1' SECOND AND l.ts + INTERVAL '1' SECOND",
];

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
        Field::new("v", DataType::Int64, false),
    ]))
}

/// Rows `(k, ts seconds, v)` of a source.
pub(crate) type Rows = [(i64, i64, i64)];

/// Rows `(k, ts seconds, v)`.
pub(crate) fn batch(rows: &[(i64, i64, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(TimestampNanosecondArray::from_iter_values(
                rows.iter().map(|r| r.1 * 1_000_000_000),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .expect("batch")
}

pub(crate) async fn oracle(
    query: &str,
    left: &[(i64, i64, i64)],
    right: &[(i64, i64, i64)],
) -> Vec<String> {
    let ctx = SessionContext::new();
    for (name, rows) in [("l", left), ("r", right)] {
        let table = MemTable::try_new(schema(), vec![vec![batch(rows)]]).expect("table");
        ctx.register_table(name, Arc::new(table)).expect("register");
    }
    batch_lines(&ctx, query).await
}

/// Creates sources `l` and `r` (`per_batch` rows a batch each) holding `left` and `right`.
pub(crate) async fn engine_with(
    left: &[(i64, i64, i64)],
    right: &[(i64, i64, i64)],
    per_batch: (usize, usize),
) -> Engine {
    engine_with_sources(&[("l", left, per_batch.0), ("r", right, per_batch.1)]).await
}

/// Creates each source `(name, rows, rows a batch)`, each `k, ts, v` watermarked 5 s behind.
pub(crate) async fn engine_with_sources(sources: &[(&str, &Rows, usize)]) -> Engine {
    let engine = Engine::builder().build().expect("engine");
    for (name, rows, max) in sources {
        engine
            .execute(&format!(
                "CREATE SOURCE {name} (k BIGINT NOT NULL, ts TIMESTAMP NOT NULL, v BIGINT NOT NULL, \
                 WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) \
                 WITH (connector = 'memory', max_records_per_trigger = '{max}')"
            ))
            .await
            .expect("source");
        if !rows.is_empty() {
            engine
                .connectors()
                .memory_stream(name)
                .expect("stream")
                .append(batch(rows))
                .expect("append");
        }
    }
    engine
}

/// `query` run to the end of both inputs (`available-now`, `flush_on_end`, so every row
/// still in state is evicted and its null-padded row emitted at the end).
pub(crate) async fn streamed(
    query: &str,
    left: &[(i64, i64, i64)],
    right: &[(i64, i64, i64)],
    per_batch: (usize, usize),
) -> Vec<String> {
    let engine = engine_with(left, right, per_batch).await;
    run_to_end(&engine, query).await
}

/// Runs `query` into memory sink `out` with `available-now` and `flush_on_end`; its rows.
pub(crate) async fn run_to_end(engine: &Engine, query: &str) -> Vec<String> {
    let handle = engine
        .start(&format!(
            "CREATE SINK out WITH (connector = 'memory', trigger = 'available-now', \
             flush_on_end = 'true') AS {query}"
        ))
        .await
        .expect("start");
    handle.await_termination().await.expect("run");
    sorted_lines(&engine.sql("SELECT * FROM out").await.expect("read sink"))
}

pub(crate) fn side() -> impl Strategy<Value = Vec<(i64, i64, i64)>> {
    // Each side arrives in the order of its event time plus a delay of 0 to 4 s: out of order,
    // but never by more than the watermark's 5 s, so no row is late and every row must be
    // joined as the batch query joins it, though some arrive just after the watermark.
    proptest::collection::vec((0i64..2, 0i64..24, 0i64..5, 0i64..5), 0..40).prop_map(|rows| {
        let mut rows: Vec<(i64, i64, i64, i64)> = rows;
        rows.sort_by_key(|r| r.1 + r.3);
        rows.into_iter().map(|(k, ts, v, _)| (k, ts, v)).collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn stream_stream_joins_match_the_batch_oracle_for_any_batch_split(
        left in side(),
        right in side(),
        per_batch in (1usize..12, 1usize..12),
        query in 0usize..JOINS.len(),
    ) {
        let runtime = case_runtime();
        let (expected, actual) = runtime.block_on(async {
            let q = JOINS[query];
            (oracle(q, &left, &right).await, streamed(q, &left, &right, per_batch).await)
        });
        prop_assert_eq!(actual, expected);
    }
}

const WINDOW: &str = "date_bin(INTERVAL '4' SECOND, ts, TIMESTAMP '1970-01-01T00:00:00')";

/// Window joins (Nexmark q8's shape): both sides in the same tumbling window, the window's end
/// a key, so each side's rows leave state when the watermark closes their window. Pairs of
/// `(streaming query, the same as a batch query)`.
fn window_joins() -> Vec<(String, String)> {
    vec![
        (
            "SELECT a.k, a.window_start, a.v AS av, b.v AS bv FROM TUMBLE(l, ts, INTERVAL '4' \
             SECOND) AS a JOIN TUMBLE(r, ts, INTERVAL '4' SECOND) AS b ON a.k = b.k AND \
             a.window_start = b.window_start AND a.window_end = b.window_end"
                .to_string(),
            "SELECT a.k, date_bin(INTERVAL '4' SECOND, a.ts, TIMESTAMP '1970-01-01T00:00:00') \
             AS window_start, a.v AS av, b.v AS bv FROM l AS a JOIN r AS b ON a.k = b.k AND \
             date_bin(INTERVAL '4' SECOND, a.ts, TIMESTAMP '1970-01-01T00:00:00') = \
             date_bin(INTERVAL '4' SECOND, b.ts, TIMESTAMP '1970-01-01T00:00:00')"
                .to_string(),
        ),
        (
            "SELECT p.k, p.s, q.n FROM (SELECT k, window_start AS s, window_end AS e FROM \
             TUMBLE(l, ts, INTERVAL '4' SECOND) GROUP BY k, window_start, window_end) AS p \
             LEFT JOIN (SELECT k, window_start AS s, window_end AS e, count(*) AS n FROM \
             TUMBLE(r, ts, INTERVAL '4' SECOND) GROUP BY k, window_start, window_end) AS q ON \
             p.k = q.k AND p.s = q.s AND p.e = q.e"
                .to_string(),
            format!(
                "SELECT p.k, p.s, q.n FROM (SELECT k, {WINDOW} AS s FROM l GROUP BY 1, 2) AS p \
                 LEFT JOIN (SELECT k, {WINDOW} AS s, count(*) AS n FROM r GROUP BY 1, 2) AS q \
                 ON p.k = q.k AND p.s = q.s"
            ),
        ),
        // Nexmark q7's shape: each window's maximum joined back to the rows that reach it,
        // bounded by the window's end (so the rows leave state as windows close).
        (
            "SELECT b.k, b.v, b.ts FROM l AS b JOIN (SELECT max(v) AS top, window_end AS wend \
             FROM TUMBLE(l, ts, INTERVAL '4' SECOND) GROUP BY window_start, window_end) AS m \
             ON b.v = m.top AND b.ts >= m.wend - INTERVAL '4' SECOND AND b.ts < m.wend"
                .to_string(),
            format!(
                "SELECT b.k, b.v, b.ts FROM l AS b JOIN (SELECT max(v) AS top, {WINDOW} + \
                 INTERVAL '4' SECOND AS wend FROM l GROUP BY {WINDOW}) AS m ON b.v = m.top AND \
                 b.ts >= m.wend - INTERVAL '4' SECOND AND b.ts < m.wend"
            ),
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn window_joins_match_the_batch_oracle_for_any_batch_split(
        left in side(),
        right in side(),
        per_batch in (1usize..12, 1usize..12),
        case in 0usize..3,
    ) {
        let (streaming, batch) = window_joins().swap_remove(case);
        let runtime = case_runtime();
        let (expected, actual) = runtime.block_on(async {
            (oracle(&batch, &left, &right).await, streamed(&streaming, &left, &right, per_batch).await)
        });
        prop_assert_eq!(actual, expected);
    }
}

async fn refusal(select: &str, mode: &str) -> String {
    let engine = engine_with(&[], &[], (10, 10)).await;
    let error = engine
        .start(&format!(
            "CREATE SINK out WITH (connector = 'memory', output_mode = '{mode}') AS {select}"
        ))
        .await
        .expect_err(select);
    error.to_string()
}

/// What Spark refuses, refused with the reason and what would work.
#[tokio::test]
async fn joins_spark_refuses_are_refused_with_the_reason() {
    let outer = refusal("SELECT l.k FROM l LEFT JOIN r ON l.k = r.k", "append").await;
    assert!(
        outer.contains(
            "a left outer join of two streams needs the left side's rows to be evicted once no \
             match can come"
        ) && outer.contains("BETWEEN"),
        "{outer}"
    );
    let full = refusal(
        "SELECT l.k FROM l FULL JOIN r ON l.k = r.k AND r.ts <= l.ts + INTERVAL '1' SECOND",
        "append",
    )
    .await;
    assert!(
        full.contains("a full outer join of two streams needs the right side's rows"),
        "{full}"
    );
    let anti = refusal("SELECT l.k FROM l LEFT ANTI JOIN r ON l.k = r.k", "append").await;
    assert!(
        anti.contains("a left anti join of two streams is not supported (as in Spark)"),
        "{anti}"
    );
    let no_key = refusal("SELECT l.k FROM l JOIN r ON l.k < r.k", "append").await;
    assert!(
        no_key.contains("a join of two streams needs an equality between the two sides"),
        "{no_key}"
    );
    let update = refusal("SELECT l.k FROM l JOIN r ON l.k = r.k", "update").await;
    assert!(
        update.contains("sink 'out': a join of two streams emits in output_mode 'append' only"),
        "{update}"
    );
}

/// EXPLAIN says how long each side is kept, and that a join without a bound keeps its state
/// forever.
#[tokio::test]
async fn explain_says_how_long_each_side_is_kept() {
    let engine = engine_with(&[], &[], (10, 10)).await;
    let text = |batches: Vec<RecordBatch>| sorted_lines(&batches).join("\n");
    let bounded = text(
        engine
            .sql(&format!("EXPLAIN {}", JOINS[0]))
            .await
            .expect("explain"),
    );
    assert!(
        bounded.contains("keeps left rows until l.ts <= watermark - 4001 ms, right rows until r.ts <= watermark - 3001 ms"),
        "{bounded}"
    );
    let unbounded = text(
        engine
            .sql(&format!("EXPLAIN {}", JOINS[1]))
            .await
            .expect("explain"),
    );
    assert!(
        unbounded
            .contains("keeps left rows forever (no watermark bound: state grows without limit)"),
        "{unbounded}"
    );
    // q7's shape: the window's end (an aggregation's output) bounds the rows joined to its
    // maximum: `b.ts >= m.wend - 4 s` keeps them until `b.ts <= watermark - 4 s - 1 ms`.
    let q7 = text(
        engine
            .sql(&format!("EXPLAIN {}", window_joins()[2].0))
            .await
            .expect("explain"),
    );
    assert!(
        q7.contains(
            "keeps left rows until b.ts <= watermark - 4001 ms, right rows until m.wend <= \
             watermark"
        ),
        "{q7}"
    );
}

/// Late rows of each side are dropped and counted by side in the progress of the join.
#[tokio::test]
async fn late_rows_are_counted_per_side() {
    let engine = engine_with(&[(1, 100, 0)], &[(1, 100, 0)], (10, 10)).await;
    let handle = engine
        .start(&format!(
            "CREATE SINK out WITH (connector = 'memory') AS {}",
            JOINS[0]
        ))
        .await
        .expect("start");
    handle.process_all_available().await.expect("drain");
    // The watermark is now 95 s: rows at or before it are late.
    let stream = |name| engine.connectors().memory_stream(name).expect("stream");
    stream("l")
        .append(batch(&[(1, 90, 1), (1, 96, 2)]))
        .expect("append");
    stream("r")
        .append(batch(&[(1, 80, 3), (1, 85, 4), (1, 97, 5)]))
        .expect("append");
    handle.process_all_available().await.expect("drain");
    let progress = handle.recent_progress();
    let join = |p: &weir::BatchProgress| {
        p.operators
            .iter()
            .find(|o| o.operator_id == "join-0")
            .cloned()
            .expect("join progress")
    };
    let late: u64 = progress.iter().map(|p| join(p).late_rows).sum();
    let by_side = |side: &str| -> u64 {
        progress
            .iter()
            .map(|p| join(p).late_rows_by_input.get(side).copied().unwrap_or(0))
            .sum()
    };
    assert_eq!((late, by_side("left"), by_side("right")), (3, 1, 2));
    let shown = sorted_lines(&engine.sql("SHOW PROGRESS out").await.expect("progress"));
    assert!(
        shown.iter().any(|row| row.contains("join-0: state ")
            && row.contains(", late 3 (left 1, right 2), evicted ")),
        "{shown:?}"
    );
    handle.stop().await.expect("stop");
    let rows = sorted_lines(&engine.sql("SELECT k, lv, rv FROM out").await.expect("sink"));
    // (1, 100) with (1, 100) and (1, 97); (1, 96) with (1, 100) and (1, 97).
    assert_eq!(rows, ["1|0|0", "1|0|5", "1|2|0", "1|2|5"]);
}

/// With a time bound, a join's state stays bounded however long the streams run: each side
/// keeps about the bound plus the watermark delay of rows, not everything it has seen.
#[tokio::test]
async fn a_time_bounded_join_keeps_bounded_state_over_a_long_run() {
    // 60 seconds of input, 10 rows a second on each side, one second a batch.
    let rows: Vec<(i64, i64, i64)> = (0..600).map(|i| (i % 7, i / 10, i)).collect();
    let engine = engine_with(&rows, &rows, (10, 10)).await;
    let handle = engine
        .start(&format!(
            "CREATE SINK out WITH (connector = 'blackhole', trigger = 'available-now') AS {}",
            JOINS[0]
        ))
        .await
        .expect("start");
    handle.await_termination().await.expect("run");
    let state: Vec<u64> = handle
        .recent_progress()
        .iter()
        .flat_map(|p| p.operators.iter().map(|o| o.state_rows))
        .collect();
    // Left rows stay while ts > watermark - 4 s, right while ts > watermark - 3 s, the
    // watermark 5 s behind: at most 10 and 9 seconds of 10 rows (plus the batch's own).
    let peak = state.iter().copied().max().unwrap_or(0);
    assert!(state.len() >= 60, "{} batches", state.len());
    assert!(peak <= 2 * 10 * 11, "state grew to {peak} rows: {state:?}");
    assert!(
        peak >= 150,
        "the state should hold the bound's rows: {state:?}"
    );
}
