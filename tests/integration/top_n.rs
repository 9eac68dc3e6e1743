//! Top-N end to end: a window Top-N (over rows, and over a windowed aggregation's groups)
//! against DataFusion's batch query for any split into micro-batches; a Top-N over the whole
//! stream in complete mode; the modes refused.

use proptest::prelude::*;

use crate::joins::{engine_with_sources, oracle, run_to_end, side};
use crate::property::{case_runtime, sorted_lines};

const WINDOW: &str = "date_bin(INTERVAL '4' SECOND, ts, TIMESTAMP '1970-01-01T00:00:00')";

/// `(streaming query, the same as a batch query)` over source `l` (`k, ts, v`).
fn cases() -> Vec<(String, String)> {
    vec![
        (
            "SELECT window_start, k, v, ts, rn FROM (SELECT *, row_number() OVER (PARTITION BY \
             window_start, window_end ORDER BY v DESC, ts, k) AS rn FROM TUMBLE(l, ts, \
             INTERVAL '4' SECOND)) WHERE rn <= 3"
                .to_string(),
            format!(
                "SELECT window_start, k, v, ts, rn FROM (SELECT *, {WINDOW} AS window_start, \
                 row_number() OVER (PARTITION BY {WINDOW} ORDER BY v DESC, ts, k) AS rn FROM l) \
                 WHERE rn <= 3"
            ),
        ),
        (
            "SELECT window_start, k, n, rn FROM (SELECT *, row_number() OVER (PARTITION BY \
             window_start, window_end ORDER BY n DESC, k) AS rn FROM (SELECT window_start, \
             window_end, k, count(*) AS n FROM TUMBLE(l, ts, INTERVAL '4' SECOND) GROUP BY \
             window_start, window_end, k)) WHERE rn = 1"
                .to_string(),
            format!(
                "SELECT window_start, k, n, rn FROM (SELECT *, row_number() OVER (PARTITION BY \
                 window_start ORDER BY n DESC, k) AS rn FROM (SELECT {WINDOW} AS window_start, \
                 k, count(*) AS n FROM l GROUP BY 1, 2)) WHERE rn = 1"
            ),
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 30, ..ProptestConfig::default() })]

    #[test]
    fn a_window_top_n_matches_the_batch_oracle_for_any_batch_split(
        rows in side(),
        per_batch in 1usize..12,
        case in 0usize..2,
    ) {
        // Rows equal on every ORDER BY column would rank in any order: keep one of each.
        let mut rows = rows;
        let mut seen = std::collections::HashSet::new();
        rows.retain(|r| seen.insert(*r));
        let (streaming, batch) = cases().swap_remove(case);
        let runtime = case_runtime();
        let (expected, actual) = runtime.block_on(async {
            let engine = engine_with_sources(&[("l", &rows, per_batch)]).await;
            (oracle(&batch, &rows, &[]).await, run_to_end(&engine, &streaming).await)
        });
        prop_assert_eq!(actual, expected);
    }
}

/// In complete mode a Top-N over the whole stream holds every key's current ranking.
#[tokio::test]
async fn a_top_n_over_the_stream_in_complete_mode_holds_the_current_rankings() {
    let rows = [
        (1, 10, 5),
        (1, 11, 9),
        (2, 12, 1),
        (1, 13, 7),
        (2, 14, 4),
        (1, 15, 8),
    ];
    let engine = engine_with_sources(&[("l", &rows, 2)]).await;
    let handle = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory', output_mode = 'complete', \
             trigger = 'available-now') AS SELECT k, v, rn FROM (SELECT *, row_number() OVER \
             (PARTITION BY k ORDER BY v DESC) AS rn FROM l) WHERE rn <= 2",
        )
        .await
        .expect("start");
    handle.await_termination().await.expect("run");
    let rows = sorted_lines(&engine.sql("SELECT * FROM out").await.expect("sink"));
    assert_eq!(rows, ["1|8|2", "1|9|1", "2|1|2", "2|4|1"]);
}

/// The modes a Top-N cannot emit in are refused with the reason.
#[tokio::test]
async fn top_n_refuses_the_modes_it_cannot_emit_in() {
    let engine = engine_with_sources(&[("l", &[], 10)]).await;
    let refused = |mode: &'static str, select: &'static str| {
        let engine = engine.clone();
        async move {
            engine
                .start(&format!(
                    "CREATE SINK out WITH (connector = 'memory', output_mode = '{mode}') AS {select}"
                ))
                .await
                .expect_err(select)
                .to_string()
        }
    };
    let global = "SELECT k, v FROM (SELECT *, row_number() OVER (PARTITION BY k ORDER BY v \
                  DESC) AS rn FROM l) WHERE rn <= 2";
    let append = refused("append", global).await;
    assert!(
        append.contains("a Top-N over the whole stream (top-n-0) changes as rows arrive, so output_mode 'append' cannot emit it"),
        "{append}"
    );
    let windowed = "SELECT k, v FROM (SELECT *, row_number() OVER (PARTITION BY window_start, \
                    window_end ORDER BY v DESC) AS rn FROM TUMBLE(l, ts, INTERVAL '1' MINUTE)) \
                    WHERE rn <= 2";
    let update = refused("update", windowed).await;
    assert!(
        update.contains("a window Top-N emits each window's ranking once, when the watermark closes it: use output_mode 'append', not 'update'"),
        "{update}"
    );
}
