//! Deduplication end to end: `SELECT DISTINCT` and keep-first `ROW_NUMBER() ... = 1` against
//! DataFusion's batch query over all the input, for any split into micro-batches, and the
//! forms refused.

use proptest::prelude::*;

use weir::Engine;

use crate::joins::{engine_with, engine_with_sources, oracle, run_to_end, side};
use crate::property::{case_runtime, sorted_lines};

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

/// Spark's `dropDuplicatesWithinWatermark` (delay 2 s): a key's first row is emitted as it
/// arrives; the key is kept until the watermark reaches that row's time plus the delay
/// (`expiresAt`), so a duplicate within the delay is dropped and one after it is emitted;
/// late rows are dropped.
#[tokio::test]
async fn drop_duplicates_within_watermark_keeps_a_key_for_the_watermark_delay() {
    let engine = Engine::builder().build().unwrap();
    engine
        .execute(
            "CREATE SOURCE e (id VARCHAR, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '2' \
             SECOND) WITH (connector = 'memory')",
        )
        .await
        .unwrap();
    let query = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory') AS \
             SELECT id, ts FROM DROP_DUPLICATES_WITHIN_WATERMARK(e, id)",
        )
        .await
        .unwrap();
    let step = |rows: &'static str| {
        let (engine, query) = (engine.clone(), query.clone());
        async move {
            engine
                .execute(&format!("INSERT INTO e VALUES {rows}"))
                .await
                .unwrap();
            query.process_all_available().await.unwrap();
        }
    };
    // a at 17 s: emitted, kept until the watermark reaches 19 s. The watermark is 15 s.
    step("('a', '2024-01-01 00:00:17')").await;
    // a at 16 s: a duplicate within the delay; a at 13 s: late.
    step("('a', '2024-01-01 00:00:16'), ('a', '2024-01-01 00:00:13')").await;
    // b at 22 s moves the watermark to 20 s: a's key expires (19 s).
    step("('b', '2024-01-01 00:00:22')").await;
    // a at 21 s: not late, and a's key is gone: emitted.
    step("('a', '2024-01-01 00:00:21')").await;
    let rows = sorted_lines(&engine.sql("SELECT * FROM out").await.unwrap());
    assert_eq!(
        rows,
        [
            "a|2024-01-01T00:00:17",
            "a|2024-01-01T00:00:21",
            "b|2024-01-01T00:00:22"
        ]
    );
    let late: u64 = query
        .recent_progress()
        .iter()
        .flat_map(|p| p.operators.iter().map(|o| o.late_rows))
        .sum();
    assert_eq!(late, 1);
    query.stop().await.unwrap();
    engine
        .execute("CREATE SOURCE plain (id VARCHAR) WITH (connector = 'memory')")
        .await
        .unwrap();
    let error = engine
        .start(
            "CREATE SINK bad WITH (connector = 'memory') AS \
             SELECT * FROM DROP_DUPLICATES_WITHIN_WATERMARK(plain, id)",
        )
        .await
        .map(|_| ());
    let peek = engine
        .sql("SELECT * FROM DROP_DUPLICATES_WITHIN_WATERMARK(e, id)")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        peek.contains("first row per key within the watermark (2000 ms)")
            && peek.contains("runs in continuous queries only"),
        "{peek}"
    );
    let message = format!("{:?}", error.err());
    assert!(
        message.contains("'plain' must be a source declaring a watermark"),
        "{message}"
    );
}
