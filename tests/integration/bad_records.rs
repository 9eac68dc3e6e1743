//! Bad input records and files through the engine: each is counted (rows and files) and
//! follows `on_error`, and no value is changed on the way in. A Parquet file that is damaged
//! or does not match the source, a quote left open at the end of a CSV file, JSON numbers
//! an integer column cannot hold exactly, a byte-order mark, and event times at the ends of
//! the timestamp range.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::pretty::pretty_format_batches;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use weir::{Engine, StreamingQuery};

/// Writes `rows` rows of (`id`, `name`) as parquet, in row groups of 50; with `name` left
/// out when `without_name`.
fn parquet(path: &Path, ids: std::ops::Range<i64>, without_name: bool) {
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    let mut columns: Vec<Arc<dyn arrow::array::Array>> =
        vec![Arc::new(Int64Array::from_iter_values(ids.clone()))];
    if !without_name {
        fields.push(Field::new("name", DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from_iter_values(
            ids.map(|i| format!("n{i}")),
        )));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(50))
        .build();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        schema,
        Some(properties),
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn table(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

/// Runs `select` over `source` (a `CREATE SOURCE` statement) to the end; the query.
async fn run(engine: &Engine, source: &str, select: &str) -> StreamingQuery {
    engine.execute(source).await.unwrap();
    let query = engine
        .start(&format!(
            "CREATE SINK out WITH (connector = 'memory', trigger = 'available-now', \
             flush_on_end = 'true') AS {select}"
        ))
        .await
        .unwrap();
    let _ = query.await_termination().await;
    query
}

fn bad_counts(query: &StreamingQuery) -> (u64, u64) {
    query.recent_progress().iter().fold((0, 0), |(r, f), p| {
        (r + p.sources[0].bad_records, f + p.sources[0].bad_files)
    })
}

/// A truncated file (its rows unknown), a file damaged after its first row group (the 50
/// rows before are kept, 100 counted), and a file without a declared column (its 30 rows
/// counted) are each a bad file; none stops the others from being read.
#[tokio::test]
async fn damaged_and_mismatched_parquet_files_are_counted_with_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    parquet(&dir.path().join("a-good.parquet"), 0..3, false);
    parquet(&dir.path().join("b-truncated.parquet"), 100..200, false);
    let truncated = std::fs::read(dir.path().join("b-truncated.parquet")).unwrap();
    std::fs::write(
        dir.path().join("b-truncated.parquet"),
        &truncated[..truncated.len() / 2],
    )
    .unwrap();
    parquet(&dir.path().join("c-damaged.parquet"), 200..350, false);
    let mut damaged = std::fs::read(dir.path().join("c-damaged.parquet")).unwrap();
    let metadata = parquet::file::reader::FileReader::metadata(
        &parquet::file::serialized_reader::SerializedFileReader::new(bytes::Bytes::from(
            damaged.clone(),
        ))
        .unwrap(),
    )
    .clone();
    let second = metadata.row_group(1);
    let (start, _) = second.column(0).byte_range();
    let (last, length) = second.column(1).byte_range();
    damaged[start as usize..(last + length) as usize].fill(0xFF);
    std::fs::write(dir.path().join("c-damaged.parquet"), damaged).unwrap();
    parquet(&dir.path().join("d-no-name.parquet"), 400..430, true);

    let source = |on_error: &str| {
        format!(
            "CREATE SOURCE p (id BIGINT, name VARCHAR) WITH (connector = 'files', path = '{}', \
             format = 'parquet'{on_error})",
            dir.path().display()
        )
    };
    let engine = Engine::builder().build().unwrap();
    let query = run(
        &engine,
        &source(", on_error = 'skip'"),
        "SELECT id, name FROM p",
    )
    .await;
    let ids = engine
        .sql("SELECT min(id) AS low, max(id) AS high, count(*) AS n FROM out")
        .await
        .unwrap();
    assert_eq!(
        table(&ids),
        "+-----+------+----+\n| low | high | n  |\n+-----+------+----+\n| 0   | 249  | 53 |\n+-----+------+----+"
    );
    // 100 damaged rows and 30 of the file without `name`; the truncated file's rows are
    // unknown. Three bad files.
    assert_eq!(bad_counts(&query), (130, 3));

    // Under `fail`, the first bad file stops the query, naming it and what is wrong.
    let engine = Engine::builder().build().unwrap();
    std::fs::remove_file(dir.path().join("b-truncated.parquet")).unwrap();
    std::fs::remove_file(dir.path().join("c-damaged.parquet")).unwrap();
    let query = run(&engine, &source(""), "SELECT id, name FROM p").await;
    let error = query.await_termination().await.unwrap_err().to_string();
    assert!(
        error.contains(&format!(
            "bad record at {}: the file has no column 'name' (its columns: id); none of its 30 \
             rows were read; set on_error = 'skip' or 'dead_letter'",
            dir.path().join("d-no-name.parquet").display()
        )),
        "{error}"
    );
}

#[tokio::test]
async fn a_bad_parquet_file_goes_to_the_dead_letters_with_its_row_count() {
    let dir = tempfile::tempdir().unwrap();
    let dead = tempfile::tempdir().unwrap();
    parquet(&dir.path().join("no-name.parquet"), 0..30, true);
    let engine = Engine::builder().build().unwrap();
    let source = format!(
        "CREATE SOURCE p (id BIGINT, name VARCHAR) WITH (connector = 'files', path = '{}', \
         format = 'parquet', on_error = 'dead_letter', dead_letter_path = '{}')",
        dir.path().display(),
        dead.path().display()
    );
    let query = run(&engine, &source, "SELECT id, name FROM p").await;
    assert_eq!(bad_counts(&query), (30, 1));
    let letter = std::fs::read_to_string(dead.path().join("no-name.parquet.bad.jsonl")).unwrap();
    let letter: serde_json::Value = serde_json::from_str(letter.trim()).unwrap();
    assert_eq!(letter["extent"], serde_json::json!({"file": {"rows": 30}}));
}

/// The quote opened on line 3 is never closed: line 3 is one bad record and lines 4 and 5
/// are read, where arrow's reader alone would put them into line 3's field.
#[tokio::test]
async fn an_unclosed_csv_quote_at_the_end_costs_one_counted_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.csv"), "id,name\n1,a\n2,\"b\n3,c\n4,d\n").unwrap();
    let engine = Engine::builder().build().unwrap();
    let source = format!(
        "CREATE SOURCE c (id BIGINT, name VARCHAR) WITH (connector = 'files', path = '{}', \
         format = 'csv', on_error = 'skip')",
        dir.path().display()
    );
    let query = run(&engine, &source, "SELECT id, name FROM c").await;
    assert_eq!(
        table(&engine.sql("SELECT * FROM out ORDER BY id").await.unwrap()),
        "+----+------+\n| id | name |\n+----+------+\n| 1  | a    |\n| 3  | c    |\n| 4  | d    |\n+----+------+"
    );
    assert_eq!(bad_counts(&query), (1, 0));
}

/// `1.5` and `-9223372036854775809` are no BIGINT: bad records, not 1 and the smallest
/// BIGINT; a byte-order mark before the first line is no part of it.
#[tokio::test]
async fn json_integers_are_exact_and_a_byte_order_mark_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        "\u{feff}{\"id\": 1, \"name\": \"first\"}\n{\"id\": 1.5}\n{\"id\": -9223372036854775809}\n\
         {\"id\": 9223372036854775807, \"name\": 5}\n",
    )
    .unwrap();
    let source = |on_error: &str| {
        format!(
            "CREATE SOURCE j (id BIGINT, name VARCHAR) WITH (connector = 'files', path = '{}', \
             format = 'json'{on_error})",
            dir.path().display()
        )
    };
    let engine = Engine::builder().build().unwrap();
    let query = run(&engine, &source(", on_error = 'skip'"), "SELECT * FROM j").await;
    assert_eq!(
        table(&engine.sql("SELECT * FROM out ORDER BY id").await.unwrap()),
        "+---------------------+-------+\n| id                  | name  |\n+---------------------+-------+\n| 1                   | first |\n| 9223372036854775807 | 5     |\n+---------------------+-------+"
    );
    assert_eq!(bad_counts(&query), (2, 0));

    let engine = Engine::builder().build().unwrap();
    let query = run(&engine, &source(""), "SELECT * FROM j").await;
    let error = query.await_termination().await.unwrap_err().to_string();
    assert!(
        error.contains(&format!(
            "bad record at {}:2: Json error: column 'id': 1.5 is not a whole number that fits Int64",
            dir.path().join("a.json").display()
        )),
        "{error}"
    );
}

/// Event times next to the ends of the timestamp range (1677-09-21 under a HOP window, whose
/// earliest window starts before the range; 2262-04-11 under a tumbling window closed at the
/// end of input, whose end is past it) are bad records of their source, not a query that
/// fails with an overflow on every restart.
#[tokio::test]
async fn event_times_at_the_ends_of_the_range_are_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        "{\"ts\": \"1677-09-21T00:13:00\"}\n{\"ts\": \"2000-01-01T00:00:30\"}\n\
         {\"ts\": \"2262-04-11T23:47:00\"}\n",
    )
    .unwrap();
    let source = |on_error: &str| {
        format!(
            "CREATE SOURCE ev (ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH \
             (connector = 'files', path = '{}', format = 'json'{on_error})",
            dir.path().display()
        )
    };
    let hop = "SELECT window_start, count(*) AS n FROM HOP(ev, ts, INTERVAL '1' MINUTE, \
               INTERVAL '2' MINUTE) GROUP BY window_start, window_end";
    let tumble = "SELECT window_start, count(*) AS n FROM TUMBLE(ev, ts, INTERVAL '10' MINUTE) \
                  GROUP BY window_start, window_end";
    for select in [hop, tumble] {
        let engine = Engine::builder().build().unwrap();
        let query = run(&engine, &source(", on_error = 'skip'"), select).await;
        query.await_termination().await.unwrap();
        assert_eq!(bad_counts(&query), (2, 0), "{select}");
        let rows = engine
            .sql("SELECT window_start, n FROM out ORDER BY window_start")
            .await
            .unwrap();
        let expected = if select == hop {
            "+---------------------+---+\n| window_start        | n |\n+---------------------+---+\n| 1999-12-31T23:59:00 | 1 |\n| 2000-01-01T00:00:00 | 1 |\n+---------------------+---+"
        } else {
            "+---------------------+---+\n| window_start        | n |\n+---------------------+---+\n| 2000-01-01T00:00:00 | 1 |\n+---------------------+---+"
        };
        assert_eq!(table(&rows), expected, "{select}");
    }
    // Under `dead_letter` the rows' times are written, one file per batch.
    let dead = tempfile::tempdir().unwrap();
    let engine = Engine::builder().build().unwrap();
    let dead_letter = format!(
        ", on_error = 'dead_letter', dead_letter_path = '{}'",
        dead.path().display()
    );
    let query = run(&engine, &source(&dead_letter), tumble).await;
    query.await_termination().await.unwrap();
    let letters = std::fs::read_to_string(dead.path().join("ev-batch-0.bad.jsonl")).unwrap();
    let records: Vec<String> = letters
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["record"].to_string())
        .collect();
    assert_eq!(
        records,
        ["\"1677-09-21T00:13:00.000\"", "\"2262-04-11T23:47:00.000\""]
    );

    let engine = Engine::builder().build().unwrap();
    let query = run(&engine, &source(""), hop).await;
    let error = query.await_termination().await.unwrap_err().to_string();
    assert!(
        error.contains(
            "bad record at source 'ev' batch 0: event time 1677-09-21T00:13:00.000 is outside \
             the times a query can window (1678-01-01 to 2261-12-31); set on_error = 'skip'"
        ),
        "{error}"
    );
}
