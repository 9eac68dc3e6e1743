//! Restarting a checkpoint with a changed query: what Spark allows resumes (a changed filter
//! or projection; changed output columns where the sink takes them), the rest is refused at
//! start, naming what changed, before the sink or the checkpoint is touched.

use std::path::Path;

use weir::Engine;

use crate::crash::{file_names, rows_of, sink_batches};

/// An engine with memory source `s (id BIGINT, name VARCHAR, ts TIMESTAMP)`, watermarked.
async fn engine() -> Engine {
    let engine = Engine::builder().build().unwrap();
    engine
        .execute(
            "CREATE SOURCE s (id BIGINT, name VARCHAR, ts TIMESTAMP, \
             WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH (connector = 'memory')",
        )
        .await
        .unwrap();
    engine
}

/// Inserts `values` into `s`, runs the sink's query `select` until it has read them, and
/// stops it. The first call creates sink `out` with `options`; later ones resume it with
/// `INSERT INTO out <select>`.
async fn run(engine: &Engine, options: &str, select: &str, values: &str) -> weir::Result<()> {
    let exists = engine
        .sql("SHOW SINKS")
        .await?
        .iter()
        .any(|b| b.num_rows() > 0);
    let statement = if exists {
        format!("INSERT INTO out {select}")
    } else {
        format!("CREATE SINK out WITH ({options}) AS {select}")
    };
    let query = engine.start(&statement).await?;
    engine
        .execute(&format!("INSERT INTO s VALUES {values}"))
        .await?;
    query.process_all_available().await?;
    query.stop().await
}

fn parquet_options(dir: &Path) -> String {
    format!(
        "connector = 'parquet', path = '{}', checkpoint = '{}'",
        dir.join("out").display(),
        dir.join("ckpt").display()
    )
}

#[tokio::test]
async fn a_changed_filter_and_projection_with_the_same_columns_resume_a_parquet_sink() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine().await;
    let options = parquet_options(dir.path());
    let rows = "(1, 'a', '2024-01-01 00:00:01'), (2, 'b', '2024-01-01 00:00:02')";
    run(
        &engine,
        &options,
        "SELECT id, name FROM s WHERE id > 1",
        rows,
    )
    .await
    .unwrap();
    let more = "(3, 'c', '2024-01-01 00:00:03'), (4, 'd', '2024-01-01 00:00:04')";
    run(
        &engine,
        &options,
        "SELECT id + 10 AS id, upper(name) AS name FROM s WHERE id <> 3",
        more,
    )
    .await
    .unwrap();
    let mut rows = rows_of(&sink_batches(&dir.path().join("out")));
    rows.sort();
    assert_eq!(rows, ["id=14, name=D", "id=2, name=b"]);
}

#[tokio::test]
async fn changed_output_columns_are_refused_for_parquet_before_any_file_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine().await;
    let options = parquet_options(dir.path());
    let rows = "(1, 'a', '2024-01-01 00:00:01')";
    run(&engine, &options, "SELECT id, name FROM s", rows)
        .await
        .unwrap();
    let out = dir.path().join("out");
    let ckpt = dir.path().join("ckpt");
    let before = (file_names(&out), file_names(&ckpt.join("offsets")));
    let error = run(
        &engine,
        &options,
        "SELECT id, name, id * 2 AS twice FROM s",
        rows,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("query 'out' cannot resume")
            && error.contains("holds parquet files with the columns [id: Int64, name: Utf8View]")
            && error.contains("the changed query writes [id: Int64, name: Utf8View, twice: Int64]")
            && error.contains("write the changed query to a new sink"),
        "{error}"
    );
    assert_eq!(
        (file_names(&out), file_names(&ckpt.join("offsets"))),
        before
    );
}

#[tokio::test]
async fn changed_output_columns_are_taken_by_a_sink_of_records() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine().await;
    let options = format!(
        "connector = 'console', checkpoint = '{}'",
        dir.path().display()
    );
    let rows = "(1, 'a', '2024-01-01 00:00:01')";
    run(&engine, &options, "SELECT id FROM s", rows)
        .await
        .unwrap();
    run(&engine, &options, "SELECT id, name FROM s", rows)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_changed_aggregation_is_refused_at_start_and_a_changed_filter_before_it_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine().await;
    let options = format!(
        "connector = 'memory', output_mode = 'update', checkpoint = '{}'",
        dir.path().display()
    );
    let counts = "SELECT name, count(*) AS n FROM s GROUP BY name";
    run(&engine, &options, counts, "(1, 'a', '2024-01-01 00:00:01')")
        .await
        .unwrap();

    // Another aggregate, another key, no aggregation at all: each is refused, by name.
    let refused = [
        (
            "SELECT name, sum(id) AS n FROM s GROUP BY name",
            "operator aggregate-0 kept [aggregate count(Int64(1)): Int64] and now keeps [aggregate sum(s.id): Int64]",
        ),
        (
            "SELECT id AS name, count(*) AS n FROM s GROUP BY id",
            "operator aggregate-0 kept [key name: Utf8View] and now keeps [key id: Int64]",
        ),
        (
            "SELECT name, id AS n FROM s",
            "its checkpoint keeps state for the stateful operators [aggregate-0], and the query \
             now has no stateful operator",
        ),
    ];
    for (select, change) in refused {
        let error = run(&engine, &options, select, "(2, 'b', '2024-01-01 00:00:02')")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("query 'out' cannot resume") && error.contains(change),
            "{select}: {error}"
        );
    }

    // A filter before the aggregation may change: the counts go on from the state.
    let filtered = "SELECT name, count(*) AS n FROM s WHERE id < 10 GROUP BY name";
    run(
        &engine,
        &options,
        filtered,
        "(3, 'a', '2024-01-01 00:00:03'), (30, 'a', '2024-01-01 00:00:04')",
    )
    .await
    .unwrap();
    let latest = engine.sql("SELECT n FROM out WHERE name = 'a' ORDER BY n DESC LIMIT 1");
    assert_eq!(rows_of(&latest.await.unwrap()), ["n=2"]);
}
