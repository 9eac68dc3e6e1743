//! Streaming aggregation through the engine API: the exact rows update mode emits per batch,
//! and state that survives a restart of the engine from the checkpoint.

use std::path::Path;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use arrow::util::pretty::pretty_format_batches;
use weir::{Engine, StreamingQuery};

/// The batches as a table with its rows sorted (output order within a batch is unspecified).
pub(crate) fn table(batches: &[RecordBatch]) -> String {
    let text = pretty_format_batches(batches).expect("format").to_string();
    let mut lines: Vec<&str> = text.lines().collect();
    if lines.len() > 4 {
        let body = lines.len() - 1;
        lines[3..body].sort_unstable();
    }
    lines.join("\n")
}

#[tokio::test]
async fn update_mode_emits_exactly_the_groups_each_batch_changed() {
    let engine = Engine::builder().build().unwrap();
    engine
        .execute("CREATE SOURCE s (k VARCHAR, v BIGINT) WITH (connector = 'memory')")
        .await
        .unwrap();
    let query = engine
        .start("CREATE SINK out WITH (connector = 'memory', output_mode = 'update') AS SELECT k, sum(v) AS total FROM s GROUP BY k")
        .await
        .unwrap();
    for rows in ["('a', 1), ('b', 2)", "('a', 10)", "('c', 5), ('c', 5)"] {
        engine
            .execute(&format!("INSERT INTO s VALUES {rows}"))
            .await
            .unwrap();
        query.process_all_available().await.unwrap();
    }
    let output = engine.connectors().memory_output("out").unwrap().batches();
    let per_batch: Vec<String> = output.values().map(|b| table(b)).collect();
    assert_eq!(
        per_batch,
        [
            "+---+-------+\n| k | total |\n+---+-------+\n| a | 1     |\n| b | 2     |\n+---+-------+",
            "+---+-------+\n| k | total |\n+---+-------+\n| a | 11    |\n+---+-------+",
            "+---+-------+\n| k | total |\n+---+-------+\n| c | 10    |\n+---+-------+",
        ]
    );
    let progress = query.progress().unwrap();
    assert_eq!(progress.operators[0].operator_id, "aggregate-0");
    assert_eq!(progress.operators[0].state_rows, 3);
    query.stop().await.unwrap();
}

/// An engine with the memory source `c (v INT, ts TIMESTAMP)`, watermarked `delay_seconds`
/// behind `ts`.
async fn engine_with_source_c(delay_seconds: u32) -> Engine {
    let engine = Engine::builder().build().unwrap();
    engine
        .execute(&format!(
            "CREATE SOURCE c (v INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '{delay_seconds}' SECOND) \
             WITH (connector = 'memory')"
        ))
        .await
        .unwrap();
    engine
}

/// Inserts `values` into `c` and runs `query` until it has read them.
async fn insert_into_c(engine: &Engine, query: &StreamingQuery, values: &str) {
    engine
        .execute(&format!("INSERT INTO c VALUES {values}"))
        .await
        .unwrap();
    query.process_all_available().await.unwrap();
}

fn write(dir: &Path, name: &str, contents: &str) {
    std::fs::write(dir.join(name), contents).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(15));
}

#[tokio::test]
async fn aggregation_state_survives_an_engine_restart_from_the_checkpoint() {
    let input = tempfile::tempdir().unwrap();
    let checkpoint = tempfile::tempdir().unwrap();
    let script = format!(
        "CREATE SOURCE s (k VARCHAR, v BIGINT) WITH (connector = 'files', path = '{}', format = 'json', max_files_per_trigger = '1');\
         CREATE SINK out WITH (connector = 'memory', output_mode = 'complete', checkpoint = '{}', trigger = 'available-now') AS \
         SELECT k, count(*) AS n, sum(v) AS total, count(DISTINCT v) AS distinct_v FROM s GROUP BY k;",
        input.path().display(),
        checkpoint.path().display()
    );
    write(
        input.path(),
        "1.json",
        "{\"k\": \"a\", \"v\": 1}\n{\"k\": \"b\", \"v\": 2}\n",
    );
    write(input.path(), "2.json", "{\"k\": \"a\", \"v\": 1}\n");
    let first = Engine::builder().build().unwrap();
    first.execute(&script).await.unwrap();
    first
        .query("out")
        .await
        .unwrap()
        .await_termination()
        .await
        .unwrap();

    // A new engine knows nothing but the checkpoint: the groups' state must come from there,
    // and so must the distinct values seen (`a`'s 1 again is not a new one).
    write(
        input.path(),
        "3.json",
        "{\"k\": \"a\", \"v\": 3}\n{\"k\": \"c\", \"v\": 4}\n{\"k\": \"a\", \"v\": 1}\n",
    );
    // A different setting does not change a checkpoint's partition count.
    let second = Engine::builder().state_partitions(7).build().unwrap();
    second.execute(&script).await.unwrap();
    let query = second.query("out").await.unwrap();
    query.await_termination().await.unwrap();
    assert_eq!(
        query.recent_progress().len(),
        1,
        "only the new file is read"
    );
    assert_eq!(
        table(&second.sql("SELECT * FROM out ORDER BY k").await.unwrap()),
        "+---+---+-------+------------+\n| k | n | total | distinct_v |\n+---+---+-------+------------+\n\
         | a | 4 | 6     | 2          |\n| b | 1 | 2     | 1          |\n| c | 1 | 4     | 1          |\n\
         +---+---+-------+------------+"
    );
    assert!(
        checkpoint
            .path()
            .join("state/aggregate-0/0/2.delta")
            .exists()
    );
    // The distinct values of `count(DISTINCT v)` (aggregate 2) are state of their own.
    assert!(
        checkpoint
            .path()
            .join("state/aggregate-0.distinct-2/0/2.delta")
            .exists()
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(checkpoint.path().join("metadata.json")).unwrap())
            .unwrap();
    assert_eq!(metadata["state_partitions"], 4);
    for partition in 0..4 {
        assert!(
            checkpoint
                .path()
                .join(format!("state/aggregate-0/{partition}/2.delta"))
                .exists()
        );
    }
    assert!(!checkpoint.path().join("state/aggregate-0/4").exists());
    assert!(
        checkpoint
            .path()
            .join("state/aggregate-0/0/0.snapshot")
            .exists()
    );
}

#[tokio::test]
async fn distinct_counts_keep_each_value_once_and_forget_a_closed_window() {
    let engine = engine_with_source_c(0).await;
    let query = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory', output_mode = 'update') AS \
             SELECT window_start, count(DISTINCT v) AS vs, count(DISTINCT v) FILTER (WHERE v > 1) AS big \
             FROM TUMBLE(c, ts, INTERVAL '10' SECOND) GROUP BY window_start, window_end",
        )
        .await
        .unwrap();
    insert_into_c(
        &engine,
        &query,
        "(1, '2024-01-01 00:00:01'), (2, '2024-01-01 00:00:02'), (2, '2024-01-01 00:00:03'), (NULL, '2024-01-01 00:00:03')",
    )
    .await;
    insert_into_c(
        &engine,
        &query,
        "(2, '2024-01-01 00:00:04'), (3, '2024-01-01 00:00:05'), (1, '2024-01-01 00:00:06')",
    )
    .await;
    let output = engine.connectors().memory_output("out").unwrap().batches();
    // (Batches the watermark alone triggers emit nothing.)
    let per_batch: Vec<String> = output
        .values()
        .filter(|b| b.iter().any(|b| b.num_rows() > 0))
        .map(|b| table(b))
        .collect();
    assert_eq!(
        per_batch,
        [
            "+---------------------+----+-----+\n| window_start        | vs | big |\n+---------------------+----+-----+\n\
             | 2024-01-01T00:00:00 | 2  | 1   |\n+---------------------+----+-----+",
            "+---------------------+----+-----+\n| window_start        | vs | big |\n+---------------------+----+-----+\n\
             | 2024-01-01T00:00:00 | 3  | 2   |\n+---------------------+----+-----+",
        ]
    );
    // One group, and its pairs: {1, 2, 3} counted by `vs`, {2, 3} by `big`.
    assert_eq!(query.progress().unwrap().operators[0].state_rows, 6);
    // The watermark passes the first window's end: its group and its pairs are evicted.
    insert_into_c(&engine, &query, "(5, '2024-01-01 00:00:25')").await;
    insert_into_c(&engine, &query, "(6, '2024-01-01 00:00:26')").await;
    let output = engine.connectors().memory_output("out").unwrap().batches();
    let emitted: Vec<RecordBatch> = output.values().flatten().cloned().collect();
    assert_eq!(
        table(&emitted),
        "+---------------------+----+-----+\n| window_start        | vs | big |\n+---------------------+----+-----+\n\
         | 2024-01-01T00:00:00 | 2  | 1   |\n| 2024-01-01T00:00:00 | 3  | 2   |\n\
         | 2024-01-01T00:00:20 | 1  | 1   |\n| 2024-01-01T00:00:20 | 2  | 2   |\n+---------------------+----+-----+"
    );
    assert_eq!(query.progress().unwrap().operators[0].state_rows, 5);
    query.stop().await.unwrap();
}

#[tokio::test]
async fn late_rows_are_counted_and_the_watermark_is_reported() {
    let engine = engine_with_source_c(2).await;
    let query = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory', output_mode = 'append') AS \
             SELECT window_start, sum(v) AS total FROM TUMBLE(c, ts, INTERVAL '10' SECOND) GROUP BY window_start, window_end",
        )
        .await
        .unwrap();
    insert_into_c(
        &engine,
        &query,
        "(1, '2024-01-01 00:00:01'), (2, '2024-01-01 00:00:15')",
    )
    .await;
    // Watermark after that batch: 00:00:15 - 2 s = 00:00:13, which closes [00:00, 00:10).
    engine.execute("INSERT INTO c VALUES (100, '2024-01-01 00:00:05'), (200, '2024-01-01 00:00:09'), (3, '2024-01-01 00:00:16')").await.unwrap();
    query.process_all_available().await.unwrap();
    let batches = query.recent_progress();
    let last_with_input = batches.iter().rev().find(|p| p.input_rows > 0).unwrap();
    // Two late rows of one window: Spark's `numRowsDroppedByWatermark` counts the group.
    assert_eq!(last_with_input.operators[0].late_rows, 1);
    assert_eq!(last_with_input.watermark_ms, Some(1_704_067_213_000));
    assert_eq!(
        table(&engine.sql("SELECT * FROM out").await.unwrap()),
        "+---------------------+-------+\n| window_start        | total |\n+---------------------+-------+\n| 2024-01-01T00:00:00 | 1     |\n+---------------------+-------+"
    );
    // The closed window was evicted from state; the open one remains.
    assert_eq!(query.progress().unwrap().operators[0].state_rows, 1);
    assert_input_has_no_window_end(&engine, "out").await;
    query.stop().await.unwrap();
}

/// The last batch's physical plan of `query`, from the line showing its streaming aggregation
/// down.
async fn aggregate_plan(engine: &Engine, query: &str) -> Vec<String> {
    let analyzed = engine
        .sql(&format!("EXPLAIN ANALYZE {query}"))
        .await
        .unwrap();
    let text = pretty_format_batches(&analyzed).unwrap().to_string();
    let lines: Vec<String> = text
        .lines()
        .skip_while(|l| !l.contains("StreamingAggregateExec"))
        .map(str::to_string)
        .collect();
    assert!(!lines.is_empty(), "{text}");
    lines
}

/// The line of the last batch's physical plan showing the streaming aggregation of `query`.
async fn aggregate_plan_line(engine: &Engine, query: &str) -> String {
    aggregate_plan(engine, query).await.swap_remove(0)
}

/// Asserts that the input of `query`'s aggregation reads the window start but computes no
/// window end: the end follows from the start, and is added to the rows emitted only.
async fn assert_input_has_no_window_end(engine: &Engine, query: &str) {
    let below = aggregate_plan(engine, query).await[1..].join("\n");
    assert!(below.contains("window_start"), "{below}");
    assert!(!below.contains("window_end"), "{below}");
}

#[tokio::test]
async fn a_hopping_row_is_late_only_in_its_windows_that_closed() {
    let engine = engine_with_source_c(0).await;
    let query = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory', output_mode = 'update') AS \
             SELECT window_start, window_end, sum(v) AS total \
             FROM HOP(c, ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND) GROUP BY window_start, window_end",
        )
        .await
        .unwrap();
    insert_into_c(&engine, &query, "(1, '2024-01-01 00:01:40')").await;
    // The watermark is now 00:01:40. 00:01:32 is in [01:30, 01:45), still open, and in
    // [01:25, 01:40) and [01:20, 01:35), closed: late twice. 00:01:00's three windows closed.
    insert_into_c(
        &engine,
        &query,
        "(10, '2024-01-01 00:01:32'), (100, '2024-01-01 00:01:00')",
    )
    .await;
    let batches = query.recent_progress();
    let last_with_input = batches.iter().rev().find(|p| p.input_rows > 0).unwrap();
    assert_eq!(last_with_input.operators[0].late_rows, 5);
    // The batches that emitted rows (the watermark's move also ran a batch emitting none).
    let output = engine.connectors().memory_output("out").unwrap().batches();
    let per_batch: Vec<String> = output
        .values()
        .filter(|b| b.iter().any(|b| b.num_rows() > 0))
        .map(|b| table(b))
        .collect();
    assert_eq!(
        per_batch,
        [
            "+---------------------+---------------------+-------+\n\
             | window_start        | window_end          | total |\n\
             +---------------------+---------------------+-------+\n\
             | 2024-01-01T00:01:30 | 2024-01-01T00:01:45 | 1     |\n\
             | 2024-01-01T00:01:35 | 2024-01-01T00:01:50 | 1     |\n\
             | 2024-01-01T00:01:40 | 2024-01-01T00:01:55 | 1     |\n\
             +---------------------+---------------------+-------+",
            "+---------------------+---------------------+-------+\n\
             | window_start        | window_end          | total |\n\
             +---------------------+---------------------+-------+\n\
             | 2024-01-01T00:01:30 | 2024-01-01T00:01:45 | 11    |\n\
             +---------------------+---------------------+-------+",
        ]
    );
    let line = aggregate_plan_line(&engine, "out").await;
    assert!(
        line.contains("by panes of 5000 ms in 3 windows each"),
        "{line}"
    );
    query.stop().await.unwrap();
}

#[tokio::test]
async fn a_hopping_window_read_by_a_filter_is_not_aggregated_by_panes() {
    let engine = engine_with_source_c(0).await;
    // The filter reads the window start, so each row must be unnested into its windows
    // before it: the rows of [00:00:55, 00:01:10) are left out.
    let query = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory', output_mode = 'update') AS \
             SELECT window_start, window_end, sum(v) AS total \
             FROM HOP(c, ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND) \
             WHERE window_start >= TIMESTAMP '2024-01-01 00:01:00' GROUP BY window_start, window_end",
        )
        .await
        .unwrap();
    insert_into_c(
        &engine,
        &query,
        "(1, '2024-01-01 00:01:02'), (2, '2024-01-01 00:01:06')",
    )
    .await;
    assert_eq!(
        table(&engine.sql("SELECT * FROM out").await.unwrap()),
        "+---------------------+---------------------+-------+\n\
         | window_start        | window_end          | total |\n\
         +---------------------+---------------------+-------+\n\
         | 2024-01-01T00:01:00 | 2024-01-01T00:01:15 | 3     |\n\
         | 2024-01-01T00:01:05 | 2024-01-01T00:01:20 | 2     |\n\
         +---------------------+---------------------+-------+"
    );
    let line = aggregate_plan_line(&engine, "out").await;
    assert!(!line.contains("panes"), "{line}");
    query.stop().await.unwrap();
}

#[tokio::test]
async fn a_hopping_window_over_a_view_of_another_keeps_the_inner_windows() {
    let engine = engine_with_source_c(0).await;
    engine
        .execute(
            "CREATE VIEW inner_windows AS SELECT v, ts, window_start AS inner_start \
             FROM HOP(c, ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND)",
        )
        .await
        .unwrap();
    // Only the outer windows are aggregated by panes: each row is still in three inner
    // windows, so each outer window counts it three times.
    let query = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory', output_mode = 'update') AS \
             SELECT window_start, window_end, count(*) AS n \
             FROM HOP(inner_windows, ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND) \
             GROUP BY window_start, window_end",
        )
        .await
        .unwrap();
    insert_into_c(&engine, &query, "(1, '2024-01-01 00:01:40')").await;
    assert_eq!(
        table(&engine.sql("SELECT * FROM out").await.unwrap()),
        "+---------------------+---------------------+---+\n\
         | window_start        | window_end          | n |\n\
         +---------------------+---------------------+---+\n\
         | 2024-01-01T00:01:30 | 2024-01-01T00:01:45 | 3 |\n\
         | 2024-01-01T00:01:35 | 2024-01-01T00:01:50 | 3 |\n\
         | 2024-01-01T00:01:40 | 2024-01-01T00:01:55 | 3 |\n\
         +---------------------+---------------------+---+"
    );
    let line = aggregate_plan_line(&engine, "out").await;
    assert!(line.contains("by panes of 5000 ms"), "{line}");
    query.stop().await.unwrap();
}

#[tokio::test]
async fn a_window_end_that_follows_from_the_start_is_output_but_not_kept_in_state() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_source_c(1).await;
    // The end is the first group key and the start the second, and the output has both.
    let query = engine
        .start(&format!(
            "CREATE SINK out WITH (connector = 'memory', output_mode = 'append', checkpoint = '{}') AS \
             SELECT window_end, window_start, sum(v) AS total \
             FROM HOP(c, ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND) GROUP BY window_end, window_start",
            dir.path().display()
        ))
        .await
        .unwrap();
    insert_into_c(
        &engine,
        &query,
        "(1, '2024-01-01 00:00:01'), (2, '2024-01-01 00:00:07'), (4, '2024-01-01 00:00:30')",
    )
    .await;
    // The watermark (00:00:29) closes the three windows holding the first two rows.
    assert_eq!(
        table(&engine.sql("SELECT * FROM out").await.unwrap()),
        "+---------------------+---------------------+-------+\n\
         | window_end          | window_start        | total |\n\
         +---------------------+---------------------+-------+\n\
         | 2024-01-01T00:00:05 | 2023-12-31T23:59:55 | 1     |\n\
         | 2024-01-01T00:00:10 | 2024-01-01T00:00:00 | 3     |\n\
         | 2024-01-01T00:00:15 | 2024-01-01T00:00:05 | 2     |\n\
         +---------------------+---------------------+-------+"
    );
    assert_input_has_no_window_end(&engine, "out").await;
    query.stop().await.unwrap();
    let delta = std::fs::File::open(dir.path().join("state/aggregate-0/0/0.delta")).unwrap();
    let columns: Vec<String> = arrow::ipc::reader::FileReader::try_new(delta, None)
        .unwrap()
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(columns[0], "window_start", "{columns:?}");
    assert!(
        !columns.iter().any(|c| c.contains("window_end")),
        "{columns:?}"
    );
}

#[tokio::test]
async fn a_union_whose_branches_compute_the_window_end_differently_keeps_the_end_as_a_key() {
    let engine = engine_with_source_c(1).await;
    let query = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory', output_mode = 'complete') AS \
             SELECT window_start, window_end, count(*) AS n FROM ( \
               SELECT window_start, window_end FROM TUMBLE(c, ts, INTERVAL '10' SECOND) \
               UNION ALL \
               SELECT window_start, window_start + INTERVAL '1' SECOND AS window_end \
               FROM TUMBLE(c, ts, INTERVAL '10' SECOND)) \
             GROUP BY window_start, window_end",
        )
        .await
        .unwrap();
    insert_into_c(&engine, &query, "(1, '2024-01-01 00:00:01')").await;
    assert_eq!(
        table(&engine.sql("SELECT * FROM out").await.unwrap()),
        "+---------------------+---------------------+---+\n\
         | window_start        | window_end          | n |\n\
         +---------------------+---------------------+---+\n\
         | 2024-01-01T00:00:00 | 2024-01-01T00:00:01 | 1 |\n\
         | 2024-01-01T00:00:00 | 2024-01-01T00:00:10 | 1 |\n\
         +---------------------+---------------------+---+"
    );
    query.stop().await.unwrap();
}

#[tokio::test]
async fn state_kept_with_other_columns_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with_source_c(1).await;
    let sink = |select: &str| {
        format!(
            "CREATE SINK out WITH (connector = 'memory', output_mode = 'update', checkpoint = '{}') AS {select}",
            dir.path().display()
        )
    };
    // State keyed by the window end, then a query over the same checkpoint keyed by the start.
    let first = engine
        .start(&sink(
            "SELECT window_end, count(*) AS n FROM TUMBLE(c, ts, INTERVAL '10' SECOND) GROUP BY window_end",
        ))
        .await
        .unwrap();
    insert_into_c(&engine, &first, "(1, '2024-01-01 00:00:01')").await;
    first.stop().await.unwrap();
    engine.execute("DROP SINK out").await.unwrap();
    // Refused at start, from the checkpoint's metadata, before any batch runs.
    let error = engine
        .start(&sink(
            "SELECT window_start, window_end, count(*) AS n FROM TUMBLE(c, ts, INTERVAL '10' SECOND) GROUP BY window_start, window_end",
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("query 'out' cannot resume")
            && error.contains("operator aggregate-0 now also keeps [key window_start: Timestamp(ns), layout window end from start + 10000 ms]")
            && error.contains("start the changed query under a new sink name"),
        "{error}"
    );
}

/// Groups a batch does not touch stay in the record batches they are in; once a state
/// partition holds more than 16 of them they are concatenated. 40 batches, each adding a
/// group and touching one hot group, into one state partition, go through both.
#[tokio::test]
async fn groups_kept_over_many_batches_stay_right_as_their_state_is_compacted() {
    let engine = Engine::builder().state_partitions(1).build().unwrap();
    engine
        .execute("CREATE SOURCE s (k VARCHAR, v BIGINT) WITH (connector = 'memory')")
        .await
        .unwrap();
    let query = engine
        .start("CREATE SINK out WITH (connector = 'memory', output_mode = 'complete') AS SELECT k, sum(v) AS total, count(*) AS n FROM s GROUP BY k")
        .await
        .unwrap();
    for i in 1..=40 {
        engine
            .execute(&format!("INSERT INTO s VALUES ('g{i}', {i}), ('hot', {i})"))
            .await
            .unwrap();
        query.process_all_available().await.unwrap();
    }
    let output = engine.connectors().memory_output("out").unwrap().batches();
    // In complete mode the sink holds the last batch's whole result.
    let last = output.values().last().unwrap();
    let mut rows: Vec<(String, i64, i64)> = last
        .iter()
        .flat_map(|batch| {
            let keys = batch.column(0).as_string_view();
            let totals = batch.column(1).as_primitive::<Int64Type>();
            let counts = batch.column(2).as_primitive::<Int64Type>();
            (0..batch.num_rows())
                .map(|r| (keys.value(r).to_string(), totals.value(r), counts.value(r)))
                .collect::<Vec<_>>()
        })
        .collect();
    rows.sort();
    let mut expected: Vec<(String, i64, i64)> = (1..=40).map(|i| (format!("g{i}"), i, 1)).collect();
    expected.push(("hot".to_string(), (1..=40).sum(), 40));
    expected.sort();
    assert_eq!(rows, expected);
    assert_eq!(query.progress().unwrap().operators[0].state_rows, 41);
    query.stop().await.unwrap();
}

/// A group key of a dictionary type (here made by `arrow_cast`) with distinct counts: the
/// keys taken back from the groups' numbers, and a closed window's groups, keep its type.
#[tokio::test]
async fn distinct_counts_grouped_by_a_dictionary_key_keep_its_type() {
    let engine = engine_with_source_c(0).await;
    let query = engine
        .start(
            "CREATE SINK out WITH (connector = 'memory', output_mode = 'append') AS \
             SELECT arrow_cast(CAST(v % 2 AS VARCHAR), 'Dictionary(Int32, Utf8)') AS parity, \
             window_start, count(DISTINCT v) AS values, count(*) AS n \
             FROM TUMBLE(c, ts, INTERVAL '10' SECOND) GROUP BY 1, window_start, window_end",
        )
        .await
        .unwrap();
    insert_into_c(
        &engine,
        &query,
        "(1, '2024-01-01 00:00:01'), (3, '2024-01-01 00:00:02'), (3, '2024-01-01 00:00:03'), \
         (2, '2024-01-01 00:00:04')",
    )
    .await;
    // 00:00:15 closes [00:00, 00:10).
    insert_into_c(&engine, &query, "(5, '2024-01-01 00:00:15')").await;
    insert_into_c(&engine, &query, "(7, '2024-01-01 00:00:16')").await;
    assert_eq!(query.last_error(), None);
    assert_eq!(
        table(&engine.sql("SELECT * FROM out").await.unwrap()),
        "+--------+---------------------+--------+---+\n\
         | parity | window_start        | values | n |\n\
         +--------+---------------------+--------+---+\n\
         | 0      | 2024-01-01T00:00:00 | 1      | 1 |\n\
         | 1      | 2024-01-01T00:00:00 | 2      | 3 |\n\
         +--------+---------------------+--------+---+"
    );
    query.stop().await.unwrap();
}
