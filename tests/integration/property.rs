//! The oracle property: a continuous query's output over any split of the input into
//! micro-batches equals DataFusion running the same query once over all the input.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use proptest::prelude::*;
use weir::Engine;

/// Stateless shapes: projection, filter, CASE, string functions, UNNEST, and a self-UNION ALL
/// (two scans of one stream in one batch).
const QUERIES: &[&str] = &[
    "SELECT id, upper(name) AS n, CASE WHEN amount > 0 THEN amount * 2 ELSE -amount END AS a FROM s WHERE id % 3 <> 1",
    "SELECT id, unnest(string_to_array(coalesce(name, ''), 'x')) AS part FROM s",
    "SELECT id, 'low' AS band FROM s WHERE amount < 0 UNION ALL SELECT id, 'high' AS band FROM s WHERE amount >= 0",
];

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Int64, false),
    ]))
}

fn batch(rows: &[(i64, Option<String>, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1.clone()))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .expect("batch")
}

pub(crate) fn sorted_lines(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut lines = Vec::new();
    for b in batches {
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formatter"))
            .collect();
        for row in 0..b.num_rows() {
            lines.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    lines.sort();
    lines
}

/// DataFusion running `query` once over all `rows`, typed exactly as the streaming source
/// (`VARCHAR` is `Utf8View`), so hash-based approximate aggregates see the same values.
async fn oracle(query: &str, rows: &[(i64, Option<String>, i64)]) -> Vec<String> {
    let ctx = SessionContext::new();
    let input = batch(rows);
    let typed = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8View, true),
        Field::new("amount", DataType::Int64, false),
    ]));
    let name = arrow::compute::cast(input.column(1), &DataType::Utf8View).expect("cast");
    let input = RecordBatch::try_new(
        Arc::clone(&typed),
        vec![
            Arc::clone(input.column(0)),
            name,
            Arc::clone(input.column(2)),
        ],
    )
    .expect("typed batch");
    ctx.register_table(
        "s",
        Arc::new(MemTable::try_new(typed, vec![vec![input]]).expect("table")),
    )
    .expect("register");
    batch_lines(&ctx, query).await
}

/// The sorted rows of `sql` run as one DataFusion batch query in `ctx`.
pub(crate) async fn batch_lines(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let rows = ctx.sql(sql).await.expect("plan").collect().await;
    sorted_lines(&rows.expect("run"))
}

/// A runtime for a property test's case: two worker threads, as on the CI machine.
pub(crate) fn case_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Feeds `rows` in `chunks` (one INSERT each, the query drained after `drain_every` chunks)
/// with at most `max_per_batch` rows per micro-batch.
async fn streamed(
    query: &str,
    rows: &[(i64, Option<String>, i64)],
    chunks: &[usize],
    drain_every: usize,
    max_per_batch: usize,
) -> Vec<String> {
    streamed_with(query, "", rows, chunks, drain_every, max_per_batch).await
}

/// Aggregations, run in complete mode: after the last batch the sink holds the whole result.
const AGGREGATIONS: &[&str] = &[
    "SELECT name, count(*) AS n, sum(amount) AS total, min(amount) AS low, max(id) AS high, \
     count(DISTINCT id % 7) AS buckets, bool_or(amount > 50) AS big FROM s GROUP BY name",
    "SELECT id % 5 AS bucket, avg(amount) AS mean, stddev_pop(amount) AS sd, var_samp(id) AS var \
     FROM s WHERE amount <> 0 GROUP BY id % 5 HAVING count(*) > 1",
    "SELECT count(*) AS n, sum(amount) AS total, approx_distinct(name) AS names, \
     count(DISTINCT name) AS exact_names FROM s",
    // Several count(DISTINCT), over one column with and without a FILTER, and over nulls.
    "SELECT id % 3 AS k, count(DISTINCT name) AS names, \
     count(DISTINCT name) FILTER (WHERE amount > 0) AS paying, count(DISTINCT amount % 10) AS tens, \
     sum(DISTINCT id) AS ids FROM s GROUP BY id % 3",
];

/// As [`streamed`], with extra sink options.
async fn streamed_with(
    query: &str,
    sink_options: &str,
    rows: &[(i64, Option<String>, i64)],
    chunks: &[usize],
    drain_every: usize,
    max_per_batch: usize,
) -> Vec<String> {
    let engine = Engine::builder().build().expect("engine");
    engine
        .execute(&format!(
            "CREATE SOURCE s (id BIGINT NOT NULL, name VARCHAR, amount BIGINT NOT NULL) WITH (connector = 'memory', max_records_per_trigger = '{max_per_batch}')"
        ))
        .await
        .expect("source");
    let stream = engine
        .connectors()
        .memory_stream("s")
        .expect("memory stream");
    let handle = engine
        .start(&format!(
            "CREATE SINK out WITH (connector = 'memory'{sink_options}) AS {query}"
        ))
        .await
        .expect("start");
    let mut rest = rows;
    for (i, size) in chunks.iter().cycle().enumerate() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).min(rest.len()));
        stream.append(batch(chunk)).expect("append");
        rest = tail;
        if i % drain_every == 0 {
            handle.process_all_available().await.expect("drain");
        }
    }
    handle.process_all_available().await.expect("drain");
    handle.stop().await.expect("stop");
    sorted_lines(&engine.sql("SELECT * FROM out").await.expect("read sink"))
}

fn row() -> impl Strategy<Value = (i64, Option<String>, i64)> {
    (0i64..50, proptest::option::of("[a-cx]{0,5}"), -100i64..100)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn stateless_queries_match_the_batch_oracle_for_any_batch_split(
        rows in proptest::collection::vec(row(), 0..120),
        chunks in proptest::collection::vec(1usize..30, 1..6),
        drain_every in 1usize..4,
        max_per_batch in 1usize..40,
        query in 0usize..QUERIES.len(),
    ) {
        let runtime = case_runtime();
        let (expected, actual) = runtime.block_on(async {
            let q = QUERIES[query];
            (oracle(q, &rows).await, streamed(q, &rows, &chunks, drain_every, max_per_batch).await)
        });
        prop_assert_eq!(actual, expected);
    }
}

/// Rounds floating-point cells so float sums in another order compare equal.
fn rounded(lines: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = lines
        .into_iter()
        .map(|line| {
            line.split('|')
                .map(|cell| match cell.parse::<f64>() {
                    Ok(v) if cell.contains('.') => format!("{v:.6}"),
                    _ => cell.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn aggregations_match_the_batch_oracle_for_any_batch_split(
        rows in proptest::collection::vec(row(), 0..120),
        chunks in proptest::collection::vec(1usize..30, 1..6),
        drain_every in 1usize..4,
        max_per_batch in 1usize..40,
        query in 0usize..AGGREGATIONS.len(),
    ) {
        let runtime = case_runtime();
        let (expected, actual) = runtime.block_on(async {
            let q = AGGREGATIONS[query];
            let streamed = streamed_with(q, ", output_mode = 'complete'", &rows, &chunks, drain_every, max_per_batch).await;
            (rounded(oracle(q, &rows).await), rounded(streamed))
        });
        // With no input at all, a global aggregate has run no batch yet, so its sink is empty.
        if rows.is_empty() && query == 2 {
            prop_assert!(actual.is_empty());
        } else {
            prop_assert_eq!(actual, expected);
        }
    }
}

/// Windowed append mode: every window emitted exactly once, either when the watermark passes
/// it or at the end of the input (`flush_on_end`), equals a batch `GROUP BY date_bin(...)`.
async fn windowed_streamed(
    rows: &[(i64, Option<String>, i64)],
    max_per_batch: usize,
) -> Vec<String> {
    windowed_streamed_query(rows, max_per_batch, TUMBLING).await
}

// The two counts of `amount % 7` share one pair set, each with its own FILTER.
pub(crate) const TUMBLING: &str = "SELECT window_start, name, count(*) AS n, sum(amount) AS total, \
    count(DISTINCT amount % 7) AS sevens, count(DISTINCT amount % 7) FILTER (WHERE amount > 20) AS big_sevens \
    FROM TUMBLE(e, ts, INTERVAL '10' SECOND) GROUP BY window_start, window_end, name";

pub(crate) const SESSIONS: &str = "SELECT window_start, window_end, name, count(*) AS n, sum(amount) AS total \
    FROM SESSION(e, ts, INTERVAL '10' SECOND) GROUP BY window_start, window_end, name";

async fn windowed_streamed_query(
    rows: &[(i64, Option<String>, i64)],
    max_per_batch: usize,
    query: &str,
) -> Vec<String> {
    let (engine, _) = run_over_events(rows, max_per_batch, query).await;
    sorted_lines(&engine.sql("SELECT * FROM out").await.expect("read sink"))
}

/// Runs `query` into memory sink `out` over source `e` holding `rows` (ts seconds, name,
/// amount; watermarked 5 s behind), `max_per_batch` rows a batch, `available-now` with
/// `flush_on_end`, to its end; returns the engine and the ended query.
pub(crate) async fn run_over_events(
    rows: &[(i64, Option<String>, i64)],
    max_per_batch: usize,
    query: &str,
) -> (Engine, weir::StreamingQuery) {
    let engine = Engine::builder().build().expect("engine");
    engine
        .execute(&format!(
            "CREATE SOURCE e (ts TIMESTAMP NOT NULL, name VARCHAR, amount BIGINT NOT NULL, \
             WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) \
             WITH (connector = 'memory', max_records_per_trigger = '{max_per_batch}')"
        ))
        .await
        .expect("source");
    if !rows.is_empty() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Second, None),
                false,
            ),
            Field::new("name", DataType::Utf8, true),
            Field::new("amount", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow::array::TimestampSecondArray::from_iter_values(
                    rows.iter().map(|r| r.0),
                )),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1.clone()))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
            ],
        )
        .expect("batch");
        engine
            .connectors()
            .memory_stream("e")
            .expect("stream")
            .append(batch)
            .expect("append");
    }
    let query = engine
        .start(
            &format!(
                "CREATE SINK out WITH (connector = 'memory', trigger = 'available-now', flush_on_end = 'true') AS {query}"
            ),
        )
        .await
        .expect("start");
    query.await_termination().await.expect("run");
    (engine, query)
}

/// A session with table `e` holding `rows` as (ts seconds, name, amount), typed as the
/// streaming source `e` of the windowed tests.
pub(crate) fn event_context(rows: &[(i64, Option<String>, i64)]) -> SessionContext {
    let ctx = SessionContext::new();
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None),
            false,
        ),
        Field::new("name", DataType::Utf8View, true),
        Field::new("amount", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(arrow::array::TimestampNanosecondArray::from_iter_values(
                rows.iter().map(|r| r.0 * 1_000_000_000),
            )),
            Arc::new(arrow::array::StringViewArray::from_iter(
                rows.iter().map(|r| r.1.clone()),
            )),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
        ],
    )
    .expect("batch");
    ctx.register_table(
        "e",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).expect("table")),
    )
    .expect("register");
    ctx
}

pub(crate) async fn windowed_oracle(rows: &[(i64, Option<String>, i64)]) -> Vec<String> {
    let ctx = event_context(rows);
    let sql = "SELECT date_bin(INTERVAL '10' SECOND, ts, TIMESTAMP '1970-01-01T00:00:00') AS window_start, name, \
               count(*) AS n, sum(amount) AS total, count(DISTINCT amount % 7) AS sevens, \
               count(DISTINCT amount % 7) FILTER (WHERE amount > 20) AS big_sevens FROM e GROUP BY 1, 2";
    batch_lines(&ctx, sql).await
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn windowed_append_matches_the_batch_oracle_for_any_batch_split(
        mut rows in proptest::collection::vec((0i64..120, proptest::option::of("[ab]"), -100i64..100), 0..80),
        max_per_batch in 1usize..30,
    ) {
        // In event-time order nothing is late, so every row must be counted exactly once.
        rows.sort_by_key(|r| r.0);
        let runtime = case_runtime();
        let (expected, actual) = runtime.block_on(async {
            (windowed_oracle(&rows).await, windowed_streamed(&rows, max_per_batch).await)
        });
        prop_assert_eq!(actual, expected);
    }
}

// Grouped by the watermarked event time itself: a group closes when the watermark reaches it.
const EVENT_TIME_KEY: &str = "SELECT ts, name, count(*) AS n, sum(amount) AS total, \
    count(DISTINCT amount % 7) AS sevens FROM e GROUP BY ts, name";

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn event_time_keys_in_append_match_the_batch_oracle_for_any_batch_split(
        mut rows in proptest::collection::vec((0i64..60, proptest::option::of("[ab]"), -100i64..100), 0..80),
        max_per_batch in 1usize..30,
    ) {
        rows.sort_by_key(|r| r.0);
        let runtime = case_runtime();
        let (expected, actual) = runtime.block_on(async {
            let ctx = event_context(&rows);
            (batch_lines(&ctx, EVENT_TIME_KEY).await, windowed_streamed_query(&rows, max_per_batch, EVENT_TIME_KEY).await)
        });
        prop_assert_eq!(actual, expected);
    }
}

const HOPPING: &str = "SELECT window_start, window_end, name, count(*) AS n, sum(amount) AS total, \
    max(amount) AS top, count(*) FILTER (WHERE amount > 0) AS positive \
    FROM HOP(e, ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND) GROUP BY window_start, window_end, name";

/// Each row in its three windows by unnesting their starts, aggregated as one batch.
async fn hopping_oracle(rows: &[(i64, Option<String>, i64)]) -> Vec<String> {
    let ctx = event_context(rows);
    let pane = "date_bin(INTERVAL '5' SECOND, ts, TIMESTAMP '1970-01-01T00:00:00')";
    let sql = format!(
        "SELECT window_start, window_start + INTERVAL '15' SECOND AS window_end, name, count(*) AS n, \
         sum(amount) AS total, max(amount) AS top, count(*) FILTER (WHERE amount > 0) AS positive \
         FROM (SELECT name, amount, unnest(make_array({pane}, {pane} - INTERVAL '5' SECOND, \
         {pane} - INTERVAL '10' SECOND)) AS window_start FROM e) GROUP BY window_start, name"
    );
    batch_lines(&ctx, &sql).await
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Hopping windows are aggregated by panes (each row once, in its latest window) and the
    /// panes added to their windows: the same windows as unnesting every row into each.
    #[test]
    fn hopping_windows_by_panes_match_the_batch_oracle_for_any_batch_split(
        mut rows in proptest::collection::vec((0i64..120, proptest::option::of("[ab]"), -100i64..100), 0..80),
        max_per_batch in 1usize..30,
    ) {
        rows.sort_by_key(|r| r.0);
        let runtime = case_runtime();
        let (expected, actual) = runtime.block_on(async {
            (hopping_oracle(&rows).await, windowed_streamed_query(&rows, max_per_batch, HOPPING).await)
        });
        prop_assert_eq!(actual, expected);
    }
}

/// Sessions by gaps and islands: a row starts a new session when it comes 10 s or more after
/// the previous row of its name.
pub(crate) async fn sessions_oracle(rows: &[(i64, Option<String>, i64)]) -> Vec<String> {
    let ctx = event_context(rows);
    let sql = "WITH marked AS ( \
          SELECT ts, name, amount, CASE WHEN ts - lag(ts) OVER (PARTITION BY name ORDER BY ts) < INTERVAL '10' SECOND \
                                        THEN 0 ELSE 1 END AS starts \
          FROM e), \
        numbered AS (SELECT *, sum(starts) OVER (PARTITION BY name ORDER BY ts ROWS UNBOUNDED PRECEDING) AS session FROM marked) \
        SELECT min(ts) AS window_start, max(ts) + INTERVAL '10' SECOND AS window_end, name, count(*) AS n, sum(amount) AS total \
        FROM numbered GROUP BY name, session";
    batch_lines(&ctx, sql).await
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn session_windows_match_the_batch_oracle_for_any_batch_split(
        mut rows in proptest::collection::vec((0i64..200, proptest::option::of("[ab]"), -100i64..100), 0..60),
        max_per_batch in 1usize..30,
    ) {
        rows.sort_by_key(|r| r.0);
        let runtime = case_runtime();
        let (expected, actual) = runtime.block_on(async {
            (sessions_oracle(&rows).await, windowed_streamed_query(&rows, max_per_batch, SESSIONS).await)
        });
        prop_assert_eq!(actual, expected);
    }
}
