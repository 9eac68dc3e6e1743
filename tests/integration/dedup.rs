//! Deduplication end to end: `SELECT DISTINCT` and keep-first `ROW_NUMBER() ... = 1` against
//! DataFusion's batch query over all the input, for any split into micro-batches, and the
//! forms refused.

use proptest::prelude::*;

use crate::joins::{engine_with, engine_with_sources, oracle, run_to_end, side};
use crate::property::case_runtime;

/// Over source `l` (`k, ts, v`, watermarked 5 s behind, out of order by up to 4 s).
const DEDUPS: &[&str] = &[
    "SELECT DISTINCT k, ts FROM l",
    "SELECT DISTINCT k, v FROM l",
    "SELECT DISTINCT k % 2 AS parity, v FROM l WHERE v > 0",
    // A key's earliest time (several rows may share it, so only the time is compared).
    "SELECT k, ts, rn FROM (SELECT k, ts, v, row_number() OVER (PARTITION BY k ORDER BY ts) AS rn \
     FROM l) WHERE rn = 1",
    "SELECT v, ts FROM (SELECT *, row_number() OVER (PARTITION BY v, k ORDER BY ts ASC) AS n \
     FROM l) AS firsts WHERE n <= 1",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 30, ..ProptestConfig::default() })]

    #[test]
    fn deduplication_matches_the_batch_oracle_for_any_batch_split(
        rows in side(),
        per_batch in 1usize..12,
        query in 0usize..DEDUPS.len(),
    ) {
        let runtime = case_runtime();
        let (expected, actual) = runtime.block_on(async {
            let q = DEDUPS[query];
            let engine = engine_with_sources(&[("l", &rows, per_batch)]).await;
            (oracle(q, &rows, &[]).await, run_to_end(&engine, q).await)
        });
        prop_assert_eq!(actual, expected);
    }
}

/// Keep-first needs the event time to order by.
#[tokio::test]
async fn keep_first_needs_the_watermarked_event_time_ascending() {
    let engine = engine_with(&[], &[], (10, 10)).await;
    let start = |select: &str| {
        let engine = engine.clone();
        let select = select.to_string();
        async move {
            engine
                .start(&format!(
                    "CREATE SINK out WITH (connector = 'memory') AS {select}"
                ))
                .await
                .expect_err(&select)
                .to_string()
        }
    };
    let by_value = start(
        "SELECT k FROM (SELECT k, row_number() OVER (PARTITION BY k ORDER BY v) AS rn FROM l) \
         WHERE rn = 1",
    )
    .await;
    assert!(
        by_value.contains("a Top-N over the whole stream (top-n-0) changes as rows arrive")
            && by_value.contains(
                "to keep each key's first row instead, ORDER BY the source's watermarked \
                 event-time column, ascending"
            ),
        "{by_value}"
    );
}

/// An earlier row arriving after a later one, but not late, is the key's first row: a key is
/// only final when the watermark reaches its earliest row.
#[tokio::test]
async fn keep_first_waits_for_the_watermark_before_a_key_is_final() {
    // One row a batch: 10 s, then 12 s (watermark 5 s), then 9 s (watermark 7 s: not late).
    let rows = [(0, 10, 1), (0, 12, 2), (0, 9, 3), (0, 30, 4)];
    let engine = engine_with_sources(&[("l", &rows, 1)]).await;
    let query = "SELECT k, ts, v FROM (SELECT *, row_number() OVER (PARTITION BY k ORDER BY ts) \
                 AS rn FROM l) WHERE rn = 1";
    assert_eq!(
        run_to_end(&engine, query).await,
        ["0|1970-01-01T00:00:09|3"]
    );
}
