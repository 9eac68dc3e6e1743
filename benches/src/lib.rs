//! Benchmarks of Weir. Nothing here is a library: the code lives in `benches/`.
//!
//! - `benches/nexmark.rs`: the end-to-end Nexmark runner. It runs every query in
//!   `queries/*.sql` (one `SELECT` over the `bids` stream per file) from the seeded `nexmark`
//!   generator into the `blackhole` sink, and from pre-generated Parquet files into the
//!   `parquet` sink against plain DataFusion running the same `SELECT` as one batch.
//!   `cargo bench -p weir-benches --bench nexmark [-- q0 q1 ...]`.
//! - `benches/nexmark_stateful.rs`: windowed aggregations (q5, q7, q11, q12, q15-q17) against
//!   DataFusion running the same aggregation as one batch.
//! - `benches/nexmark_joins.rs`: joins, chained operators and Top-N over the person, auction
//!   and bid streams (q3, q5 as written, q7, q8, q9, q13, q18, q19, q20) against DataFusion
//!   running the same query as one batch.
//! - `benches/kafka.rs`: Nexmark bids as JSON in a Kafka topic into the `parquet` sink, local
//!   and on S3 (needs the services of `.ci/services`).
//! - `benches/service_metrics.rs`: a Nexmark query with the server's Prometheus metrics
//!   scraped over HTTP every 100 ms, side by side with none.
//! - `RESULTS.md`: the measured numbers, with the machine and the date.

use std::time::Duration;

/// The number in environment variable `name`, or `default` when it is unset.
pub fn env_number(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse()
            .map_err(|_| format!("{name}={value} is not a number")),
        Err(_) => Ok(default),
    }
}

/// The `p`th percentile of `sorted` (nearest rank).
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The queries of `benches/queries/<folder>` to run: `(name, path)` of each `<name>.sql`
/// (not the `.batch.sql` DataFusion equivalents), sorted, keeping only the names given as
/// command-line arguments when there are any.
pub fn query_files(folder: &str) -> std::io::Result<Vec<(String, std::path::PathBuf)>> {
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("queries")
        .join(folder);
    let mut queries: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "sql")
                && !p.to_string_lossy().ends_with(".batch.sql")
        })
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            (name, p)
        })
        .filter(|(name, _)| wanted.is_empty() || wanted.contains(name))
        .collect();
    queries.sort();
    Ok(queries)
}

/// One run of a query through Weir.
pub struct WeirRun {
    /// From starting the query to its end.
    pub wall: Duration,
    /// Each batch's progress.
    pub batches: Vec<weir::BatchProgress>,
    /// Weir's own work: the batches' durations minus generating the input, in seconds.
    pub weir_work: f64,
}

/// The output mode a query file asks for in a `-- output_mode: <mode>` line, else `append`.
pub fn output_mode_of(select: &str) -> &str {
    select
        .lines()
        .find_map(|line| line.trim().strip_prefix("-- output_mode:"))
        .map_or("append", str::trim)
}

/// Runs `select` in `engine` (whose sources are created) into the `blackhole` sink `name`,
/// `available-now` with `flush_on_end`, to its end, in the output mode it asks for.
pub async fn run_to_end(engine: &weir::Engine, name: &str, select: &str) -> weir::Result<WeirRun> {
    let started = std::time::Instant::now();
    let mode = output_mode_of(select);
    let query = engine
        .start(&format!(
            "CREATE SINK {name} WITH (connector = 'blackhole', trigger = 'available-now', \
             flush_on_end = 'true', output_mode = '{mode}') AS\n{select}"
        ))
        .await?;
    query.await_termination().await?;
    let wall = started.elapsed();
    let batches = query.recent_progress();
    let weir_work = batches
        .iter()
        .map(|b| (b.durations.total - b.durations.read).as_secs_f64())
        .sum();
    Ok(WeirRun {
        wall,
        batches,
        weir_work,
    })
}
