//! The `files` source and the `parquet` sink through the engine API: discovery order, hidden
//! files, triggers, formats and schemas, the `on_error` policies, and recovery of the
//! parquet sink from an interrupted batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::pretty::pretty_format_batches;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use weir::{Engine, QueryState};

fn write(dir: &Path, name: &str, contents: &str) {
    std::fs::write(dir.join(name), contents).expect("write input file");
    // Distinct modification times keep the discovery order deterministic.
    std::thread::sleep(Duration::from_millis(15));
}

fn table(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).expect("format").to_string()
}

async fn engine_with_files(dir: &Path, extra_options: &str) -> Engine {
    let engine = Engine::builder()
        .target_partitions(2)
        .build()
        .expect("engine");
    engine
        .execute(&format!(
            "CREATE SOURCE events (id INT, name VARCHAR) WITH (connector = 'files', path = '{}', \
             format = 'json'{extra_options})",
            dir.display()
        ))
        .await
        .expect("create source");
    engine
}

#[tokio::test]
async fn new_files_are_read_in_order_once_and_hidden_files_are_ignored() {
    let input = tempfile::tempdir().unwrap();
    write(input.path(), "b.json", "{\"id\": 1, \"name\": \"first\"}\n");
    write(
        input.path(),
        "a.json",
        "{\"id\": 2, \"name\": \"second\"}\n",
    );
    write(
        input.path(),
        ".in-progress.json",
        "{\"id\": 99, \"name\": \"hidden\"}\n",
    );
    write(input.path(), "_SUCCESS", "not json");
    let engine = engine_with_files(input.path(), ", max_files_per_trigger = '1'").await;
    let query = engine
        .start("CREATE SINK out WITH (connector = 'memory', trigger = '50 milliseconds') AS SELECT id, name FROM events")
        .await
        .unwrap();
    query.process_all_available().await.unwrap();
    let rows = engine.sql("SELECT * FROM out").await.unwrap();
    // Modification-time order: b.json was written first.
    assert_eq!(
        table(&rows),
        "+----+--------+\n| id | name   |\n+----+--------+\n| 1  | first  |\n| 2  | second |\n+----+--------+"
    );
    let batches: Vec<_> = query
        .recent_progress()
        .iter()
        .map(|p| (p.batch_id.0, p.input_rows))
        .collect();
    assert_eq!(batches, [(0, 1), (1, 1)]);

    // A file dropped in while the query runs is processed, and nothing is read twice.
    write(
        input.path(),
        "c.json",
        "{\"id\": 3, \"name\": \"third\"}\n{\"id\": 4, \"name\": \"fourth\"}\n",
    );
    query.process_all_available().await.unwrap();
    let rows = engine
        .sql("SELECT count(*) AS n, sum(id) AS total FROM out")
        .await
        .unwrap();
    assert_eq!(
        table(&rows),
        "+---+-------+\n| n | total |\n+---+-------+\n| 4 | 10    |\n+---+-------+"
    );
    query.stop().await.unwrap();
    assert_eq!(query.state(), QueryState::Stopped);
}

#[tokio::test]
async fn available_now_reads_what_is_there_in_limited_batches_then_stops() {
    let input = tempfile::tempdir().unwrap();
    for i in 0..5 {
        write(
            input.path(),
            &format!("{i}.json"),
            &format!("{{\"id\": {i}, \"name\": \"n{i}\"}}\n"),
        );
    }
    let engine = engine_with_files(input.path(), ", max_files_per_trigger = '2'").await;
    let query = engine
        .start("CREATE SINK out WITH (connector = 'memory', trigger = 'available-now') AS SELECT id FROM events")
        .await
        .unwrap();
    query.await_termination().await.unwrap();
    let sizes: Vec<u64> = query
        .recent_progress()
        .iter()
        .map(|p| p.input_rows)
        .collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(query.state(), QueryState::Stopped);

    // 'once' runs exactly one batch (honouring the limit) and resumes from the checkpoint.
    engine
        .execute("CREATE SINK one WITH (connector = 'memory', trigger = 'once')")
        .await
        .unwrap();
    let once = engine
        .start("INSERT INTO one SELECT id FROM events")
        .await
        .unwrap();
    once.await_termination().await.unwrap();
    assert_eq!(once.recent_progress().len(), 1);
    assert_eq!(
        table(&engine.sql("SELECT * FROM one ORDER BY id").await.unwrap()),
        "+----+\n| id |\n+----+\n| 0  |\n| 1  |\n+----+"
    );
}

/// Writes `p.parquet` with columns `id` (1, 2, 3) and `code` ("10", "x", "30").
fn write_ids_and_codes(dir: &Path) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("code", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int32Array::from(vec![1, 2, 3])),
            Arc::new(StringArray::from(vec!["10", "x", "30"])),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(dir.join("p.parquet")).unwrap();
    let mut writer = ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[tokio::test]
async fn csv_and_parquet_with_declared_and_inferred_schemas() {
    let csv_dir = tempfile::tempdir().unwrap();
    write(
        csv_dir.path(),
        "x.csv",
        "id;name\n7;\"semi;colon\"\n8;plain\n",
    );
    let parquet_dir = tempfile::tempdir().unwrap();
    write_ids_and_codes(parquet_dir.path());

    let engine = Engine::builder().build().unwrap();
    engine
        .execute(&format!(
            "CREATE SOURCE c (id BIGINT, name VARCHAR) WITH (connector = 'files', path = '{}', format = 'csv', delimiter = ';');\
             CREATE SOURCE inferred WITH (connector = 'files', path = '{p}', format = 'parquet');\
             CREATE SOURCE cast (id BIGINT, code BIGINT) WITH (connector = 'files', path = '{p}', format = 'parquet', on_error = 'skip');\
             CREATE SINK c_out WITH (connector = 'memory', trigger = 'available-now') AS SELECT * FROM c;\
             CREATE SINK inferred_out WITH (connector = 'memory', trigger = 'available-now') AS SELECT * FROM inferred;\
             CREATE SINK cast_out WITH (connector = 'memory', trigger = 'available-now') AS SELECT id, code + 1 AS next FROM cast;",
            csv_dir.path().display(),
            p = parquet_dir.path().display()
        ))
        .await
        .unwrap();
    for query in engine.queries().await {
        query.await_termination().await.unwrap();
    }
    assert_eq!(
        table(&engine.sql("SELECT * FROM c_out ORDER BY id").await.unwrap()),
        "+----+------------+\n| id | name       |\n+----+------------+\n| 7  | semi;colon |\n| 8  | plain      |\n+----+------------+"
    );
    let described = engine.sql("DESCRIBE inferred").await.unwrap();
    assert!(
        table(&described).contains("| code        | Utf8      | YES"),
        "{}",
        table(&described)
    );
    // 'x' cannot be cast to BIGINT: that row is skipped and counted, the others are cast.
    assert_eq!(
        table(
            &engine
                .sql("SELECT * FROM cast_out ORDER BY id")
                .await
                .unwrap()
        ),
        "+----+------+\n| id | next |\n+----+------+\n| 1  | 11   |\n| 3  | 31   |\n+----+------+"
    );
    let cast_query = engine.query("cast_out").await.unwrap();
    assert_eq!(cast_query.progress().unwrap().sources[0].bad_records, 1);
}

/// Parquet decodes only the columns a query reads: a value that cannot be cast in a column
/// the query does not read is no bad record for it, and a count of rows reads no column.
#[tokio::test]
async fn a_parquet_query_decodes_only_the_columns_it_reads() {
    let dir = tempfile::tempdir().unwrap();
    write_ids_and_codes(dir.path());
    let engine = Engine::builder().build().unwrap();
    engine
        .execute(&format!(
            "CREATE SOURCE cast (id BIGINT, code BIGINT) WITH (connector = 'files', path = '{}', format = 'parquet', on_error = 'skip');\
             CREATE SINK ids WITH (connector = 'memory', trigger = 'available-now') AS SELECT id * 10 AS id FROM cast;\
             CREATE SINK codes WITH (connector = 'memory', trigger = 'available-now') AS SELECT code FROM cast;\
             CREATE SINK rows WITH (connector = 'memory', trigger = 'available-now', output_mode = 'complete') AS SELECT count(*) AS n FROM cast;",
            dir.path().display()
        ))
        .await
        .unwrap();
    for query in engine.queries().await {
        query.await_termination().await.unwrap();
    }
    let rows_of = async |sql: &str| table(&engine.sql(sql).await.unwrap());
    assert_eq!(
        rows_of("SELECT * FROM ids ORDER BY id").await,
        "+----+\n| id |\n+----+\n| 10 |\n| 20 |\n| 30 |\n+----+"
    );
    assert_eq!(
        rows_of("SELECT * FROM codes ORDER BY code").await,
        "+------+\n| code |\n+------+\n| 10   |\n| 30   |\n+------+"
    );
    assert_eq!(
        rows_of("SELECT * FROM rows").await,
        "+---+\n| n |\n+---+\n| 3 |\n+---+"
    );
    let bad_records = async |name: &str| {
        let query = engine.query(name).await.unwrap();
        query.progress().unwrap().sources[0].bad_records
    };
    assert_eq!(bad_records("ids").await, 0, "code is not decoded");
    assert_eq!(bad_records("codes").await, 1, "'x' is no BIGINT");
    assert_eq!(bad_records("rows").await, 0);
}

const MIXED: &str = "{\"id\": 1, \"name\": \"ok\"}\n{\"id\": \"one\", \"name\": \"bad\"}\n{\"id\": 3, \"name\": \"ok too\"}\n";

#[tokio::test]
async fn on_error_fail_stops_the_query_naming_file_and_line() {
    let input = tempfile::tempdir().unwrap();
    write(input.path(), "mixed.json", MIXED);
    let engine = engine_with_files(input.path(), "").await;
    let query = engine
        .start("CREATE SINK out WITH (connector = 'memory', trigger = 'available-now') AS SELECT * FROM events")
        .await
        .unwrap();
    let err = query.await_termination().await.unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "bad record at {}:2: ",
            input.path().join("mixed.json").display()
        )),
        "{err}"
    );
    assert!(
        err.contains("set on_error = 'skip' or 'dead_letter'"),
        "{err}"
    );
    assert!(matches!(query.state(), QueryState::Failed(_)));
    // Nothing of the failed batch was committed.
    assert_eq!(
        table(&engine.sql("SELECT count(*) AS n FROM out").await.unwrap()),
        "+---+\n| n |\n+---+\n| 0 |\n+---+"
    );
}

#[tokio::test]
async fn on_error_dead_letter_keeps_good_rows_and_writes_bad_ones_with_reasons() {
    let input = tempfile::tempdir().unwrap();
    let dead = tempfile::tempdir().unwrap();
    write(input.path(), "mixed.json", MIXED);
    let options = format!(
        ", on_error = 'dead_letter', dead_letter_path = '{}'",
        dead.path().display()
    );
    let engine = engine_with_files(input.path(), &options).await;
    let query = engine
        .start("CREATE SINK out WITH (connector = 'memory', trigger = 'available-now') AS SELECT * FROM events")
        .await
        .unwrap();
    query.await_termination().await.unwrap();
    assert_eq!(
        table(&engine.sql("SELECT * FROM out ORDER BY id").await.unwrap()),
        "+----+--------+\n| id | name   |\n+----+--------+\n| 1  | ok     |\n| 3  | ok too |\n+----+--------+"
    );
    assert_eq!(query.progress().unwrap().sources[0].bad_records, 1);
    let letters = std::fs::read_to_string(dead.path().join("mixed.json.bad.jsonl")).unwrap();
    let letter: serde_json::Value = serde_json::from_str(letters.trim()).unwrap();
    assert_eq!(
        letter["location"],
        format!("{}:2", input.path().join("mixed.json").display())
    );
    assert_eq!(letter["record"], "{\"id\": \"one\", \"name\": \"bad\"}");
    assert!(
        letter["reason"].as_str().unwrap().contains("one"),
        "{letter}"
    );
}

fn parquet_rows(dir: &Path) -> Vec<(String, Vec<RecordBatch>)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    names
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .map(|p| {
            let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&p).unwrap())
                .unwrap()
                .build()
                .unwrap();
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                reader.collect::<Result<Vec<_>, _>>().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn parquet_sink_rewrites_an_uncommitted_batch_once_and_cleans_leftovers() {
    let input = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let checkpoint = tempfile::tempdir().unwrap();
    write(input.path(), "1.json", "{\"id\": 1, \"name\": \"a\"}\n");
    write(input.path(), "2.json", "{\"id\": 2, \"name\": \"b\"}\n");
    let sink = format!(
        "CREATE SINK out WITH (connector = 'parquet', path = '{}', checkpoint = '{}', trigger = 'available-now', max_rows_per_file = '1') AS SELECT id, name FROM events",
        out.path().display(),
        checkpoint.path().display()
    );
    let engine = engine_with_files(input.path(), ", max_files_per_trigger = '1'").await;
    engine
        .start(&sink)
        .await
        .unwrap()
        .await_termination()
        .await
        .unwrap();
    let files: Vec<String> = parquet_rows(out.path())
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        files,
        [
            "part-000000000000-0000.parquet",
            "part-000000000001-0000.parquet"
        ]
    );

    // Simulate a crash after batch 1's output was written but before its commit, with a
    // half-written temp file and a stray part file of a later attempt lying around.
    std::fs::remove_file(checkpoint.path().join("commits/1.json")).unwrap();
    std::fs::write(
        out.path()
            .join(".part-000000000001-0000.parquet.inprogress"),
        b"partial",
    )
    .unwrap();
    std::fs::write(out.path().join("part-000000000001-0007.parquet"), b"stray").unwrap();
    // A put interrupted by SIGKILL leaves the object store's staging file, hidden from listings.
    std::fs::write(
        out.path()
            .join(".part-000000000001-0000.parquet.inprogress#1"),
        b"staged",
    )
    .unwrap();
    std::fs::write(checkpoint.path().join("offsets/2.json#1"), b"staged").unwrap();
    write(input.path(), "3.json", "{\"id\": 3, \"name\": \"c\"}\n");

    let engine = engine_with_files(input.path(), ", max_files_per_trigger = '1'").await;
    let query = engine.start(&sink).await.unwrap();
    query.await_termination().await.unwrap();
    let written = parquet_rows(out.path());
    let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "part-000000000000-0000.parquet",
            "part-000000000001-0000.parquet",
            "part-000000000002-0000.parquet"
        ]
    );
    let all: Vec<RecordBatch> = written.into_iter().flat_map(|(_, b)| b).collect();
    assert_eq!(
        table(&all),
        "+----+------+\n| id | name |\n+----+------+\n| 1  | a    |\n| 2  | b    |\n| 3  | c    |\n+----+------+"
    );
    let hidden: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
    assert!(!checkpoint.path().join("offsets/2.json#1").exists());
    // The re-run batch 1 read the same file as the interrupted attempt (offsets were reused).
    let rerun: Vec<_> = query
        .recent_progress()
        .iter()
        .map(|p| (p.batch_id.0, p.input_rows))
        .collect();
    assert_eq!(rerun, [(1, 1), (2, 1)]);
}

#[tokio::test]
async fn a_checkpoint_of_a_query_with_other_inputs_is_refused() {
    let input = tempfile::tempdir().unwrap();
    let checkpoint = tempfile::tempdir().unwrap();
    let engine = engine_with_files(input.path(), "").await;
    engine
        .execute("CREATE SOURCE other (id INT, name VARCHAR) WITH (connector = 'memory')")
        .await
        .unwrap();
    let ckpt = checkpoint.path().display();
    engine
        .start(&format!("CREATE SINK a WITH (connector = 'memory', checkpoint = '{ckpt}', trigger = 'available-now') AS SELECT id FROM events"))
        .await
        .unwrap()
        .await_termination()
        .await
        .unwrap();
    let err = engine
        .start(&format!("CREATE SINK b WITH (connector = 'memory', checkpoint = '{ckpt}') AS SELECT id FROM other"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("query 'b' cannot resume")
            && err.contains(
                "created for a query reading [\"events\"], and this one reads [\"other\"]"
            ),
        "{err}"
    );
}

#[tokio::test]
async fn now_is_the_batch_timestamp_recorded_in_the_offsets_log() {
    let checkpoint = tempfile::tempdir().unwrap();
    let engine = Engine::builder().build().unwrap();
    engine
        .execute(
            "CREATE SOURCE s (a INT) WITH (connector = 'memory'); INSERT INTO s VALUES (1), (2)",
        )
        .await
        .unwrap();
    let query = engine
        .start(&format!(
            "CREATE SINK out WITH (connector = 'memory', checkpoint = '{}', trigger = 'available-now') AS \
             SELECT a, CAST(now() AS BIGINT) / 1000000 AS batch_ms FROM s",
            checkpoint.path().display()
        ))
        .await
        .unwrap();
    query.await_termination().await.unwrap();
    let offsets: serde_json::Value =
        serde_json::from_slice(&std::fs::read(checkpoint.path().join("offsets/0.json")).unwrap())
            .unwrap();
    let recorded = offsets["batch_timestamp_ms"].as_i64().unwrap();
    let rows = engine
        .sql("SELECT DISTINCT batch_ms FROM out")
        .await
        .unwrap();
    assert_eq!(
        table(&rows),
        format!(
            "+---------------+\n| batch_ms      |\n+---------------+\n| {recorded} |\n+---------------+"
        )
    );
}

#[tokio::test]
async fn a_new_query_refuses_a_parquet_directory_holding_another_querys_output() {
    let input = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let checkpoint = tempfile::tempdir().unwrap();
    std::fs::write(
        out.path().join("part-000000000000-0000.parquet"),
        b"someone else's data",
    )
    .unwrap();
    let engine = engine_with_files(input.path(), "").await;
    let err = engine
        .start(&format!(
            "CREATE SINK out WITH (connector = 'parquet', path = '{}', checkpoint = '{}/q') AS SELECT id FROM events",
            out.path().display(),
            checkpoint.path().display()
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already holds output of another query (part-000000000000-0000.parquet)"),
        "{err}"
    );
    // Nothing was deleted, and no checkpoint was created that would allow it next time.
    assert!(out.path().join("part-000000000000-0000.parquet").exists());
    assert!(!checkpoint.path().join("q/metadata.json").exists());
}

#[tokio::test]
async fn the_blackhole_sink_discards_rows_and_counts_them() {
    let engine = Engine::builder().build().unwrap();
    // start() refuses other statements without running them.
    let refused = engine
        .start("CREATE SOURCE bids WITH (connector = 'nexmark', table = 'bid')")
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        refused,
        "this call does not take CREATE SOURCE; use execute()"
    );
    engine
        .execute("CREATE SOURCE bids WITH (connector = 'nexmark', table = 'bid', max_events = '1000', max_records_per_trigger = '300')")
        .await
        .unwrap();
    let query = engine
        .start("CREATE SINK b WITH (connector = 'blackhole', trigger = 'available-now') AS SELECT * FROM bids")
        .await
        .unwrap();
    query.await_termination().await.unwrap();
    let written: Vec<u64> = query
        .recent_progress()
        .iter()
        .map(|p| p.output_rows)
        .collect();
    // 1000 events in batches of 300: bids are 46 of every 50 events.
    assert_eq!(written.iter().sum::<u64>(), 920);
    assert_eq!(written.len(), 4);
}
