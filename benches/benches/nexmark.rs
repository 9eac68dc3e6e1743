//! End-to-end Nexmark runner: every query in `benches/queries/*.sql`, run two ways.
//!
//! 1. **generator → blackhole**: the `nexmark` source (bid stream, `WEIR_BENCH_EVENTS` events
//!    of all kinds) into the `blackhole` sink with `trigger = 'available-now'`. Reports wall
//!    time, events/s (all Nexmark events, as Nexmark counts them), bid rows/s and the p50/p99
//!    of the batches' `durations.total`, with the share of each phase.
//! 2. **Parquet files → Parquet sink**: the same bids pre-generated into `WEIR_BENCH_FILES`
//!    Parquet files, read by a `files` source (`max_files_per_trigger`, default 1) and written
//!    by the `parquet` sink; then the same `SELECT` run once by plain DataFusion over the same
//!    files (`register_parquet` + `DataFrame::write_parquet`, snappy like the sink), and the
//!    ratio of the two wall times.
//!
//! ```text
//! cargo bench -p weir-benches --bench nexmark                   # everything
//! cargo bench -p weir-benches --bench nexmark -- q0 q1          # a subset of queries
//! cargo bench -p weir-benches --bench nexmark -- --no-files     # only part 1
//! cargo bench -p weir-benches --bench nexmark -- --no-generator # only part 2
//! ```
//! Environment: `WEIR_BENCH_EVENTS` (default 20 000 000), `WEIR_BENCH_EVENTS_PER_BATCH`
//! (default 1 000 000), `WEIR_BENCH_FILES` (default 20), `WEIR_BENCH_FILES_PER_TRIGGER`
//! (default 1), `WEIR_BENCH_RUNS` (default 3; the run with the median wall time is reported).
//! Every number printed is measured here; the output is a Markdown report for `RESULTS.md`.

use std::path::{Path, PathBuf};

/// The allocator of the `weir` binary, so the figures are what users get.
#[global_allocator]
static ALLOCATOR: weir::cli::allocator::Allocator = weir::cli::allocator::Allocator {};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use datafusion::config::TableParquetOptions;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use weir::{BatchProgress, Engine};
use weir_connectors::nexmark::{EventKind, GeneratorConfig, generate, schema};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Events the generator makes per call when pre-generating files (one Parquet write each).
const GENERATE_CHUNK: u64 = 64 * 1024;
/// Batches of progress a query keeps; percentiles over more batches would be partial.
const PROGRESS_HISTORY: usize = 100;

fn main() -> Result<()> {
    weir::cli::allocator::configure();
    let settings = Settings::from_env_and_args()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    print_header(&settings);
    if settings.generator {
        runtime.block_on(generator_part(&settings))?;
    }
    if settings.files_part {
        files_part(&settings, &runtime)?;
    }
    println!("Load average at the end: {}.", load_average());
    Ok(())
}

/// What to run, from the environment and the command line.
struct Settings {
    events: u64,
    events_per_batch: u64,
    files: u64,
    files_per_trigger: u64,
    runs: usize,
    cores: usize,
    generator: bool,
    files_part: bool,
    queries: Vec<Query>,
}

/// One query file.
struct Query {
    name: String,
    select: String,
}

impl Settings {
    fn from_env_and_args() -> Result<Self> {
        let mut names = Vec::new();
        let (mut generator, mut files_part) = (true, true);
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--no-files" => files_part = false,
                "--no-generator" => generator = false,
                // `cargo bench` passes `--bench`; other harness flags do not apply here.
                other if other.starts_with('-') => {}
                other => names.push(other.to_string()),
            }
        }
        let settings = Settings {
            events: env_number("WEIR_BENCH_EVENTS", 20_000_000)?,
            events_per_batch: env_number("WEIR_BENCH_EVENTS_PER_BATCH", 1_000_000)?,
            files: env_number("WEIR_BENCH_FILES", 20)?.max(1),
            files_per_trigger: env_number("WEIR_BENCH_FILES_PER_TRIGGER", 1)?.max(1),
            runs: env_number("WEIR_BENCH_RUNS", 3)?.max(1) as usize,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            generator,
            files_part,
            queries: load_queries(&names)?,
        };
        Ok(settings)
    }

    /// Bid rows among events `0..events` (46 in every 50, after 1 person and 3 auctions).
    fn bid_rows(&self) -> u64 {
        bids_before(self.events)
    }
}

fn bids_before(events: u64) -> u64 {
    events / 50 * 46 + (events % 50).saturating_sub(4)
}

fn env_number(key: &str, default: u64) -> Result<u64> {
    match std::env::var(key) {
        Ok(raw) => raw
            .replace('_', "")
            .parse()
            .map_err(|e| format!("{key}={raw:?} is not a whole number: {e}").into()),
        Err(_) => Ok(default),
    }
}

/// The queries in `queries/`, in the order q0, q1, q2, q21, ...; only `names` if given.
fn load_queries(names: &[String]) -> Result<Vec<Query>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries");
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".sql"))
        else {
            continue;
        };
        if !names.is_empty() && !names.iter().any(|n| n == name) {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        queries.push(Query {
            name: name.to_string(),
            select: text.trim().trim_end_matches(';').to_string(),
        });
    }
    for name in names {
        if !queries.iter().any(|q| &q.name == name) {
            return Err(format!("no query {name}.sql in {}", dir.display()).into());
        }
    }
    let number = |q: &Query| {
        q.name
            .trim_start_matches('q')
            .parse::<u32>()
            .unwrap_or(u32::MAX)
    };
    queries.sort_by(|a, b| number(a).cmp(&number(b)).then(a.name.cmp(&b.name)));
    Ok(queries)
}

fn print_header(settings: &Settings) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or_else(
            || "unknown".to_string(),
            |kb| format!("{:.1} GiB", kb as f64 / 1048576.0),
        );
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let mut commit =
        git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    let engine_dirs = [
        "status",
        "--porcelain",
        "--",
        "../engine",
        "../connectors",
        "../sql",
    ];
    if git(&engine_dirs).is_some_and(|changes| !changes.is_empty()) {
        commit.push_str(" with uncommitted changes in engine/, connectors/ or sql/");
    }
    println!("# Nexmark run\n");
    println!(
        "- date: {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!(
        "- machine: {cpu}, {} cores available to this process, {memory} RAM",
        settings.cores
    );
    println!("- commit: {commit}, release profile");
    println!("- load average at start: {}", load_average());
    println!(
        "- events: {} (bids: {}), {} events per batch; {} runs per measurement, median reported",
        settings.events,
        settings.bid_rows(),
        settings.events_per_batch,
        settings.runs
    );
    println!(
        "- queries: {}",
        settings
            .queries
            .iter()
            .map(|q| q.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
}

/// One measured run of a streaming query.
struct Run {
    wall: Duration,
    /// CPU time (user + system) of the whole process during the run.
    cpu: Duration,
    batches: Vec<BatchProgress>,
}

impl Run {
    fn input_rows(&self) -> u64 {
        self.batches.iter().map(|b| b.input_rows).sum()
    }

    fn output_rows(&self) -> u64 {
        self.batches.iter().map(|b| b.output_rows).sum()
    }

    /// Whether `batches` holds every batch of the run (the history keeps the last 100).
    fn complete(&self) -> bool {
        self.batches.len() < PROGRESS_HISTORY
            || self.batches.first().is_some_and(|b| b.batch_id.0 == 0)
    }

    /// The `p`-quantile (nearest rank) of the batches' total durations.
    fn batch_percentile(&self, p: f64) -> Duration {
        let mut totals: Vec<Duration> = self.batches.iter().map(|b| b.durations.total).collect();
        totals.sort();
        if totals.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p * totals.len() as f64).ceil() as usize).clamp(1, totals.len());
        totals[rank - 1]
    }

    /// Shares of the batches' total time: read, execute, sink write, the rest.
    fn phase_shares(&self) -> [f64; 4] {
        let sum = |f: fn(&BatchProgress) -> Duration| -> f64 {
            self.batches.iter().map(|b| f(b).as_secs_f64()).sum()
        };
        let total = sum(|b| b.durations.total).max(f64::MIN_POSITIVE);
        let read = sum(|b| b.durations.read);
        let execute = sum(|b| b.durations.execute);
        let sink = sum(|b| b.durations.sink_write);
        let rest = (total - read - execute - sink).max(0.0);
        [read, execute, sink, rest].map(|x| 100.0 * x / total)
    }
}

/// Runs `measure` `runs` times and keeps the run with the median wall time.
async fn median_of<F, Fut>(runs: usize, mut measure: F) -> Result<Run>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Run>>,
{
    let mut all = Vec::with_capacity(runs);
    for _ in 0..runs {
        all.push(measure().await?);
    }
    all.sort_by_key(|r| r.wall);
    let middle = all.len() / 2;
    Ok(all.swap_remove(middle))
}

/// Starts `CREATE SINK <name> WITH (<sink options>) AS <select>` and waits for it to end.
async fn run_streaming(
    engine: &Engine,
    name: &str,
    sink_options: &str,
    select: &str,
) -> Result<Run> {
    let cpu_before = process_cpu_time()?;
    let started = Instant::now();
    let query = engine
        .start(&format!(
            "CREATE SINK {name} WITH ({sink_options}, trigger = 'available-now') AS\n{select}"
        ))
        .await?;
    query.await_termination().await?;
    let wall = started.elapsed();
    Ok(Run {
        wall,
        cpu: process_cpu_time()?.saturating_sub(cpu_before),
        batches: query.recent_progress(),
    })
}

async fn generator_run(settings: &Settings, events: u64, query: &Query) -> Result<Run> {
    let engine = Engine::builder().build()?;
    engine
        .execute(&format!(
            "CREATE SOURCE bids WITH (connector = 'nexmark', table = 'bid', \
             max_events = '{events}', max_records_per_trigger = '{}')",
            settings.events_per_batch
        ))
        .await?;
    run_streaming(
        &engine,
        &query.name,
        "connector = 'blackhole'",
        &query.select,
    )
    .await
}

async fn generator_part(settings: &Settings) -> Result<()> {
    // Warm up the allocator, the thread pools and the page cache of the binary.
    if let Some(first) = settings.queries.first() {
        generator_run(
            settings,
            settings.events_per_batch.min(settings.events),
            first,
        )
        .await?;
    }
    println!("## Generator → blackhole\n");
    println!(
        "| query | output rows | wall (s) | events/s | events/s per core (÷{cores}) \
         | events per CPU-second | bid rows/s | batch p50 (ms) | batch p99 (ms) \
         | read % | execute % | sink % | other % |",
        cores = settings.cores
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for query in &settings.queries {
        let run = median_of(settings.runs, || {
            generator_run(settings, settings.events, query)
        })
        .await?;
        let seconds = run.wall.as_secs_f64();
        let events_per_second = settings.events as f64 / seconds;
        let [read, execute, sink, other] = run.phase_shares();
        let output = if run.complete() {
            run.output_rows().to_string()
        } else {
            "n/a".to_string()
        };
        if run.complete() && run.input_rows() != settings.bid_rows() {
            eprintln!(
                "warning: {} read {} bids, expected {}",
                query.name,
                run.input_rows(),
                settings.bid_rows()
            );
        }
        println!(
            "| {} | {output} | {seconds:.2} | {} | {} | {} | {} | {:.0} | {:.0} | {read:.0} | {execute:.0} | {sink:.0} | {other:.0} |",
            query.name,
            millions(events_per_second),
            millions(events_per_second / settings.cores as f64),
            millions(settings.events as f64 / run.cpu.as_secs_f64().max(1e-3)),
            millions(settings.bid_rows() as f64 / seconds),
            millis(run.batch_percentile(0.5)),
            millis(run.batch_percentile(0.99)),
        );
    }
    println!();
    println!(
        "events/s counts all {} Nexmark events (the bid stream skips persons and auctions). \
         Per core = events/s ÷ {} cores; events per CPU-second = events ÷ the process's user + \
         system CPU time during the run. Percentiles are over the {} batches' `durations.total`; \
         the phase shares are of the sum of those totals.\n",
        settings.events,
        settings.cores,
        settings.events.div_ceil(settings.events_per_batch)
    );
    let mut alone: Vec<_> = (0..settings.runs)
        .map(|_| generator_alone(settings.events))
        .collect();
    alone.sort();
    let (wall, bids) = alone[alone.len() / 2];
    println!(
        "Generator alone (`generate(Bid)` in {GENERATE_CHUNK}-event chunks on one thread, no \
         engine): {} events/s, {} bid rows/s ({bids} rows in {:.2} s).\n",
        millions(settings.events as f64 / wall.as_secs_f64()),
        millions(bids as f64 / wall.as_secs_f64()),
        wall.as_secs_f64()
    );
    Ok(())
}

/// Times the generator alone on the current thread: the single-core ceiling of part 1.
fn generator_alone(events: u64) -> (Duration, u64) {
    let config = GeneratorConfig::default();
    let started = Instant::now();
    let mut rows = 0;
    let mut lo = 0;
    while lo < events {
        let hi = (lo + GENERATE_CHUNK).min(events);
        rows += generate(EventKind::Bid, &config, lo, hi).num_rows() as u64;
        lo = hi;
    }
    (started.elapsed(), rows)
}

/// Writes the bids of events `0..settings.events` as `settings.files` snappy Parquet files
/// under `dir`, on all cores.
fn write_input_files(settings: &Settings, dir: &Path) -> Result<u64> {
    let config = GeneratorConfig::default();
    let next = AtomicUsize::new(0);
    let files = settings.files;
    let bounds = |i: u64| i * settings.events / files;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..settings.cores)
            .map(|_| {
                scope.spawn(|| -> Result<u64> {
                    let mut bytes = 0;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                        if i >= files {
                            return Ok(bytes);
                        }
                        let path = dir.join(format!("bids-{i:05}.parquet"));
                        let props = WriterProperties::builder()
                            .set_compression(Compression::SNAPPY)
                            .build();
                        let file = std::fs::File::create(&path)?;
                        let mut writer =
                            ArrowWriter::try_new(file, schema(EventKind::Bid), Some(props))?;
                        let (first, end) = (bounds(i), bounds(i + 1));
                        let mut lo = first;
                        while lo < end {
                            let hi = (lo + GENERATE_CHUNK).min(end);
                            writer.write(&generate(EventKind::Bid, &config, lo, hi))?;
                            lo = hi;
                        }
                        writer.close()?;
                        bytes += std::fs::metadata(&path)?.len();
                    }
                })
            })
            .collect();
        let mut total = 0;
        for worker in workers {
            total += worker
                .join()
                .map_err(|_| "a file-writing thread panicked")??;
        }
        Ok(total)
    })
}

async fn files_run(
    settings: &Settings,
    input: &Path,
    scratch: &Path,
    query: &Query,
) -> Result<Run> {
    let run_dir = tempfile::tempdir_in(scratch)?;
    let (out, checkpoint) = (
        run_dir.path().join("out"),
        run_dir.path().join("checkpoint"),
    );
    let engine = Engine::builder().build()?;
    engine
        .execute(&format!(
            "CREATE SOURCE bids WITH (connector = 'files', path = '{}', format = 'parquet', \
             max_files_per_trigger = '{}')",
            input.display(),
            settings.files_per_trigger
        ))
        .await?;
    let sink = format!(
        "connector = 'parquet', path = '{}', checkpoint = '{}'",
        out.display(),
        checkpoint.display()
    );
    run_streaming(&engine, &query.name, &sink, &query.select).await
}

/// The same `SELECT` as one DataFusion batch query over the input files, written as snappy
/// Parquet. Returns the wall time, the process's CPU time and the rows written.
async fn datafusion_run(
    settings: &Settings,
    input: &Path,
    scratch: &Path,
    query: &Query,
) -> Result<(Duration, Duration, u64)> {
    let run_dir = tempfile::tempdir_in(scratch)?;
    let out: PathBuf = run_dir.path().join("out");
    let cpu_before = process_cpu_time()?;
    let started = Instant::now();
    let ctx = SessionContext::new_with_config(
        SessionConfig::new().with_target_partitions(settings.cores),
    );
    ctx.register_parquet(
        "bids",
        &input.display().to_string(),
        ParquetReadOptions::default(),
    )
    .await?;
    let mut options = TableParquetOptions::default();
    options.global.compression = Some("snappy".to_string());
    let written = ctx
        .sql(&query.select)
        .await?
        .write_parquet(
            &format!("{}/", out.display()),
            DataFrameWriteOptions::new(),
            Some(options),
        )
        .await?;
    let wall = started.elapsed();
    let cpu = process_cpu_time()?.saturating_sub(cpu_before);
    let rows = written
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::UInt64Array>()
                .map(|c| c.value(0))
        })
        .unwrap_or(0);
    Ok((wall, cpu, rows))
}

fn files_part(settings: &Settings, runtime: &tokio::runtime::Runtime) -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let input = scratch.path().join("bids");
    std::fs::create_dir(&input)?;
    let started = Instant::now();
    let bytes = write_input_files(settings, &input)?;
    println!("## Parquet files → Parquet sink, against DataFusion batch\n");
    println!(
        "Input: {} bid rows in {} snappy Parquet files, {:.0} MiB, generated in {:.1} s; \
         {} file(s) per trigger.\n",
        settings.bid_rows(),
        settings.files,
        bytes as f64 / 1048576.0,
        started.elapsed().as_secs_f64(),
        settings.files_per_trigger
    );
    println!(
        "| query | output rows | Weir wall (s) | Weir rows/s | Weir cores busy | batch p50 (ms) \
         | batch p99 (ms) | read % | execute % | sink % | other % | DataFusion wall (s) \
         | DataFusion cores busy | Weir ÷ DataFusion |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    runtime.block_on(async {
        for query in &settings.queries {
            let run = median_of(settings.runs, || files_run(settings, &input, scratch.path(), query)).await?;
            let mut datafusion = Vec::with_capacity(settings.runs);
            for _ in 0..settings.runs {
                datafusion.push(datafusion_run(settings, &input, scratch.path(), query).await?);
            }
            datafusion.sort_by_key(|(wall, ..)| *wall);
            let (df_wall, df_cpu, df_rows) = datafusion[datafusion.len() / 2];
            if run.complete() && run.output_rows() != df_rows {
                eprintln!(
                    "warning: {}: Weir wrote {} rows, DataFusion {df_rows}",
                    query.name,
                    run.output_rows()
                );
            }
            let seconds = run.wall.as_secs_f64();
            let [read, execute, sink, other] = run.phase_shares();
            println!(
                "| {} | {df_rows} | {seconds:.2} | {} | {:.2} | {:.0} | {:.0} | {read:.0} | {execute:.0} | {sink:.0} | {other:.0} | {:.2} | {:.2} | {:.2}× |",
                query.name,
                millions(settings.bid_rows() as f64 / seconds),
                run.cpu.as_secs_f64() / seconds,
                millis(run.batch_percentile(0.5)),
                millis(run.batch_percentile(0.99)),
                df_wall.as_secs_f64(),
                df_cpu.as_secs_f64() / df_wall.as_secs_f64(),
                seconds / df_wall.as_secs_f64(),
            );
        }
        println!();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    })?;
    Ok(())
}

/// The 1, 5 and 15 minute load averages: other work on the machine skews every number.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".to_string())
}

/// User + system CPU time of this process so far, from `/proc/self/stat` (in USER_HZ = 100
/// ticks per second, as on every Linux build that matters).
fn process_cpu_time() -> Result<Duration> {
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 (1-based) of the line; field 3 comes first here.
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| "unexpected /proc/self/stat".into())
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 1000 / TICKS_PER_SECOND))
}

fn millions(per_second: f64) -> String {
    format!("{:.2} M", per_second / 1e6)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
