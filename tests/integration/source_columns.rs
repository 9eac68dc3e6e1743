//! A query reads only the source columns it uses: the engine asks each source for the
//! columns its scans project (and the watermark's column), and the rows come out the same.
//! The source here records what it was asked for.

use std::sync::{Arc, Mutex};

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::util::pretty::pretty_format_batches;
use async_trait::async_trait;
use weir::Engine;
use weir_connectors::{ConnectorError, Source, SourceOffset, SourceRead};

/// Rows per micro-batch, and rows in all.
const PER_TRIGGER: u64 = 4;
const ROWS: u64 = 10;

/// What each read asked for: `None` for every column (`read`), else the columns.
type Asked = Arc<Mutex<Vec<Option<Vec<usize>>>>>;

/// Row `n` of the source: `id = n`, `name = "name-{n % 3}"`, `amount = 10 n`,
/// `ts = 2024-01-01 00:00:00 + n s`.
#[derive(Debug)]
struct Recorder {
    asked: Asked,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("amount", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]))
}

fn rows(first: u64, end: u64) -> RecordBatch {
    let n = || (first..end).map(|n| n as i64);
    let columns: Vec<arrow::array::ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(n())),
        Arc::new(StringArray::from_iter_values(
            n().map(|n| format!("name-{}", n % 3)),
        )),
        Arc::new(Int64Array::from_iter_values(n().map(|n| 10 * n))),
        Arc::new(TimestampMillisecondArray::from_iter_values(
            n().map(|n| 1_704_067_200_000 + 1000 * n),
        )),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

#[async_trait]
impl Source for Recorder {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    async fn prepare_available_now(&self) -> weir_connectors::Result<()> {
        Ok(())
    }

    async fn latest_offset(
        &self,
        start: Option<&SourceOffset>,
    ) -> weir_connectors::Result<Option<SourceOffset>> {
        let first = SourceOffset::count_or_zero(start)?;
        Ok(Some(SourceOffset::from_count(
            (first + PER_TRIGGER).min(ROWS),
        )))
    }

    async fn read(
        &self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
    ) -> weir_connectors::Result<SourceRead> {
        self.asked.lock().unwrap().push(None);
        let (first, end) = (SourceOffset::count_or_zero(start)?, end.as_count()?);
        Ok(SourceRead::rows(vec![rows(first, end)]))
    }

    async fn read_columns(
        &self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
        columns: &[usize],
    ) -> weir_connectors::Result<SourceRead> {
        self.asked.lock().unwrap().push(Some(columns.to_vec()));
        let (first, end) = (SourceOffset::count_or_zero(start)?, end.as_count()?);
        let batch = rows(first, end)
            .project(columns)
            .map_err(|e| ConnectorError::arrow("projecting", e))?;
        Ok(SourceRead::rows(vec![batch]))
    }

    async fn commit(&self, _end: &SourceOffset) -> weir_connectors::Result<()> {
        Ok(())
    }
}

/// Runs `sink_sql` (a `CREATE SINK out ...` over source `s`, declared with `columns`) to
/// the end of the source; what each read asked for, and the sink's rows, sorted.
async fn run(columns: &str, sink_sql: &str) -> (Vec<Option<Vec<usize>>>, String) {
    let engine = Engine::builder().build().unwrap();
    let asked = Asked::default();
    let source = Recorder {
        asked: Arc::clone(&asked),
    };
    crate::one_source::register(&engine, "recorder", Arc::new(source));
    engine
        .execute(&format!(
            "CREATE SOURCE s {columns} WITH (connector = 'recorder')"
        ))
        .await
        .unwrap();
    let query = engine.start(sink_sql).await.unwrap();
    query.process_all_available().await.unwrap();
    query.stop().await.unwrap();
    let output = engine.connectors().memory_output("out").unwrap().batches();
    let all: Vec<RecordBatch> = output.into_values().flatten().collect();
    let text = pretty_format_batches(&all).unwrap().to_string();
    let mut lines: Vec<&str> = text.lines().filter(|l| l.starts_with("| ")).collect();
    lines[1..].sort_unstable();
    let asked = asked.lock().unwrap().clone();
    (asked, lines.join("\n"))
}

#[tokio::test]
async fn a_query_reads_only_the_columns_its_scans_use() {
    let (asked, rows) = run(
        "",
        "CREATE SINK out WITH (connector = 'memory', output_mode = 'update') AS \
         SELECT name, sum(amount) AS total FROM s GROUP BY name",
    )
    .await;
    assert_eq!(
        asked,
        vec![Some(vec![1, 2]); 3],
        "3 batches of 4, 4 and 2 rows"
    );
    // Update mode: each batch's changed groups (rows 0-3, 4-7, 8-9).
    assert_eq!(
        rows,
        "| name   | total |\n\
         | name-0 | 180   |\n\
         | name-0 | 30    |\n\
         | name-0 | 90    |\n\
         | name-1 | 10    |\n\
         | name-1 | 120   |\n\
         | name-2 | 150   |\n\
         | name-2 | 20    |\n\
         | name-2 | 70    |"
    );
}

#[tokio::test]
async fn the_watermark_column_is_read_even_when_the_query_does_not_use_it() {
    let watermarked = "(WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)";
    let (asked, rows) = run(
        watermarked,
        "CREATE SINK out WITH (connector = 'memory') AS SELECT id * 2 AS twice FROM s WHERE id > 6",
    )
    .await;
    assert_eq!(asked, vec![Some(vec![0, 3]); 3]);
    assert_eq!(rows, "| twice |\n| 14    |\n| 16    |\n| 18    |");

    let (asked, rows) = run(
        watermarked,
        "CREATE SINK out WITH (connector = 'memory', output_mode = 'append', trigger = 'available-now', \
         flush_on_end = 'true') AS \
         SELECT window_start, count(*) AS n FROM TUMBLE(s, ts, INTERVAL '4' SECOND) \
         GROUP BY window_start, window_end",
    )
    .await;
    assert!(
        asked.iter().all(|a| a.as_deref() == Some(&[3])),
        "only ts: {asked:?}"
    );
    assert_eq!(
        rows,
        "| window_start        | n |\n\
         | 2024-01-01T00:00:00 | 4 |\n\
         | 2024-01-01T00:00:04 | 4 |\n\
         | 2024-01-01T00:00:08 | 2 |"
    );
}

#[tokio::test]
async fn scans_of_one_source_read_the_union_of_their_columns_and_all_means_all() {
    let (asked, rows) = run(
        "",
        "CREATE SINK out WITH (connector = 'memory') AS \
         SELECT id AS x FROM s WHERE id < 2 UNION ALL SELECT amount FROM s WHERE id >= 8",
    )
    .await;
    assert_eq!(asked, vec![Some(vec![0, 2]); 3]);
    assert_eq!(rows, "| x  |\n| 0  |\n| 1  |\n| 80 |\n| 90 |");

    let (asked, rows) = run(
        "",
        "CREATE SINK out WITH (connector = 'memory') AS SELECT * FROM s WHERE id = 9",
    )
    .await;
    assert_eq!(asked, vec![None; 3], "every column: a plain read");
    assert_eq!(
        rows,
        "| id | name   | amount | ts                  |\n\
         | 9  | name-0 | 90     | 2024-01-01T00:00:09 |"
    );
}

#[tokio::test]
async fn a_count_of_rows_reads_no_column_and_counts_every_row() {
    let (asked, rows) = run(
        "",
        "CREATE SINK out WITH (connector = 'memory', output_mode = 'complete') AS \
         SELECT count(*) AS n FROM s",
    )
    .await;
    assert_eq!(asked, vec![Some(vec![]); 3]);
    assert_eq!(
        rows, "| n  |\n| 10 |",
        "the memory sink holds the last complete table"
    );
}
