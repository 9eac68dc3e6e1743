//! Streaming aggregation through the engine API: the exact rows update mode emits per batch,
//! and state that survives a restart of the engine from the checkpoint.

use std::path::Path;

use arrow::array::RecordBatch;
use arrow::util::pretty::pretty_format_batches;
use weir::Engine;

fn table(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).expect("format").to_string()
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

    // A new engine knows nothing but the checkpoint: the groups' state must come from there.
    write(
        input.path(),
        "3.json",
        "{\"k\": \"a\", \"v\": 3}\n{\"k\": \"c\", \"v\": 4}\n",
    );
    let second = Engine::builder().build().unwrap();
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
         | a | 3 | 5     | 2          |\n| b | 1 | 2     | 1          |\n| c | 1 | 4     | 1          |\n\
         +---+---+-------+------------+"
    );
    assert!(
        checkpoint
            .path()
            .join("state/aggregate-0/0/2.snapshot")
            .exists()
    );
}
