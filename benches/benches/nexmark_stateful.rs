//! Stateful Nexmark benchmarks: windowed aggregations over the seeded `nexmark` bid stream
//! into the `blackhole` sink, in append mode with a 5-second watermark and `flush_on_end`, so
//! every window is emitted once. Queries are `benches/queries/stateful/*.sql`.
//!
//! Reports events/s (all Nexmark events, as in `nexmark.rs`), per-batch latency p50/p99, the
//! peak state (groups and bytes) and the rows emitted.
//!
//! `cargo bench -p weir-benches --bench nexmark_stateful [-- q5 q7 ...]`; environment:
//! `WEIR_BENCH_EVENTS` (default 10 000 000), `WEIR_BENCH_EVENTS_PER_BATCH` (default 1 000 000),
//! `WEIR_BENCH_RUNS` (default 3: each figure is the median run).

/// The allocator of the `weir` binary, so the figures are what users get.
#[global_allocator]
static ALLOCATOR: weir::cli::allocator::Allocator = weir::cli::allocator::Allocator {};
use std::time::{Duration, Instant};

use weir::Engine;
use weir_benches::{WeirRun, env_number, percentile, query_files, run_to_end};

type Error = Box<dyn std::error::Error>;

fn main() -> Result<(), Error> {
    weir::cli::allocator::configure();
    let events = env_number("WEIR_BENCH_EVENTS", 10_000_000)?;
    let per_batch = env_number("WEIR_BENCH_EVENTS_PER_BATCH", 1_000_000)?;
    let runs = env_number("WEIR_BENCH_RUNS", 3)?.max(1);
    let queries = query_files("stateful")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("# Stateful Nexmark run\n");
    println!(
        "- events: {events} ({} bids), {per_batch} events per batch",
        events / 50 * 46
    );
    println!("- sink: blackhole, append mode, watermark 5 s, flush_on_end");
    println!(
        "- each row: the Weir run with the median work (batches minus generation) of {runs}, and the median of {runs} DataFusion runs\n"
    );
    println!(
        "| query | output rows | wall (s) | events/s | events/s per core (÷2) | batch p50 (ms) | batch p99 (ms) | peak state groups | peak state MiB | late rows | read % | execute % | state+log % | Weir without generation (s) | DataFusion batch (s) | ratio |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (name, path) in queries {
        let select = std::fs::read_to_string(&path)?;
        runtime.block_on(async {
            // The run whose Weir work (batches minus generation) is the median of `runs`.
            let mut measured = Vec::new();
            for _ in 0..runs {
                measured.push(run_weir(events, per_batch, &name, &select).await?);
            }
            measured.sort_by(|a, b| a.weir_work.total_cmp(&b.weir_work));
            let WeirRun { wall, batches, weir_work } = measured.swap_remove(measured.len() / 2);
            let mut latencies: Vec<Duration> = batches.iter().map(|b| b.durations.total).collect();
            latencies.sort();
            let output: u64 = batches.iter().map(|b| b.output_rows).sum();
            let ops = batches.iter().flat_map(|b| b.operators.iter());
            let peak_groups = ops.clone().map(|o| o.state_rows).max().unwrap_or(0);
            let peak_bytes = ops.clone().map(|o| o.state_bytes).max().unwrap_or(0);
            let late: u64 = ops.map(|o| o.late_rows).sum();
            let rate = events as f64 / wall.as_secs_f64();
            let total: f64 = batches.iter().map(|b| b.durations.total.as_secs_f64()).sum::<f64>().max(f64::EPSILON);
            let share = |f: &dyn Fn(&weir::BatchProgress) -> Duration| {
                100.0 * batches.iter().map(|b| f(b).as_secs_f64()).sum::<f64>() / total
            };
            let read = share(&|b| b.durations.read);
            let execute = share(&|b| b.durations.execute);
            let log = share(&|b| b.durations.write_offsets + b.durations.commit);
            let batch_sql = std::fs::read_to_string(path.with_extension("batch.sql")).ok();
            let datafusion = match batch_sql {
                Some(sql) => {
                    let mut times = Vec::new();
                    for _ in 0..runs {
                        times.push(datafusion_batch(events, &sql).await?);
                    }
                    times.sort_by(f64::total_cmp);
                    Some(times[times.len() / 2])
                }
                None => None,
            };
            println!(
                "| {name} | {output} | {:.2} | {:.2} M | {:.2} M | {} | {} | {peak_groups} | {:.1} | {late} | {read:.0} | {execute:.0} | {log:.0} | {weir_work:.2} | {} | {} |",
                wall.as_secs_f64(),
                rate / 1e6,
                rate / 2e6,
                percentile(&latencies, 50.0).as_millis(),
                percentile(&latencies, 99.0).as_millis(),
                peak_bytes as f64 / (1024.0 * 1024.0),
                datafusion.map_or("-".to_string(), |d| format!("{d:.2}")),
                datafusion.map_or("-".to_string(), |d| format!("{:.2}×", weir_work / d)),
            );
            Ok::<(), Error>(())
        })?;
    }
    Ok(())
}

async fn run_weir(events: u64, per_batch: u64, name: &str, select: &str) -> Result<WeirRun, Error> {
    let engine = Engine::builder().build()?;
    engine
        .execute(&format!(
            "CREATE SOURCE bids (WATERMARK FOR date_time AS date_time - INTERVAL '5' SECOND) \
             WITH (connector = 'nexmark', table = 'bid', max_events = '{events}', \
             max_records_per_trigger = '{per_batch}')"
        ))
        .await?;
    Ok(run_to_end(&engine, name, select).await?)
}

/// DataFusion running `sql` once over the same bids, generated into memory beforehand (two
/// partitions, as Weir uses); returns the seconds the query took.
async fn datafusion_batch(events: u64, sql: &str) -> Result<f64, Error> {
    use weir_connectors::nexmark::{EventKind, GeneratorConfig, generate, schema};
    let config = GeneratorConfig::default();
    let chunk = 65_536;
    let mut partitions = vec![Vec::new(), Vec::new()];
    for (i, first) in (0..events).step_by(chunk as usize).enumerate() {
        partitions[i % 2].push(generate(
            EventKind::Bid,
            &config,
            first,
            (first + chunk).min(events),
        ));
    }
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_table(
        "bids",
        std::sync::Arc::new(datafusion::datasource::MemTable::try_new(
            schema(EventKind::Bid),
            partitions,
        )?),
    )?;
    let started = Instant::now();
    ctx.sql(sql).await?.collect().await?;
    Ok(started.elapsed().as_secs_f64())
}
