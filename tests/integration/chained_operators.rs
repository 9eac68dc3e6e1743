//! Several stateful operators in one query: an aggregation over a join, over another
//! aggregation, a join of two aggregations (Nexmark q5 as written), an aggregation over an
//! aggregation over a join (q4's shape) and a Top-N over a join (q9's shape), each against DataFusion's batch query for any split into micro-batches; and
//! the chains refused because an inner operator cannot emit each row once.
//!
//! The rule under test (Spark's `EventTimeWatermarkPropagator`): an operator above a join
//! works with the join's output watermark, the minimum of its input watermark and its sides'
//! state watermarks, so a joined row the join emits late in event time is not dropped as late
//! by the aggregation above it. With the query's own watermark, case 0 drops rows.

use proptest::prelude::*;
use weir::Engine;

use crate::joins::{Rows, engine_with, oracle, side};
use crate::property::{case_runtime, sorted_lines};

const WINDOW: &str = "date_bin(INTERVAL '4' SECOND, ts, TIMESTAMP '1970-01-01T00:00:00')";
const JOIN: &str =
    "l.k = r.k AND r.ts BETWEEN l.ts - INTERVAL '3' SECOND AND l.ts + INTERVAL '4' SECOND";

/// The views the streaming queries read: a time-bounded join, and counts per key and window.
fn views() -> Vec<String> {
    vec![
        format!("CREATE VIEW j AS SELECT l.k, l.ts, r.ts AS rts, r.v FROM l JOIN r ON {JOIN}"),
        "CREATE VIEW counts AS SELECT k, window_start, window_end, count(*) AS n FROM \
         TUMBLE(l, ts, INTERVAL '4' SECOND) GROUP BY k, window_start, window_end"
            .to_string(),
    ]
}

/// `(streaming query, output mode, the same as a batch query)`.
fn cases() -> Vec<(String, &'static str, String)> {
    let batch_counts =
        format!("SELECT k, {WINDOW} AS window_start, count(*) AS n FROM l GROUP BY 1, 2");
    vec![
        // A windowed aggregation over a join, windowed on the left side's time.
        (
            "SELECT k, window_start, count(*) AS n, sum(v) AS total FROM TUMBLE(j, ts, \
             INTERVAL '4' SECOND) GROUP BY k, window_start, window_end"
                .to_string(),
            "append",
            format!(
                "SELECT l.k, date_bin(INTERVAL '4' SECOND, l.ts, TIMESTAMP \
                 '1970-01-01T00:00:00') AS window_start, count(*) AS n, sum(r.v) AS total \
                 FROM l JOIN r ON {JOIN} GROUP BY 1, 2"
            ),
        ),
        // An aggregation over a windowed aggregation, by the same window.
        (
            "SELECT window_start, max(n) AS top, count(*) AS keys FROM counts GROUP BY \
             window_start, window_end"
                .to_string(),
            "append",
            format!(
                "SELECT window_start, max(n) AS top, count(*) AS keys FROM ({batch_counts}) \
                 GROUP BY window_start"
            ),
        ),
        // Nexmark q5 as written: each window's counts joined with their maximum.
        (
            "SELECT a.k, a.window_start, a.n FROM counts AS a JOIN (SELECT window_start, \
             window_end, max(n) AS top FROM counts GROUP BY window_start, window_end) AS m ON \
             a.window_start = m.window_start AND a.window_end = m.window_end AND a.n >= m.top"
                .to_string(),
            "append",
            format!(
                "SELECT a.k, a.window_start, a.n FROM ({batch_counts}) AS a JOIN (SELECT \
                 window_start, max(n) AS top FROM ({batch_counts}) GROUP BY window_start) AS m \
                 ON a.window_start = m.window_start AND a.n >= m.top"
            ),
        ),
        // Nexmark q4's shape: each left row's best match (closed when the join's watermark
        // passes its time), then how many rows have each best value, over the whole stream.
        (
            "SELECT n, count(*) AS c FROM (SELECT k, ts, max(v) AS n FROM j GROUP BY k, ts) \
             GROUP BY n"
                .to_string(),
            "complete",
            format!(
                "SELECT n, count(*) AS c FROM (SELECT l.k, l.ts, max(r.v) AS n FROM l JOIN r \
                 ON {JOIN} GROUP BY 1, 2) GROUP BY n"
            ),
        ),
        // Nexmark q9's shape: each key's best joined row, a Top-N over the whole stream.
        (
            "SELECT k, ts, v, rn FROM (SELECT *, row_number() OVER (PARTITION BY k ORDER BY v \
             DESC, ts, rts) AS rn FROM j) WHERE rn = 1"
                .to_string(),
            "complete",
            format!(
                "SELECT k, ts, v, rn FROM (SELECT l.k, l.ts, r.v, row_number() OVER \
                 (PARTITION BY l.k ORDER BY r.v DESC, l.ts, r.ts) AS rn FROM l JOIN r ON \
                 {JOIN}) WHERE rn = 1"
            ),
        ),
    ]
}

/// Runs `query` over sources `l` and `r` to the end of their input in `mode`; the sink's rows.
async fn run(engine: &Engine, query: &str, mode: &str) -> Vec<String> {
    for view in views() {
        engine.execute(&view).await.expect("view");
    }
    let handle = engine
        .start(&format!(
            "CREATE SINK out WITH (connector = 'memory', trigger = 'available-now', \
             flush_on_end = 'true', output_mode = '{mode}') AS {query}"
        ))
        .await
        .expect("start");
    handle.await_termination().await.expect("run");
    sorted_lines(&engine.sql("SELECT * FROM out").await.expect("read sink"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn chained_operators_match_the_batch_oracle_for_any_batch_split(
        left in side(),
        right in side(),
        per_batch in (1usize..12, 1usize..12),
        case in 0usize..5,
    ) {
        let (streaming, mode, batch) = cases().swap_remove(case);
        let runtime = case_runtime();
        let (expected, actual) = runtime.block_on(async {
            let engine = engine_with(&left, &right, per_batch).await;
            (oracle(&batch, &left, &right).await, run(&engine, &streaming, mode).await)
        });
        prop_assert_eq!(actual, expected);
    }
}

/// The rows of case 0 when the join emits a row older than the query's watermark: left rows
/// at 15 s and 21 s arrive first, and right row 21 s moves the watermark to 16 s, which
/// closes window `[12 s, 16 s)` for late rows from the third batch on. Right row 19 s arrives
/// in that batch, not late (after 16 s), and joins both left rows. The one at 15 s falls in
/// the closed window, which is still open for the aggregation above: its watermark is the
/// join's, 4.001 s behind (with the query's own, the row would be dropped as late).
#[tokio::test]
async fn an_aggregation_over_a_join_keeps_rows_the_join_emits_behind_the_watermark() {
    let left: &Rows = &[(0, 15, 0), (0, 21, 0)];
    let right: &Rows = &[(0, 21, 1), (0, 20, 2), (0, 19, 3)];
    let engine = engine_with(left, right, (2, 1)).await;
    let (query, mode, _) = cases().swap_remove(0);
    let rows = run(&engine, &query, mode).await;
    assert_eq!(
        rows,
        ["0|1970-01-01T00:00:12|1|3", "0|1970-01-01T00:00:20|3|6"]
    );
}

/// An inner operator that cannot emit each row once is refused, naming it and why.
#[tokio::test]
async fn an_operator_feeding_another_must_emit_in_append_mode() {
    let engine = engine_with(&[], &[], (10, 10)).await;
    for view in views() {
        engine.execute(&view).await.expect("view");
    }
    let error = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory', output_mode = 'update') AS SELECT \
             n, count(*) FROM (SELECT k, count(*) AS n FROM l GROUP BY k) GROUP BY n",
        )
        .await
        .expect_err("an aggregation over an unwindowed aggregation")
        .to_string();
    assert!(
        error.contains("sink 'out': aggregate-0 feeds another stateful operator, so it must emit each row once, in append mode, and it cannot:"),
        "{error}"
    );
}

/// EXPLAIN says which watermark an operator above a join works with, and that an operator
/// feeding another emits in append mode.
#[tokio::test]
async fn explain_says_which_watermark_each_chained_operator_works_with() {
    let engine = engine_with(&[], &[], (10, 10)).await;
    for view in views() {
        engine.execute(&view).await.expect("view");
    }
    let (query, _, _) = cases().swap_remove(0);
    let plan = sorted_lines(
        &engine
            .sql(&format!("EXPLAIN {query}"))
            .await
            .expect("explain"),
    )
    .join("\n");
    assert!(
        plan.contains(
            "(works with the watermark - 4001 ms: a join below it emits rows that far behind)"
        ),
        "{plan}"
    );
    assert!(
        plan.contains(
            "join-0: append, whatever the sink's mode (it feeds another stateful operator)"
        ),
        "{plan}"
    );
}
