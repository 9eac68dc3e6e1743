//! The embedding API beyond statements: listeners, subscribing to a query's output, `watch`,
//! the memory limit, a failed query's last error, `EXPLAIN ANALYZE` and `SHOW PROGRESS`, and
//! the examples under `engine/examples/` (custom source, custom sink, UDFs) run end to end.

use std::sync::{Arc, Mutex};

use arrow::util::pretty::pretty_format_batches;
use futures::StreamExt;
use weir::{BatchProgress, Engine, QueryListener, QueryStarted, QueryTerminated};

/// Records every event as a line of text.
#[derive(Debug, Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
}

impl QueryListener for Recorder {
    fn on_query_started(&self, event: &QueryStarted) {
        self.events
            .lock()
            .unwrap()
            .push(format!("started {}", event.name));
    }

    fn on_query_progress(&self, name: &str, progress: &BatchProgress) {
        self.events.lock().unwrap().push(format!(
            "progress {name} batch {} rows {}",
            progress.batch_id, progress.input_rows
        ));
    }

    fn on_query_terminated(&self, event: &QueryTerminated) {
        self.events.lock().unwrap().push(format!(
            "terminated {} error {:?}",
            event.name,
            event.error.as_deref().map(|e| e.contains("Divide by zero"))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_hear_start_progress_and_end_and_a_failed_query_keeps_its_error() {
    let recorder = Arc::new(Recorder::default());
    let engine = Engine::builder()
        .listener(Arc::clone(&recorder) as Arc<dyn QueryListener>)
        .build()
        .unwrap();
    engine
        .execute(
            "CREATE SOURCE s (k INT) WITH (connector = 'memory', max_records_per_trigger = '2')",
        )
        .await
        .unwrap();
    engine
        .execute("INSERT INTO s VALUES (1), (2), (3)")
        .await
        .unwrap();
    let query = engine
        .start("CREATE SINK out WITH (connector = 'memory', trigger = 'available-now') AS SELECT k FROM s")
        .await
        .unwrap();
    query.await_termination().await.unwrap();
    assert_eq!(query.last_error(), None);
    engine.execute("INSERT INTO s VALUES (0)").await.unwrap();
    let failing = engine
        .start("CREATE SINK bad WITH (connector = 'memory', trigger = 'available-now') AS SELECT 10 / k AS x FROM s WHERE k = 0")
        .await
        .unwrap();
    let error = failing.await_termination().await.unwrap_err().to_string();
    assert!(error.contains("Divide by zero"), "{error}");
    assert!(
        failing
            .last_error()
            .is_some_and(|e| e.contains("Divide by zero")),
        "{:?}",
        failing.last_error()
    );
    assert_eq!(
        *recorder.events.lock().unwrap(),
        [
            "started out",
            "progress out batch 0 rows 2",
            "progress out batch 1 rows 1",
            "terminated out error None",
            "started bad",
            // Rows 1 and 2 pass; the batch reading 3 and 0 fails.
            "progress bad batch 0 rows 2",
            "terminated bad error Some(true)",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_streams_each_batch_to_subscribers_and_ends_when_stopped() {
    let engine = Engine::builder().build().unwrap();
    engine
        .execute("CREATE SOURCE s (k VARCHAR, v INT) WITH (connector = 'memory')")
        .await
        .unwrap();
    let query = engine
        .watch("SELECT k, sum(v) AS total FROM s GROUP BY k")
        .await
        .unwrap();
    assert_eq!(query.name(), "watch_1");
    let mut outputs = query.subscribe();
    let mut seen = Vec::new();
    for rows in ["('a', 1), ('b', 2)", "('a', 10)"] {
        engine
            .execute(&format!("INSERT INTO s VALUES {rows}"))
            .await
            .unwrap();
        let output = outputs.next().await.unwrap();
        let mut lines: Vec<String> = pretty_format_batches(&output.rows)
            .unwrap()
            .to_string()
            .lines()
            .skip(3)
            .filter(|l| !l.starts_with('+'))
            .map(str::to_string)
            .collect();
        lines.sort();
        seen.push(lines);
    }
    // An aggregation append mode cannot take is watched in update mode: changed groups only.
    assert_eq!(
        seen,
        [
            vec!["| a | 1     |", "| b | 2     |"],
            vec!["| a | 11    |"],
        ]
    );
    let analyzed = engine.sql("EXPLAIN ANALYZE watch_1").await.unwrap();
    let text = pretty_format_batches(&analyzed).unwrap().to_string();
    // The stateful operator's own line: the group it emitted in the last batch.
    let line = text
        .lines()
        .find(|l| l.contains("StreamingAggregateExec"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("output_rows=1"), "{line}");
    assert!(line.contains("late_rows=0"), "{line}");
    assert!(line.contains("elapsed_compute="), "{line}");
    let progress = engine.sql("SHOW PROGRESS watch_1").await.unwrap();
    assert_eq!(progress.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
    query.stop().await.unwrap();
    assert!(
        outputs.next().await.is_none(),
        "the stream ends with the query"
    );
    assert!(query.subscribe().next().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_limit_fails_a_query_that_needs_more_with_a_resources_error() {
    let engine = Engine::builder().memory_limit(1 << 20).build().unwrap();
    let error = engine
        .sql("SELECT v, count(*) FROM generate_series(1, 2000000) AS t(v) GROUP BY v ORDER BY v DESC LIMIT 1")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("Resources exhausted"), "{error}");
    let roomy = Engine::builder().build().unwrap();
    let rows = roomy
        .sql("SELECT v, count(*) AS n FROM generate_series(1, 2000000) AS t(v) GROUP BY v ORDER BY v DESC LIMIT 1")
        .await
        .unwrap();
    assert_eq!(
        pretty_format_batches(&rows).unwrap().to_string(),
        "+---------+---+\n| v       | n |\n+---------+---+\n| 2000000 | 1 |\n+---------+---+"
    );
}

/// The examples build with `cargo test`; each asserts its own output and exits 0.
#[test]
fn the_examples_run() {
    let deps = std::env::current_exe().unwrap();
    let examples = deps.parent().unwrap().parent().unwrap().join("examples");
    for (example, expected) in [
        ("custom_source", "| evens | total |"),
        ("custom_sink", "{\"id\":2,\"amount\":120.0}"),
        ("udf", "| a    | 3.5088212858554386 | 1350      |"),
    ] {
        let output = std::process::Command::new(examples.join(example))
            .env("WEIR_LOG", "warn")
            .output()
            .unwrap_or_else(|e| panic!("run example {example}: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(expected), "{example}: {stdout}");
    }
}

#[tokio::test]
async fn explain_shows_watermarks_stateful_operators_with_keys_and_the_output_modes() {
    let engine = Engine::builder().build().unwrap();
    engine
        .execute("CREATE SOURCE clicks (user_id INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH (connector = 'memory')")
        .await
        .unwrap();
    let explain = |sql: &'static str| {
        let engine = engine.clone();
        async move {
            let rows = engine.sql(sql).await.unwrap();
            let text = pretty_format_batches(&rows).unwrap().to_string();
            // plan_type -> the first line of its plan text
            text.lines()
                .filter_map(|l| {
                    let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                    (cells.len() == 4 && !cells[1].is_empty() && cells[1] != "plan_type")
                        .then(|| format!("{}: {}", cells[1], cells[2]))
                })
                .collect::<Vec<_>>()
        }
    };
    let windowed = explain(
        "EXPLAIN SELECT user_id, window_start, count(*) FROM TUMBLE(clicks, ts, INTERVAL '1' MINUTE) GROUP BY user_id, window_start, window_end",
    )
    .await;
    assert_eq!(windowed[0], "streaming sources: clicks");
    assert_eq!(windowed[1], "watermarks: clicks: ts - 5s");
    assert_eq!(
        windowed[2],
        "stateful operators: aggregate-0: aggregation keyed by [TUMBLE().user_id, TUMBLE().window_start, TUMBLE().window_end] computing [count(Int64(1))]; window, closed by the watermark"
    );
    assert_eq!(
        windowed[3],
        "output modes: append (each window once, when the watermark passes its end), update, complete"
    );
    assert!(
        windowed[4].starts_with("per-batch plan: Projection:"),
        "{windowed:?}"
    );
    // The window end follows from the start, so only the start is kept in state.
    let plan = engine
        .sql("EXPLAIN SELECT user_id, window_start, count(*) FROM TUMBLE(clicks, ts, INTERVAL '1' MINUTE) GROUP BY user_id, window_start, window_end")
        .await
        .unwrap();
    let plan = pretty_format_batches(&plan).unwrap().to_string();
    assert!(
        plan.contains(
            "window_end=TUMBLE().window_end (= TUMBLE().window_start + 60000 ms, not kept in state)"
        ),
        "{plan}"
    );
    let unwindowed = explain("EXPLAIN SELECT user_id, count(*) FROM clicks GROUP BY user_id").await;
    assert_eq!(
        unwindowed[3],
        "output modes: update, complete (append needs a window, or an event-time key, closed by a watermark)"
    );
    // Grouped by the watermarked event time itself: a group closes when the watermark reaches it.
    let by_time =
        explain("EXPLAIN SELECT ts, user_id, count(*) FROM clicks GROUP BY ts, user_id").await;
    assert_eq!(
        by_time[2..4],
        [
            "stateful operators: aggregate-0: aggregation keyed by [clicks.ts, clicks.user_id] computing [count(Int64(1))]; no window: a group closes when the watermark reaches its clicks.ts",
            "output modes: append (each group once, when the watermark reaches its event time), update, complete",
        ]
    );
    let stateless = explain("EXPLAIN SELECT user_id FROM clicks").await;
    assert_eq!(
        stateless[2],
        "stateful operators: none: each batch's rows are independent"
    );
}
