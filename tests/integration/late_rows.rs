//! Late rows as Spark (≥ 3.4) decides them. A stateful operator filters its input against the
//! watermark of the *previous* batch (`eventTimeWatermarkForLateEvents`) and closes, emits and
//! evicts with the watermark of the current one (`eventTimeWatermarkForEviction`); a row is
//! late when its window ended at or before that previous watermark, and Spark counts in
//! `numRowsDroppedByWatermark` the groups (window and key) that late rows fell into. For
//! session windows Weir's rule differs (a row is late when it starts before the previous
//! watermark; see the aggregate's module docs).
//!
//! The expected rows here are derived from that rule written out independently of Weir: the
//! batches a `max_records_per_trigger` source makes are known, so is each batch's watermark,
//! and so the rows each batch keeps; DataFusion then aggregates the kept rows as one batch.

use proptest::prelude::*;
use std::collections::BTreeSet;
use weir::{BatchProgress, Engine};

use crate::aggregate::table;
use crate::property::{
    SESSIONS, TUMBLING, batch_lines, case_runtime, event_context, run_over_events, sessions_oracle,
    sorted_lines, windowed_oracle,
};

/// 2024-01-01T00:00:00Z in ms since the epoch.
const MIDNIGHT_MS: i64 = 1_704_067_200_000;

/// A row of the tests' source `e`: event time in seconds, name, amount.
type Row = (i64, Option<String>, i64);

/// The watermark delay of the source `run_over_events` makes.
const DELAY_S: i64 = 5;

#[tokio::test]
async fn a_row_behind_the_watermark_but_not_the_previous_batchs_counts_in_the_window_emitted() {
    let checkpoints = tempfile::tempdir().unwrap();
    let engine = Engine::builder()
        .checkpoint_root(checkpoints.path())
        .build()
        .unwrap();
    engine
        .execute(
            "CREATE SOURCE c (k VARCHAR, v INT, ts TIMESTAMP, \
             WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) \
             WITH (connector = 'memory', max_records_per_trigger = '3')",
        )
        .await
        .unwrap();
    let sink = "CREATE SINK out WITH (connector = 'memory', output_mode = 'append') AS \
                SELECT window_start, k, count(*) AS n, sum(v) AS total \
                FROM TUMBLE(c, ts, INTERVAL '10' SECOND) GROUP BY window_start, window_end, k";
    let query = engine.start(sink).await.unwrap();
    engine
        .execute(
            "INSERT INTO c VALUES \
             ('a', 1, '2024-01-01 00:00:20'), ('a', 2, '2024-01-01 00:00:21'), ('b', 4, '2024-01-01 00:00:22'), \
             ('a', 8, '2024-01-01 00:00:31'), ('b', 16, '2024-01-01 00:00:32'), ('a', 32, '2024-01-01 00:00:13'), \
             ('a', 64, '2024-01-01 00:00:12'), ('a', 128, '2024-01-01 00:00:08'), ('b', 256, '2024-01-01 00:00:09')",
        )
        .await
        .unwrap();
    query.process_all_available().await.unwrap();
    // Batch 0 (00:20, 00:21, 00:22) has no watermark; after it, 00:00:17.
    // Batch 1 (00:31, 00:32, 00:13) runs under 00:00:17, nothing late (batch 0 had none);
    // after it, 00:00:27.
    // Batch 2 runs under 00:00:27 but filters with batch 1's 00:00:17: 00:12 (window ends
    // 00:20 > 00:17) counts although it is older than 00:00:27, and [00:10, 00:20) for 'a',
    // closed by 00:00:27, is emitted with both its rows; 00:08 and 00:09 (window ends 00:10)
    // are late, in two groups ('a' and 'b' of [00:00, 00:10)).
    let progress = query.recent_progress();
    let by_batch =
        |batch: u64| -> &BatchProgress { progress.iter().find(|p| p.batch_id.0 == batch).unwrap() };
    let in_force: Vec<Option<i64>> = (0..3).map(|b| by_batch(b).watermark_ms).collect();
    assert_eq!(
        in_force,
        [None, Some(MIDNIGHT_MS + 17_000), Some(MIDNIGHT_MS + 27_000)]
    );
    let late: Vec<u64> = (0..3).map(|b| by_batch(b).operators[0].late_rows).collect();
    assert_eq!(late, [0, 0, 2]);
    assert_eq!(progress.len(), 3, "no batch runs when the watermark stays");
    assert_eq!(
        table(&crate::stateful_contract::emitted(&engine, "out")),
        "+---------------------+---+---+-------+\n\
         | window_start        | k | n | total |\n\
         +---------------------+---+---+-------+\n\
         | 2024-01-01T00:00:10 | a | 2 | 96    |\n\
         +---------------------+---+---+-------+"
    );
    // The offsets log records both watermarks, so a batch re-run after a crash filters alike.
    let offsets = std::fs::read_to_string(checkpoints.path().join("out/offsets/2.json")).unwrap();
    let offsets: serde_json::Value = serde_json::from_str(&offsets).unwrap();
    assert_eq!(offsets["watermark_ms"], MIDNIGHT_MS + 27_000);
    assert_eq!(offsets["late_watermark_ms"], MIDNIGHT_MS + 17_000);

    // After a restart the previous batch's watermark comes from the offsets log: batch 3
    // filters with batch 2's 00:00:27, so 00:09 is late, and 00:40 moves the watermark to
    // 00:00:35, whose batch emits [00:20, 00:30).
    query.stop().await.unwrap();
    let select = sink.split_once(" AS ").unwrap().1;
    let query = engine
        .start(&format!("INSERT INTO out {select}"))
        .await
        .unwrap();
    engine
        .execute("INSERT INTO c VALUES ('a', 512, '2024-01-01 00:00:09'), ('b', 1024, '2024-01-01 00:00:40')")
        .await
        .unwrap();
    query.process_all_available().await.unwrap();
    let progress = query.recent_progress();
    let summary: Vec<(u64, u64, u64, Option<i64>)> = progress
        .iter()
        .map(|p| {
            (
                p.batch_id.0,
                p.input_rows,
                p.operators[0].late_rows,
                p.watermark_ms,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (3, 2, 1, Some(MIDNIGHT_MS + 27_000)),
            (4, 0, 0, Some(MIDNIGHT_MS + 35_000))
        ]
    );
    assert_eq!(
        table(&crate::stateful_contract::emitted(&engine, "out")),
        "+---------------------+---+---+-------+\n\
         | window_start        | k | n | total |\n\
         +---------------------+---+---+-------+\n\
         | 2024-01-01T00:00:10 | a | 2 | 96    |\n\
         | 2024-01-01T00:00:20 | a | 2 | 3     |\n\
         | 2024-01-01T00:00:20 | b | 1 | 4     |\n\
         +---------------------+---+---+-------+"
    );
    query.stop().await.unwrap();
}

/// Spark's rule over `rows` fed `per_batch` at a time with a 5 s watermark delay: for each
/// batch, the watermark its late rows are judged by (the one in force for the previous
/// batch: none for batches 0 and 1).
fn late_watermarks(rows: &[Row], per_batch: usize) -> Vec<Option<i64>> {
    let mut after = Vec::new();
    let mut max_s: Option<i64> = None;
    for chunk in rows.chunks(per_batch) {
        max_s = chunk.iter().map(|r| r.0).chain(max_s).max();
        after.push(max_s.map(|m| (m - DELAY_S) * 1000));
    }
    (0..after.len())
        .map(|i| if i >= 2 { after[i - 2] } else { None })
        .collect()
}

/// The `(row, closing time in ms)` pairs Spark's rule keeps and the late groups it counts
/// per batch, for rows that close at the times `closes` gives (one per window of the row),
/// `late(close, watermark)` deciding lateness.
fn spark_rule(
    rows: &[Row],
    per_batch: usize,
    closes: impl Fn(i64) -> Vec<i64>,
    late: impl Fn(i64, i64) -> bool,
) -> (Vec<(Row, i64)>, u64) {
    let thresholds = late_watermarks(rows, per_batch);
    let mut kept = Vec::new();
    let mut late_groups = 0;
    for (chunk, threshold) in rows.chunks(per_batch).zip(thresholds) {
        let mut groups = BTreeSet::new();
        for row in chunk {
            for close in closes(row.0) {
                match threshold {
                    Some(w) if late(close, w) => {
                        groups.insert((row.1.clone(), close));
                    }
                    _ => kept.push((row.clone(), close)),
                }
            }
        }
        late_groups += groups.len() as u64;
    }
    (kept, late_groups)
}

/// Runs `query` over `rows` (in this order, `per_batch` rows a batch) to the end of the
/// input; returns the sink's sorted rows and the late rows the operator reported in all.
async fn streamed(rows: &[Row], per_batch: usize, query: &str) -> (Vec<String>, u64) {
    let (engine, query) = run_over_events(rows, per_batch, query).await;
    let progress = query.recent_progress();
    assert!(progress.len() < 100, "every batch's progress is kept");
    let late = progress
        .iter()
        .flat_map(|p| p.operators.iter().map(|o| o.late_rows))
        .sum();
    let rows = sorted_lines(&engine.sql("SELECT * FROM out").await.unwrap());
    (rows, late)
}

const HOPPING: &str = "SELECT window_start, window_end, name, count(*) AS n, sum(amount) AS total \
    FROM HOP(e, ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND) GROUP BY window_start, window_end, name";

/// The ends, in ms, of the three 15 s windows sliding by 5 s that hold second `ts`.
fn hop_ends(ts: i64) -> Vec<i64> {
    let pane = ts.div_euclid(5) * 5;
    (0..3).map(|j| (pane - 5 * j + 15) * 1000).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Tumbling windows over rows out of order: the rows Spark's rule keeps, aggregated as one
    /// batch, are the windows emitted; the late groups are the ones the rule counts.
    #[test]
    fn tumbling_windows_keep_and_count_late_rows_by_sparks_rule_for_any_batch_split(
        rows in proptest::collection::vec((0i64..120, proptest::option::of("[ab]"), -100i64..100), 0..80),
        per_batch in 1usize..12,
    ) {
        let (kept, late) = spark_rule(
            &rows,
            per_batch,
            |ts| vec![(ts.div_euclid(10) * 10 + 10) * 1000],
            |end, watermark| end <= watermark,
        );
        let kept: Vec<Row> = kept.into_iter().map(|(row, _)| row).collect();
        let runtime = case_runtime();
        let (expected, actual) = runtime.block_on(async {
            (windowed_oracle(&kept).await, streamed(&rows, per_batch, TUMBLING).await)
        });
        prop_assert_eq!(actual, (expected, late));
    }

    /// Hopping windows: a row is late, and counted, per window of it that the previous
    /// batch's watermark closed, and counts in its other windows.
    #[test]
    fn hopping_windows_keep_and_count_late_rows_by_sparks_rule_for_any_batch_split(
        rows in proptest::collection::vec((0i64..120, proptest::option::of("[ab]"), -100i64..100), 0..80),
        per_batch in 1usize..12,
    ) {
        let (kept, late) = spark_rule(&rows, per_batch, hop_ends, |end, watermark| end <= watermark);
        // Each kept (row, window) as a row at the window's start, aggregated by start.
        let windows: Vec<Row> = kept
            .into_iter()
            .map(|((_, name, amount), end)| (end / 1000 - 15, name, amount))
            .collect();
        let runtime = case_runtime();
        let (expected, actual) = runtime.block_on(async {
            let ctx = event_context(&windows);
            let oracle = "SELECT ts AS window_start, ts + INTERVAL '15' SECOND AS window_end, name, \
                          count(*) AS n, sum(amount) AS total FROM e GROUP BY ts, name";
            (batch_lines(&ctx, oracle).await, streamed(&rows, per_batch, HOPPING).await)
        });
        prop_assert_eq!(actual, (expected, late));
    }

    /// Session windows, by Weir's rule: a row starting before the previous batch's watermark
    /// is late (each late row counts); the sessions of the other rows are the ones emitted.
    #[test]
    fn session_windows_drop_rows_starting_before_the_previous_watermark_for_any_batch_split(
        rows in proptest::collection::vec((0i64..200, proptest::option::of("[ab]"), -100i64..100), 0..60),
        per_batch in 1usize..12,
    ) {
        let (kept, _) = spark_rule(&rows, per_batch, |ts| vec![ts * 1000], |start, watermark| start < watermark);
        let late = (rows.len() - kept.len()) as u64;
        let kept: Vec<Row> = kept.into_iter().map(|(row, _)| row).collect();
        let runtime = case_runtime();
        let (expected, actual) = runtime.block_on(async {
            (sessions_oracle(&kept).await, streamed(&rows, per_batch, SESSIONS).await)
        });
        prop_assert_eq!(actual, (expected, late));
    }
}
