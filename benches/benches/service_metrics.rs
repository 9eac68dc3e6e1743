//! What Prometheus metrics cost a running query: a Nexmark query run to its end, alternately
//! with no metrics, and with the server's metrics listener and `GET /metrics` scraped over
//! HTTP every 100 ms (the real router on a loopback port, read by a real client on a thread
//! of its own, as Prometheus would from another process).
//!
//! `cargo bench -p weir-benches --bench service_metrics [-- q5 q0 ...]`; `WEIR_BENCH_EVENTS`
//! (default 10 M), `WEIR_BENCH_EVENTS_PER_BATCH` (default 100 k: many batches, so the
//! per-batch cost shows; at most 100 batches are measured, the progress history a query
//! keeps), `WEIR_BENCH_RUNS` (alternations, default 5).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use weir::Engine;
use weir::server::{ServerMetrics, ServerOptions, router};
use weir_benches::{env_number, query_files, run_to_end};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How often the scraper reads `/metrics` unless `WEIR_BENCH_SCRAPE_MS` says otherwise (0:
/// the metrics listener alone, no scrapes).
const SCRAPE_EVERY: Duration = Duration::from_millis(100);

fn scrape_every() -> Duration {
    std::env::var("WEIR_BENCH_SCRAPE_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(SCRAPE_EVERY, Duration::from_millis)
}

fn main() -> Result<(), Error> {
    weir::cli::allocator::configure();
    let events = env_number("WEIR_BENCH_EVENTS", 10_000_000)?;
    let per_batch = env_number("WEIR_BENCH_EVENTS_PER_BATCH", 100_000)?;
    let runs = env_number("WEIR_BENCH_RUNS", 5)?.max(1);
    let mut queries = query_files("stateful")?;
    if std::env::args().skip(1).all(|a| a.starts_with('-')) {
        queries.retain(|(name, _)| name == "q5" || name == "q7");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("# Metrics scraping overhead\n");
    println!(
        "- events: {events}, {per_batch} per batch; {runs} runs of each, alternating ABBA; a scrape every {} ms (0: the metrics listener alone)\n",
        scrape_every().as_millis()
    );
    println!(
        "| query | batches | median work, no metrics (s) | median work, scraped (s) | scraped ÷ none | median wall, no metrics (s) | median wall, scraped (s) | scrapes per run |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|");
    for (name, path) in queries {
        let select = std::fs::read_to_string(&path)?;
        runtime.block_on(async {
            let (mut plain, mut scraped, mut scrapes) = (Vec::new(), Vec::new(), Vec::new());
            let mut batches = 0;
            // ABBA order: the one run second in a pair (after the other's garbage) is not
            // always the same kind.
            for i in 0..runs {
                for scraped_now in [i % 2 == 1, i % 2 == 0] {
                    if scraped_now {
                        let run = run_scraped(events, per_batch, &name, &select).await?;
                        batches = run.2;
                        scraped.push((run.0, run.1));
                        scrapes.push(run.3);
                    } else {
                        let engine = Engine::builder().build()?;
                        let run = measure(&engine, events, per_batch, &name, &select).await?;
                        plain.push((run.0, run.1));
                    }
                }
            }
            let median = |runs: &mut Vec<(f64, f64)>, pick: fn(&(f64, f64)) -> f64| {
                let mut values: Vec<f64> = runs.iter().map(pick).collect();
                values.sort_by(f64::total_cmp);
                values[values.len() / 2]
            };
            let (work_plain, work_scraped) = (
                median(&mut plain, |r| r.0),
                median(&mut scraped, |r| r.0),
            );
            scrapes.sort_unstable();
            println!(
                "| {name} | {batches} | {work_plain:.2} | {work_scraped:.2} | {:.3} | {:.2} | {:.2} | {} |",
                work_scraped / work_plain,
                median(&mut plain, |r| r.1),
                median(&mut scraped, |r| r.1),
                scrapes[scrapes.len() / 2],
            );
            Ok::<(), Error>(())
        })?;
    }
    Ok(())
}

/// One run: Weir's work (batches minus generation) and wall time in seconds, batches.
async fn measure(
    engine: &Engine,
    events: u64,
    per_batch: u64,
    name: &str,
    select: &str,
) -> Result<(f64, f64, usize), Error> {
    engine
        .execute(&format!(
            "CREATE SOURCE bids (WATERMARK FOR date_time AS date_time - INTERVAL '5' SECOND) \
             WITH (connector = 'nexmark', table = 'bid', max_events = '{events}', \
             max_records_per_trigger = '{per_batch}')"
        ))
        .await?;
    let run = run_to_end(engine, name, select).await?;
    Ok((run.weir_work, run.wall.as_secs_f64(), run.batches.len()))
}

/// One run with the metrics listener, served by the server's router and scraped over HTTP;
/// also how many scrapes answered.
async fn run_scraped(
    events: u64,
    per_batch: u64,
    name: &str,
    select: &str,
) -> Result<(f64, f64, usize, u64), Error> {
    let metrics = Arc::new(ServerMetrics::new());
    let engine = Engine::builder().listener(metrics.clone()).build()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = router(engine.clone(), metrics, &ServerOptions::default());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    // The scraper stands for Prometheus, another process: it runs on a thread and runtime of
    // its own, so only the server's side of each scrape runs on the engine's runtime.
    let scrapes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let (scrapes, stop) = (Arc::clone(&scrapes), Arc::clone(&stop));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the scraper's runtime");
            runtime.block_on(async {
                let client = reqwest::Client::new();
                let url = format!("http://{address}/metrics");
                let every = scrape_every();
                if every.is_zero() {
                    return;
                }
                let mut tick = tokio::time::interval(every);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    if let Ok(response) = client.get(&url).send().await
                        && response.bytes().await.is_ok()
                    {
                        scrapes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        })
    };
    let run = measure(&engine, events, per_batch, name, select).await;
    stop.store(true, Ordering::Relaxed);
    let _ = scraper.join();
    server.abort();
    let (work, wall, batches) = run?;
    Ok((work, wall, batches, scrapes.load(Ordering::Relaxed)))
}
