//! Kafka → Parquet: Nexmark bids serialised as JSON in a Kafka topic, read by the `kafka`
//! source and written by the `parquet` sink, to a local directory and to an S3 bucket.
//!
//! Setup (not timed): the seeded `nexmark` generator's first `WEIR_BENCH_EVENTS` events are run
//! through Weir into a memory sink, each bid row encoded as one JSON message and produced to a
//! new topic of `WEIR_BENCH_PARTITIONS` partitions. Then, per target and run, a fresh query
//! reads the whole topic with `trigger = 'available-now'` and `max_records_per_trigger`, and
//! the report gives wall time, bids/s (messages/s) and the p50/p99 of the batches' total
//! durations, with the phase shares.
//!
//! Needs a Kafka-protocol broker and an S3-compatible server on 127.0.0.1, as the tests do:
//! `bash .ci/services start`, then
//! `cargo bench -p weir-benches --bench kafka`.
//! Environment: `WEIR_BENCH_KAFKA` (brokers, default 127.0.0.1:19092), `WEIR_BENCH_S3` (endpoint,
//! default http://127.0.0.1:5000), `WEIR_BENCH_EVENTS` (default 2 000 000),
//! `WEIR_BENCH_PARTITIONS` (default 4), `WEIR_BENCH_RECORDS_PER_TRIGGER` (default 250 000),
//! `WEIR_BENCH_RUNS` (default 3; the median run is reported).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use weir::{BatchProgress, Engine};

/// See [`weir::cli::allocator`].
#[global_allocator]
static ALLOCATOR: weir::cli::allocator::Allocator = weir::cli::allocator::Allocator {};

type Error = Box<dyn std::error::Error>;

const COLUMNS: &str = "auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, \
                       date_time TIMESTAMP, extra VARCHAR";

fn env_number(name: &str, default: u64) -> Result<u64, Error> {
    match std::env::var(name) {
        Ok(value) => Ok(value
            .replace('_', "")
            .trim()
            .parse()
            .map_err(|_| format!("{name}={value} is not a number"))?),
        Err(_) => Ok(default),
    }
}

fn main() -> Result<(), Error> {
    weir::cli::allocator::configure();
    let brokers = std::env::var("WEIR_BENCH_KAFKA").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let s3 = std::env::var("WEIR_BENCH_S3").unwrap_or_else(|_| "http://127.0.0.1:5000".into());
    let events = env_number("WEIR_BENCH_EVENTS", 2_000_000)?;
    let partitions = env_number("WEIR_BENCH_PARTITIONS", 4)?.max(1) as i32;
    let per_trigger = env_number("WEIR_BENCH_RECORDS_PER_TRIGGER", 250_000)?;
    let runs = env_number("WEIR_BENCH_RUNS", 3)?.max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let topic = format!("bench-bids-{}", std::process::id());
    let started = Instant::now();
    let bids = runtime.block_on(nexmark_bids(events))?;
    let rows: usize = bids.iter().map(RecordBatch::num_rows).sum();
    runtime.block_on(create_topic(&brokers, &topic, partitions))?;
    produce(&brokers, &topic, &bids, partitions)?;
    println!(
        "## Kafka → Parquet\n\n{rows} Nexmark bids (of {events} events) as JSON messages in topic \
         `{topic}` ({partitions} partitions) of the broker at {brokers}; produced in {:.1} s (not \
         timed below). `max_records_per_trigger` = {per_trigger}; {runs} runs per target, the \
         median reported.\n",
        started.elapsed().as_secs_f64()
    );
    println!(
        "| target | wall | bids/s | batches | batch p50 | batch p99 | read / execute / sink / rest |"
    );
    println!("|---|---|---|---|---|---|---|");
    let bucket = create_bucket(&s3)?;
    for target in ["local", "s3"] {
        let mut measured = Vec::new();
        for run in 0..runs {
            let out = tempfile::tempdir()?;
            let (path, checkpoint, storage) = match target {
                "local" => (
                    out.path().join("out").display().to_string(),
                    out.path().join("ckpt").display().to_string(),
                    String::new(),
                ),
                _ => (
                    format!("s3://{bucket}/run{run}/out"),
                    format!("s3://{bucket}/run{run}/ckpt"),
                    format!(
                        ", s3.endpoint = '{s3}', s3.allow_http = 'true', s3.region = 'us-east-1', \
                         s3.access_key_id = 'bench', s3.secret_access_key = 'bench'"
                    ),
                ),
            };
            let sql = format!(
                "CREATE SINK out WITH (connector = 'parquet', path = '{path}', checkpoint = \
                 '{checkpoint}', trigger = 'available-now'{storage}) AS SELECT * FROM bids"
            );
            measured.push(runtime.block_on(run_once(
                &brokers,
                &topic,
                per_trigger,
                &sql,
                rows as u64,
            ))?);
        }
        measured.sort_by_key(|m| m.wall);
        let median = &measured[measured.len() / 2];
        println!("{}", median.row(target, rows as u64));
    }
    println!(
        "\nMachine: {} cores. Load average at the end: {}.",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

/// The bid rows of the first `events` Nexmark events.
async fn nexmark_bids(events: u64) -> Result<Vec<RecordBatch>, Error> {
    let engine = Engine::builder().build()?;
    engine
        .execute(&format!(
            "CREATE SOURCE gen WITH (connector = 'nexmark', table = 'bid', max_events = '{events}')"
        ))
        .await?;
    let query = engine
        .start("CREATE SINK generated WITH (connector = 'memory', trigger = 'available-now') AS SELECT * FROM gen")
        .await?;
    query.await_termination().await?;
    Ok(engine.sql("SELECT * FROM generated").await?)
}

async fn create_topic(brokers: &str, topic: &str, partitions: i32) -> Result<(), Error> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for result in admin.create_topics([&new], &AdminOptions::new()).await? {
        result.map_err(|(topic, code)| format!("creating topic {topic}: {code}"))?;
    }
    Ok(())
}

/// Produces every row as one JSON message, round-robin over the partitions. The last message
/// of each partition goes alone, after the others are flushed: tansu 0.6 reports a
/// partition's end as the first offset of its newest record batch plus one.
fn produce(brokers: &str, topic: &str, bids: &[RecordBatch], partitions: i32) -> Result<(), Error> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "lz4")
        .create()?;
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    for batch in bids {
        writer.write(batch)?;
    }
    writer.finish()?;
    let text = writer.into_inner();
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let last_alone = lines.len().saturating_sub(partitions as usize);
    for (i, line) in lines.iter().enumerate() {
        if i == last_alone {
            producer.flush(Duration::from_secs(120))?;
        }
        {
            let mut record = BaseRecord::<(), [u8]>::to(topic)
                .payload(*line)
                .partition(i as i32 % partitions);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        record = back;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
        }
        if i >= last_alone {
            producer.flush(Duration::from_secs(120))?;
        }
    }
    Ok(())
}

/// What one run measured.
struct Measured {
    wall: Duration,
    batches: Vec<BatchProgress>,
}

impl Measured {
    fn row(&self, target: &str, rows: u64) -> String {
        let mut totals: Vec<Duration> = self.batches.iter().map(|b| b.durations.total).collect();
        totals.sort();
        let pct = |p: f64| {
            let rank = ((p * totals.len() as f64).ceil() as usize).clamp(1, totals.len().max(1));
            totals.get(rank - 1).copied().unwrap_or_default()
        };
        let sum = |f: fn(&BatchProgress) -> Duration| -> f64 {
            self.batches.iter().map(|b| f(b).as_secs_f64()).sum()
        };
        let total = sum(|b| b.durations.total).max(f64::MIN_POSITIVE);
        let (read, execute, sink) = (
            sum(|b| b.durations.read),
            sum(|b| b.durations.execute),
            sum(|b| b.durations.sink_write),
        );
        let rest = (total - read - execute - sink).max(0.0);
        let share = |x: f64| 100.0 * x / total;
        format!(
            "| {target} | {:.2} s | {:.0} | {} | {:.0} ms | {:.0} ms | {:.0} / {:.0} / {:.0} / {:.0} % |",
            self.wall.as_secs_f64(),
            rows as f64 / self.wall.as_secs_f64(),
            self.batches.len(),
            pct(0.5).as_secs_f64() * 1000.0,
            pct(0.99).as_secs_f64() * 1000.0,
            share(read),
            share(execute),
            share(sink),
            share(rest)
        )
    }
}

async fn run_once(
    brokers: &str,
    topic: &str,
    per_trigger: u64,
    sink_sql: &str,
    rows: u64,
) -> Result<Measured, Error> {
    let engine = Engine::builder().build()?;
    engine
        .execute(&format!(
            "CREATE SOURCE bids ({COLUMNS}) WITH (connector = 'kafka', brokers = '{brokers}', \
             topic = '{topic}', format = 'json', starting_offsets = 'earliest', \
             max_records_per_trigger = '{per_trigger}')"
        ))
        .await?;
    let started = Instant::now();
    let query = engine.start(sink_sql).await?;
    query.await_termination().await?;
    let wall = started.elapsed();
    let batches = query.recent_progress();
    let read: u64 = batches.iter().map(|b| b.input_rows).sum();
    if read != rows {
        return Err(format!("the query read {read} rows, the topic holds {rows}").into());
    }
    Ok(Measured { wall, batches })
}

/// Creates a bucket on the S3-compatible server (moto takes unsigned requests).
fn create_bucket(endpoint: &str) -> Result<String, Error> {
    let bucket = format!("bench-{}", std::process::id());
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(host)
        .map_err(|e| format!("no S3 server at {endpoint} ({e}); run `bash .ci/services start`"))?;
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    if !response.starts_with("HTTP/1.1 200") {
        return Err(format!("creating bucket {bucket}: {response}").into());
    }
    Ok(bucket)
}
