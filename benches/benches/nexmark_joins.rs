//! Nexmark joins, chained operators and Top-N: the seeded `nexmark` person, auction and bid
//! streams (three sources over the same events, each keeping its kind) into the `blackhole`
//! sink, a 5-second watermark on each, `flush_on_end`, in append mode unless the query file
//! says `-- output_mode: update` (q4: an average over the whole stream; q9, q18, q19: Top-N over
//! the whole stream). Queries are `benches/queries/joins/*.sql`, each
//! with a `<query>.batch.sql` that DataFusion runs once over the same events generated into
//! memory beforehand. q13's side input is a static table (`side_input`, a CSV file of 10 000
//! keys) read by both.
//!
//! Reports events/s (all Nexmark events: each source reads them all and keeps its kind), per
//! core (÷ 2), per-batch latency p50/p99, the peak join state (rows and MiB) and the rows
//! emitted, and Weir's work without generating the input against DataFusion's batch time. A
//! run whose rows differ in number from DataFusion's stops the benchmark (in update mode, the
//! final result's rows, from one more run into a memory sink in complete mode).
//!
//! `cargo bench -p weir-benches --bench nexmark_joins [-- q3 q8 ...]`; environment:
//! `WEIR_BENCH_EVENTS` (default 10 000 000), `WEIR_BENCH_EVENTS_PER_BATCH` (default 1 000 000),
//! `WEIR_BENCH_RUNS` (default 3: each figure is the median run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use weir::Engine;
use weir_benches::{WeirRun, env_number, output_mode_of, percentile, query_files, run_to_end};

/// The allocator of the `weir` binary, so the figures are what users get.
#[global_allocator]
static ALLOCATOR: weir::cli::allocator::Allocator = weir::cli::allocator::Allocator {};

type Error = Box<dyn std::error::Error>;

/// Keys of q13's side input.
const SIDE_KEYS: u64 = 10_000;

/// The sources, each named after the Nexmark table it keeps.
const TABLES: [&str; 3] = ["person", "auction", "bid"];

fn main() -> Result<(), Error> {
    weir::cli::allocator::configure();
    let events = env_number("WEIR_BENCH_EVENTS", 10_000_000)?;
    let per_batch = env_number("WEIR_BENCH_EVENTS_PER_BATCH", 1_000_000)?;
    let runs = env_number("WEIR_BENCH_RUNS", 3)?.max(1);
    let queries = query_files("joins")?;
    // Nexmark q13's side input: a static table of 10 000 keys.
    let side = tempfile::tempdir()?;
    let side_input = side.path().join("side_input.csv");
    let mut csv = String::from("key,value\n");
    for key in 0..SIDE_KEYS {
        csv.push_str(&format!("{key},value-{key}\n"));
    }
    std::fs::write(&side_input, csv)?;
    let side_input = side_input.display().to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("# Nexmark joins run\n");
    println!("- events: {events}, {per_batch} events per batch (of each source)");
    println!(
        "- sink: blackhole, append mode (update for q4, q9, q18, q19), watermark 5 s on each source, flush_on_end"
    );
    println!(
        "- each row: the Weir run with the median work (batches minus generation) of {runs}, and the median of {runs} DataFusion runs\n"
    );
    println!(
        "| query | output rows | wall (s) | events/s | events/s per core (÷2) | batch p50 (ms) | batch p99 (ms) | peak state rows | peak state MiB | Weir without generation (s) | DataFusion batch (s) | ratio |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (name, path) in queries {
        let select = std::fs::read_to_string(&path)?;
        runtime.block_on(async {
            let mut measured = Vec::new();
            for _ in 0..runs {
                measured.push(run_weir(events, per_batch, &side_input, &name, &select).await?);
            }
            measured.sort_by(|a, b| a.weir_work.total_cmp(&b.weir_work));
            let run = measured.swap_remove(measured.len() / 2);
            let mut latencies: Vec<Duration> =
                run.batches.iter().map(|b| b.durations.total).collect();
            latencies.sort();
            let output: u64 = run.batches.iter().map(|b| b.output_rows).sum();
            let state = |b: &weir::BatchProgress, f: fn(&weir::OperatorProgress) -> u64| {
                b.operators.iter().map(f).sum::<u64>()
            };
            let peak_rows = run.batches.iter().map(|b| state(b, |o| o.state_rows)).max();
            let peak_bytes = run.batches.iter().map(|b| state(b, |o| o.state_bytes)).max();
            let rate = events as f64 / run.wall.as_secs_f64();
            // The rows to compare with DataFusion's: in update mode, the final result's.
            let result_rows = match output_mode_of(&select) {
                "append" => output,
                _ => final_rows(events, per_batch, &side_input, &select).await?,
            };
            let batch_sql = std::fs::read_to_string(path.with_extension("batch.sql")).ok();
            let datafusion = match batch_sql {
                Some(sql) => {
                    let mut times = Vec::new();
                    for _ in 0..runs {
                        let (seconds, rows) = datafusion_batch(events, &side_input, &sql).await?;
                        if rows != result_rows {
                            return Err(format!(
                                "{name}: Weir's result has {result_rows} rows, DataFusion's \
                                 batch query {rows}"
                            )
                            .into());
                        }
                        times.push(seconds);
                    }
                    times.sort_by(f64::total_cmp);
                    Some(times[times.len() / 2])
                }
                None => None,
            };
            println!(
                "| {name} | {output} | {:.2} | {:.2} M | {:.2} M | {} | {} | {} | {:.1} | {:.2} | {} | {} |",
                run.wall.as_secs_f64(),
                rate / 1e6,
                rate / 2e6,
                percentile(&latencies, 50.0).as_millis(),
                percentile(&latencies, 99.0).as_millis(),
                peak_rows.unwrap_or(0),
                peak_bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0),
                run.weir_work,
                datafusion.map_or("-".to_string(), |d| format!("{d:.2}")),
                datafusion.map_or("-".to_string(), |d| format!("{:.2}×", run.weir_work / d)),
            );
            Ok::<(), Error>(())
        })?;
    }
    Ok(())
}

async fn run_weir(
    events: u64,
    per_batch: u64,
    side_input: &str,
    name: &str,
    select: &str,
) -> Result<WeirRun, Error> {
    let engine = engine_with_sources(events, per_batch, side_input).await?;
    Ok(run_to_end(&engine, name, select).await?)
}

/// The rows of the final result of `select`, a query in update mode: run again into a
/// memory sink in complete mode, whose rows are then the whole result.
async fn final_rows(
    events: u64,
    per_batch: u64,
    side_input: &str,
    select: &str,
) -> Result<u64, Error> {
    let engine = engine_with_sources(events, per_batch, side_input).await?;
    let query = engine
        .start(&format!(
            "CREATE SINK final_rows WITH (connector = 'memory', trigger = 'available-now', \
             flush_on_end = 'true', output_mode = 'complete') AS\n{select}"
        ))
        .await?;
    query.await_termination().await?;
    let counted = engine.sql("SELECT count(*) FROM final_rows").await?;
    let count = counted
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
        })
        .map_or(0, |c| c.value(0));
    Ok(u64::try_from(count)?)
}

/// An engine with the three Nexmark sources and q13's side input.
async fn engine_with_sources(
    events: u64,
    per_batch: u64,
    side_input: &str,
) -> Result<Engine, Error> {
    let engine = Engine::builder().build()?;
    engine
        .execute(&format!(
            "CREATE TABLE side_input WITH (connector = 'files', path = '{side_input}', format = 'csv')"
        ))
        .await?;
    for table in TABLES {
        engine
            .execute(&format!(
                "CREATE SOURCE {table} (WATERMARK FOR date_time AS date_time - INTERVAL '5' \
                 SECOND) WITH (connector = 'nexmark', table = '{table}', max_events = \
                 '{events}', max_records_per_trigger = '{per_batch}')"
            ))
            .await?;
    }
    Ok(engine)
}

/// DataFusion running `sql` once over the same events, generated into memory beforehand (two
/// partitions per table, as Weir uses); returns the seconds the query took and its rows.
async fn datafusion_batch(events: u64, side_input: &str, sql: &str) -> Result<(f64, u64), Error> {
    use weir_connectors::nexmark::{EventKind, GeneratorConfig, generate, schema};
    let config = GeneratorConfig::default();
    let chunk = 65_536;
    let ctx = datafusion::prelude::SessionContext::new();
    for (name, kind) in [
        ("person", EventKind::Person),
        ("auction", EventKind::Auction),
        ("bid", EventKind::Bid),
    ] {
        let mut partitions = vec![Vec::new(), Vec::new()];
        for (i, first) in (0..events).step_by(chunk as usize).enumerate() {
            partitions[i % 2].push(generate(kind, &config, first, (first + chunk).min(events)));
        }
        let table = datafusion::datasource::MemTable::try_new(schema(kind), partitions)?;
        ctx.register_table(name, Arc::new(table))?;
    }
    ctx.register_csv(
        "side_input",
        side_input,
        datafusion::prelude::CsvReadOptions::new(),
    )
    .await?;
    let started = Instant::now();
    let batches = ctx.sql(sql).await?.collect().await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok((seconds, batches.iter().map(|b| b.num_rows() as u64).sum()))
}
