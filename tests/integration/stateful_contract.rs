//! The stateful rules end to end: the watermark across inputs and within a batch, the end of
//! input (`flush_on_end`), which output modes each sink takes, per-operator progress, and how
//! many state versions the checkpoint keeps.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use weir::{Engine, StreamingQuery};

use crate::aggregate::table;

/// 2024-01-01T00:00:00Z in ms since the epoch.
const MIDNIGHT_MS: i64 = 1_704_067_200_000;

/// Every row the memory sink `name` holds, over all batches.
pub(crate) fn emitted(engine: &Engine, name: &str) -> Vec<RecordBatch> {
    engine
        .connectors()
        .memory_output(name)
        .unwrap()
        .batches()
        .into_values()
        .flatten()
        .collect()
}

fn row_count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

async fn run(engine: &Engine, sql: &str) {
    engine.execute(sql).await.unwrap();
}

/// Inserts `values` into memory source `source` and runs `query` until it has read them
/// (and run the batch the watermark's move triggers, if any).
async fn insert(engine: &Engine, query: &StreamingQuery, source: &str, values: &str) {
    run(engine, &format!("INSERT INTO {source} VALUES {values}")).await;
    query.process_all_available().await.unwrap();
}

/// The names of the files in `dir`, sorted.
fn files_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test]
async fn the_watermark_is_the_minimum_across_sources_so_one_source_alone_closes_no_window() {
    let engine = Engine::builder().build().unwrap();
    for source in ["a", "b"] {
        run(
            &engine,
            &format!(
                "CREATE SOURCE {source} (v INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) \
                 WITH (connector = 'memory')"
            ),
        )
        .await;
    }
    let query = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory', output_mode = 'append') AS \
             SELECT window_start, count(*) AS n, sum(v) AS total FROM ( \
               SELECT window_start, window_end, v FROM TUMBLE(a, ts, INTERVAL '10' SECOND) \
               UNION ALL \
               SELECT window_start, window_end, v FROM TUMBLE(b, ts, INTERVAL '10' SECOND)) \
             GROUP BY window_start, window_end",
        )
        .await
        .unwrap();
    insert(&engine, &query, "a", "(1, '2024-01-01 00:00:01')").await;
    insert(&engine, &query, "b", "(10, '2024-01-01 00:00:02')").await;
    // a: 00:00:01 - 5 s, b: 00:00:02 - 5 s; the minimum is a's.
    assert_eq!(
        query.progress().unwrap().watermark_ms,
        Some(MIDNIGHT_MS - 4_000)
    );
    assert_eq!(row_count(&emitted(&engine, "out")), 0);

    // a alone would put the watermark at 00:00:25, closing [00:00, 00:10) and [00:10, 00:20);
    // b holds it at 23:59:57.
    insert(
        &engine,
        &query,
        "a",
        "(100, '2024-01-01 00:00:30'), (1000, '2024-01-01 00:00:12')",
    )
    .await;
    assert_eq!(
        query.progress().unwrap().watermark_ms,
        Some(MIDNIGHT_MS - 3_000)
    );
    assert_eq!(row_count(&emitted(&engine, "out")), 0);
    assert_eq!(query.progress().unwrap().operators[0].state_rows, 3);

    // b reaches 00:00:20: the minimum is now b's 00:00:15, which closes [00:00, 00:10) only.
    insert(&engine, &query, "b", "(10000, '2024-01-01 00:00:20')").await;
    assert_eq!(
        query.progress().unwrap().watermark_ms,
        Some(MIDNIGHT_MS + 15_000)
    );
    assert_eq!(
        table(&emitted(&engine, "out")),
        "+---------------------+---+-------+\n\
         | window_start        | n | total |\n\
         +---------------------+---+-------+\n\
         | 2024-01-01T00:00:00 | 2 | 11    |\n\
         +---------------------+---+-------+"
    );
    assert_eq!(query.progress().unwrap().operators[0].state_rows, 3);
    query.stop().await.unwrap();
}

#[tokio::test]
async fn rows_out_of_order_within_a_batch_are_not_late_but_a_later_batchs_are() {
    let engine = Engine::builder().build().unwrap();
    run(
        &engine,
        "CREATE SOURCE c (v INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) \
         WITH (connector = 'memory')",
    )
    .await;
    let query = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory', output_mode = 'append') AS \
             SELECT window_start, count(*) AS n, sum(v) AS total \
             FROM TUMBLE(c, ts, INTERVAL '1' MINUTE) GROUP BY window_start, window_end",
        )
        .await
        .unwrap();
    // The watermark becomes 00:00:00.
    insert(&engine, &query, "c", "(1, '2024-01-01 00:00:05')").await;
    // 00:01:30 first would put the watermark at 00:01:25, closing [00:00, 00:01), if it took
    // effect within the batch; it takes effect from the next batch, so 00:00:10 counts.
    insert(
        &engine,
        &query,
        "c",
        "(10, '2024-01-01 00:01:30'), (100, '2024-01-01 00:00:10')",
    )
    .await;
    let batches = query.recent_progress();
    let out_of_order = batches.iter().rev().find(|p| p.input_rows == 2).unwrap();
    assert_eq!(out_of_order.watermark_ms, Some(MIDNIGHT_MS));
    assert_eq!(out_of_order.operators[0].late_rows, 0);
    // The next batch, under 00:01:25, closed [00:00, 00:01) with both its rows.
    assert_eq!(
        query.progress().unwrap().watermark_ms,
        Some(MIDNIGHT_MS + 85_000)
    );
    assert_eq!(
        table(&emitted(&engine, "out")),
        "+---------------------+---+-------+\n\
         | window_start        | n | total |\n\
         +---------------------+---+-------+\n\
         | 2024-01-01T00:00:00 | 2 | 101   |\n\
         +---------------------+---+-------+"
    );

    // Now 00:00:50 is late (its window closed); 00:01:40 is not.
    insert(
        &engine,
        &query,
        "c",
        "(1000, '2024-01-01 00:00:50'), (20, '2024-01-01 00:01:40')",
    )
    .await;
    let batches = query.recent_progress();
    let with_late = batches.iter().rev().find(|p| p.input_rows == 2).unwrap();
    assert_eq!(with_late.watermark_ms, Some(MIDNIGHT_MS + 85_000));
    assert_eq!(with_late.operators[0].late_rows, 1);
    // 00:02:10 moves the watermark to 00:02:05, closing [00:01, 00:02).
    insert(&engine, &query, "c", "(300, '2024-01-01 00:02:10')").await;
    let late_rows: u64 = query
        .recent_progress()
        .iter()
        .map(|p| p.operators[0].late_rows)
        .sum();
    assert_eq!(late_rows, 1);
    assert_eq!(
        table(&emitted(&engine, "out")),
        "+---------------------+---+-------+\n\
         | window_start        | n | total |\n\
         +---------------------+---+-------+\n\
         | 2024-01-01T00:00:00 | 2 | 101   |\n\
         | 2024-01-01T00:01:00 | 2 | 30    |\n\
         +---------------------+---+-------+"
    );
    query.stop().await.unwrap();
}

/// Runs the windowed sum over `c (1 @ 00:00:01, 2 @ 00:00:12, 4 @ 00:00:25)`, watermarked
/// 5 s behind, with `trigger = 'available-now'` and `extra` options, to its end; returns the
/// engine and the query.
async fn available_now_run(extra: &str) -> (Engine, StreamingQuery) {
    let engine = Engine::builder().build().unwrap();
    run(
        &engine,
        "CREATE SOURCE c (v INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) \
         WITH (connector = 'memory')",
    )
    .await;
    run(
        &engine,
        "INSERT INTO c VALUES (1, '2024-01-01 00:00:01'), (2, '2024-01-01 00:00:12'), \
         (4, '2024-01-01 00:00:25')",
    )
    .await;
    let query = engine
        .start(&format!(
            "CREATE SINK out WITH (connector = 'memory', trigger = 'available-now'{extra}) AS \
             SELECT window_start, sum(v) AS total FROM TUMBLE(c, ts, INTERVAL '10' SECOND) \
             GROUP BY window_start, window_end"
        ))
        .await
        .unwrap();
    query.await_termination().await.unwrap();
    (engine, query)
}

#[tokio::test]
async fn the_end_of_input_leaves_open_windows_open_unless_flush_on_end_closes_them() {
    // The final watermark, 00:00:20, closes [00:00, 00:10) and [00:10, 00:20) (a window
    // ending at the watermark is closed), not [00:20, 00:30).
    let (engine, query) = available_now_run("").await;
    assert_eq!(
        table(&emitted(&engine, "out")),
        "+---------------------+-------+\n\
         | window_start        | total |\n\
         +---------------------+-------+\n\
         | 2024-01-01T00:00:00 | 1     |\n\
         | 2024-01-01T00:00:10 | 2     |\n\
         +---------------------+-------+"
    );
    let last = query.progress().unwrap();
    assert_eq!(last.watermark_ms, Some(MIDNIGHT_MS + 20_000));
    assert_eq!(last.operators[0].state_rows, 1);

    let (engine, query) = available_now_run(", flush_on_end = 'true'").await;
    assert_eq!(
        table(&emitted(&engine, "out")),
        "+---------------------+-------+\n\
         | window_start        | total |\n\
         +---------------------+-------+\n\
         | 2024-01-01T00:00:00 | 1     |\n\
         | 2024-01-01T00:00:10 | 2     |\n\
         | 2024-01-01T00:00:20 | 4     |\n\
         +---------------------+-------+"
    );
    let last = query.progress().unwrap();
    assert_eq!(last.watermark_ms, Some(i64::MAX));
    assert_eq!(last.operators[0].state_rows, 0);

    // flush_on_end needs a run that ends.
    let error = engine
        .start(
            "CREATE SINK endless WITH (connector = 'memory', flush_on_end = 'true') AS \
             SELECT window_start, sum(v) AS total FROM TUMBLE(c, ts, INTERVAL '10' SECOND) \
             GROUP BY window_start, window_end",
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "sink 'endless': flush_on_end needs trigger = 'available-now' (a run that ends)"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn the_parquet_sink_refuses_update_and_complete_at_start_and_the_console_sink_takes_them() {
    let engine = Engine::builder().build().unwrap();
    run(
        &engine,
        "CREATE SOURCE s (k VARCHAR, v BIGINT) WITH (connector = 'memory')",
    )
    .await;
    run(&engine, "INSERT INTO s VALUES ('a', 1), ('b', 2), ('a', 3)").await;
    for (mode, debug) in [("update", "Update"), ("complete", "Complete")] {
        let out = tempfile::tempdir().unwrap();
        let checkpoint = tempfile::tempdir().unwrap();
        let error = engine
            .start(&format!(
                "CREATE SINK files_{mode} WITH (connector = 'parquet', path = '{}', checkpoint = '{}', \
                 output_mode = '{mode}') AS SELECT k, count(*) AS n FROM s GROUP BY k",
                out.path().display(),
                checkpoint.path().display()
            ))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(&format!(
                "the parquet sink takes output_mode 'append' only (files are immutable; {debug} \
                 mode re-emits rows that change): use 'append' with a windowed aggregation and a \
                 watermark, or a memory or console sink"
            )),
            "{error}"
        );
        // Refused before anything is written: no checkpoint, no output.
        assert!(!checkpoint.path().join("metadata.json").exists());
        assert_eq!(files_in(out.path()), BTreeSet::new());

        let query = engine
            .start(&format!(
                "CREATE SINK console_{mode} WITH (connector = 'console', output_mode = '{mode}') AS \
                 SELECT k, count(*) AS n FROM s GROUP BY k"
            ))
            .await
            .unwrap();
        query.process_all_available().await.unwrap();
        let progress = query.progress().unwrap();
        assert_eq!((progress.input_rows, progress.output_rows), (3, 2));
        assert_eq!(query.last_error(), None);
        query.stop().await.unwrap();
    }
}

/// A batch's id, watermark, input and output rows, and its operator's state rows, late
/// rows, rows evicted and rows emitted.
type BatchRow = (u64, Option<i64>, u64, u64, u64, u64, u64, u64);

#[tokio::test]
async fn each_batch_reports_its_stateful_operators_state_evictions_late_rows_and_time() {
    let engine = Engine::builder().build().unwrap();
    run(
        &engine,
        "CREATE SOURCE c (k VARCHAR, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '0' SECOND) \
         WITH (connector = 'memory', max_records_per_trigger = '2')",
    )
    .await;
    // Two rows a batch.
    run(
        &engine,
        "INSERT INTO c VALUES \
         ('a', '2024-01-01 00:00:01'), ('b', '2024-01-01 00:00:02'), \
         ('a', '2024-01-01 00:00:12'), ('b', '2024-01-01 00:00:05'), \
         ('a', '2024-01-01 00:00:03'), ('b', '2024-01-01 00:00:25')",
    )
    .await;
    let query = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory', trigger = 'available-now', flush_on_end = 'true') AS \
             SELECT k, window_start, count(*) AS n FROM TUMBLE(c, ts, INTERVAL '10' SECOND) \
             GROUP BY k, window_start, window_end",
        )
        .await
        .unwrap();
    query.await_termination().await.unwrap();
    let progress = query.recent_progress();
    let seconds = |s: i64| Some(MIDNIGHT_MS + s * 1_000);
    // (batch, watermark, input rows, output rows, state rows, late, evicted, emitted):
    // 0: (a, 00:00) and (b, 00:00) open.
    // 1: (a, 00:10) opens, (b, 00:00) grows.
    // 2: under 00:00:12, (a, 00:00:03) is not late: as in Spark, input is late against the
    //    previous batch's watermark (00:00:02), which had not closed [00:00, 00:10); both
    //    groups of [00:00, 00:10) close, (a, 00:00) with it; (b, 00:20) opens.
    // 3: no rows; 00:00:25 closes (a, 00:10).
    // 4: the end of input closes (b, 00:20).
    let expected: [BatchRow; 5] = [
        (0, None, 2, 0, 2, 0, 0, 0),
        (1, seconds(2), 2, 0, 3, 0, 0, 0),
        (2, seconds(12), 2, 2, 2, 0, 2, 2),
        (3, seconds(25), 0, 1, 1, 0, 1, 1),
        (4, Some(i64::MAX), 0, 1, 0, 0, 1, 1),
    ];
    let actual: Vec<_> = progress
        .iter()
        .map(|p| {
            assert_eq!(p.operators.len(), 1);
            let o = &p.operators[0];
            assert_eq!(o.operator_id, "aggregate-0");
            (
                p.batch_id.0,
                p.watermark_ms,
                p.input_rows,
                p.output_rows,
                o.state_rows,
                o.late_rows,
                o.rows_evicted,
                o.rows_emitted,
            )
        })
        .collect();
    assert_eq!(actual, expected);
    for p in &progress {
        let o = &p.operators[0];
        assert!(o.time > Duration::ZERO, "batch {}: {o:?}", p.batch_id.0);
        // State takes memory while it holds groups, and none once every window is evicted.
        if o.state_rows > 0 {
            assert!(o.state_bytes > 0, "batch {}: {o:?}", p.batch_id.0);
        } else {
            assert_eq!(o.state_bytes, 0, "batch {}: {o:?}", p.batch_id.0);
        }
    }
    assert_eq!(
        table(&emitted(&engine, "out")),
        "+---+---------------------+---+\n\
         | k | window_start        | n |\n\
         +---+---------------------+---+\n\
         | a | 2024-01-01T00:00:00 | 2 |\n\
         | a | 2024-01-01T00:00:10 | 1 |\n\
         | b | 2024-01-01T00:00:00 | 2 |\n\
         | b | 2024-01-01T00:00:20 | 1 |\n\
         +---+---------------------+---+"
    );

    let shown = engine.sql("SHOW PROGRESS out").await.unwrap();
    let schema = shown[0].schema();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        columns,
        [
            "batch",
            "input_rows",
            "output_rows",
            "rows_per_second",
            "duration_ms",
            "watermark",
            "late_rows",
            "state_rows",
            "state_bytes",
            "rows_evicted",
            "operator_ms",
            "operators"
        ]
    );
    let cell = |batch: &RecordBatch, column: &str, row: usize| {
        batch
            .column_by_name(column)
            .unwrap()
            .as_string::<i32>()
            .value(row)
            .to_string()
    };
    let rows: Vec<[String; 6]> = shown
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |r| {
                [
                    "batch",
                    "input_rows",
                    "output_rows",
                    "late_rows",
                    "state_rows",
                    "rows_evicted",
                ]
                .map(|c| cell(b, c, r))
            })
        })
        .collect();
    let expected_rows: Vec<[String; 6]> = expected
        .iter()
        .map(|(batch, _, input, output, state, late, evicted, _)| {
            [batch, input, output, late, state, evicted].map(|n| n.to_string())
        })
        .collect();
    let bytes: Vec<String> = progress
        .iter()
        .map(|p| p.operators[0].state_bytes.to_string())
        .collect();
    let shown_bytes: Vec<String> = (0..5).map(|r| cell(&shown[0], "state_bytes", r)).collect();
    assert_eq!(shown_bytes, bytes);
    assert_eq!(rows, expected_rows);
    // The watermark in force, in UTC to the millisecond (none before the first batch).
    let watermarks: Vec<String> = (0..5).map(|r| cell(&shown[0], "watermark", r)).collect();
    assert_eq!(
        watermarks,
        [
            "",
            "2024-01-01T00:00:02.000",
            "2024-01-01T00:00:12.000",
            "2024-01-01T00:00:25.000",
            "end of time"
        ]
    );
}

/// Batch `i` (from 0) adds `('k<i % 3>', i)`.
async fn insert_batch(engine: &Engine, query: &StreamingQuery, i: u64) {
    insert(engine, query, "s", &format!("('k{}', {i})", i % 3)).await;
}

/// The files each state partition of `aggregate-0` should hold: `snapshots`, and the deltas
/// `deltas`.
fn state_files(snapshots: &[u64], deltas: std::ops::RangeInclusive<u64>) -> BTreeSet<String> {
    snapshots
        .iter()
        .map(|v| format!("{v}.snapshot"))
        .chain(deltas.map(|v| format!("{v}.delta")))
        .collect()
}

/// The aggregation the snapshot tests run, into sink `out`.
const COUNT_BY_KEY: &str = "SELECT k, count(*) AS n, sum(v) AS total FROM s GROUP BY k";

/// Starts [`COUNT_BY_KEY`] over a new memory source `s`, checkpointed in `checkpoint`.
async fn start_count_by_key(engine: &Engine, checkpoint: &Path) -> StreamingQuery {
    run(
        engine,
        "CREATE SOURCE s (k VARCHAR, v BIGINT) WITH (connector = 'memory')",
    )
    .await;
    engine
        .start(&format!(
            "CREATE SINK out WITH (connector = 'memory', output_mode = 'complete', checkpoint = '{}') AS {COUNT_BY_KEY}",
            checkpoint.display()
        ))
        .await
        .unwrap()
}

#[tokio::test]
async fn stopping_right_after_a_snapshot_batch_waits_for_the_snapshot_and_what_it_prunes() {
    let checkpoint = tempfile::tempdir().unwrap();
    let engine = Engine::builder().build().unwrap();
    let query = start_count_by_key(&engine, checkpoint.path()).await;
    // Batches 0 to 20: the snapshot of batch 20 is the third, so it prunes snapshot 0 and the
    // deltas up to 10. The query stops as soon as batch 20 has committed.
    for i in 0..21 {
        insert_batch(&engine, &query, i).await;
    }
    assert_eq!(query.progress().unwrap().batch_id.0, 20);
    query.stop().await.unwrap();
    let partitions = checkpoint.path().join("state").join("aggregate-0");
    for partition in 0..4 {
        assert_eq!(
            files_in(&partitions.join(partition.to_string())),
            state_files(&[10, 20], 11..=20),
            "partition {partition}"
        );
    }
}

#[tokio::test]
async fn the_checkpoint_keeps_two_snapshots_and_the_deltas_after_the_older_and_resumes_from_them() {
    let checkpoint = tempfile::tempdir().unwrap();
    let engine = Engine::builder().build().unwrap();
    let query = start_count_by_key(&engine, checkpoint.path()).await;
    let select = COUNT_BY_KEY;
    // Batches 0 to 25: snapshots after 0, 10 and 20.
    for i in 0..26 {
        insert_batch(&engine, &query, i).await;
    }
    assert_eq!(query.progress().unwrap().batch_id.0, 25);
    query.stop().await.unwrap();

    let state = checkpoint.path().join("state");
    assert_eq!(
        files_in(&state),
        BTreeSet::from(["aggregate-0".to_string()])
    );
    let partitions = state.join("aggregate-0");
    assert_eq!(
        files_in(&partitions),
        (0..4).map(|p| p.to_string()).collect::<BTreeSet<_>>()
    );
    // Snapshots are written in the background; stopping waits for them, and for the files
    // the snapshot of batch 20 makes stale to be removed.
    let kept = state_files(&[10, 20], 11..=25);
    for partition in 0..4 {
        let dir = partitions.join(partition.to_string());
        assert_eq!(files_in(&dir), kept, "partition {partition}");
    }

    // Restarted, the query loads snapshot 20 and replays deltas 21 to 25.
    let query = engine
        .start(&format!("INSERT INTO out {select}"))
        .await
        .unwrap();
    run(&engine, "INSERT INTO s VALUES ('k0', 100), ('k3', 7)").await;
    query.process_all_available().await.unwrap();
    let progress = query.progress().unwrap();
    assert_eq!(progress.batch_id.0, 26);
    assert_eq!(progress.input_rows, 2);
    assert_eq!(progress.operators[0].state_rows, 4);
    query.stop().await.unwrap();
    // k0: 0, 3, ..., 24 and 100; k1: 1, 4, ..., 25; k2: 2, 5, ..., 23.
    assert_eq!(
        table(&engine.sql("SELECT * FROM out").await.unwrap()),
        "+----+----+-------+\n\
         | k  | n  | total |\n\
         +----+----+-------+\n\
         | k0 | 10 | 208   |\n\
         | k1 | 9  | 117   |\n\
         | k2 | 8  | 100   |\n\
         | k3 | 1  | 7     |\n\
         +----+----+-------+"
    );
    for partition in 0..4 {
        assert_eq!(
            files_in(&partitions.join(partition.to_string())),
            state_files(&[10, 20], 11..=26),
            "partition {partition}"
        );
    }
}

#[tokio::test]
async fn show_queries_counts_every_batch_not_only_the_ones_progress_keeps() {
    let engine = Engine::builder().build().unwrap();
    run(
        &engine,
        "CREATE SOURCE one (v INT) WITH (connector = 'memory', max_records_per_trigger = '1')",
    )
    .await;
    let query = engine
        .start("CREATE SINK copy WITH (connector = 'memory') AS SELECT v FROM one")
        .await
        .unwrap();
    let values: Vec<String> = (0..130).map(|v| format!("({v})")).collect();
    insert(&engine, &query, "one", &values.join(", ")).await;
    assert_eq!(query.recent_progress().len(), 100);
    assert_eq!(query.batches_run(), 130);
    let shown = engine.sql("SHOW QUERIES").await.unwrap();
    let cell = |name: &str| {
        let column = shown[0].column_by_name(name).unwrap();
        column.as_string::<i32>().value(0).to_string()
    };
    assert_eq!(
        (cell("batches"), cell("last_batch")),
        ("130".into(), "129".into())
    );
    query.stop().await.unwrap();
}
