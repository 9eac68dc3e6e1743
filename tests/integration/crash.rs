//! Crash safety of the real `weir` binary.
//!
//! `sigkill_at_random_points_keeps_parquet_output_exactly_once` kills `weir run` with SIGKILL
//! at seeded random moments (startup, recovery, reading, writing, committing) at least
//! [`KILLS`] times over a run of many one-file batches, restarts the same command until it
//! finishes, then reads the sink directory with the plain `parquet` crate, skipping names that
//! start with `_` or `.` as DuckDB, pyarrow and Spark do. Those rows must equal, as a multiset,
//! the oracle's: the same `SELECT` run by DataFusion as one batch query over all the input. A
//! lost or duplicated row fails the test. Meanwhile a plain reader lists and reads the
//! sink's directory in a loop, as `pyarrow.dataset` does (every name not starting with `_`
//! or `.`, whatever its extension): it must never meet a partial file.
//!
//! `sigkill_at_random_points_keeps_s3_parquet_output_and_checkpoint_exactly_once` does the same
//! with the sink's output and the checkpoint in an S3 bucket (the moto server of `services`;
//! skipped visibly without it), where no file is renamed and log entries are conditional puts.
//!
//! `a_second_writer_on_a_checkpoint_is_refused_at_start_and_loses_nothing` races two runs on
//! one checkpoint, and its S3 twin the same on a checkpoint in a bucket.
//!
//! `sigint_stops_gracefully_after_the_batch_in_flight` checks that SIGINT and SIGTERM end
//! `weir run` with exit code 0 and no batch planned but left uncommitted, and that a file
//! dropped into the source directory of a running query is processed without a restart (the
//! test allows 15 s; it prints how long it took, a few 200 ms triggers).
//!
//! Set `WEIR_CRASH_SEED` to replay a run with the seed it printed.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{JsonReadOptions, SessionContext};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tempfile::TempDir;
use weir_connectors::StoreLocation;

use crate::{object_stores, services};

/// The query under test, also run by the oracle.
const SELECT: &str =
    "SELECT id, upper(name) AS name, amount * 2 AS doubled FROM events WHERE id % 3 <> 0";
/// SIGKILLs that must land on a running process.
const KILLS: usize = 20;
/// Input files not yet committed, topped up before each start so kills land mid-run.
const BACKLOG: u64 = 30;
const ROWS_PER_FILE: i64 = 1000;
/// Repeated names and amounts, so a sink that deduplicated rows would lose some.
const NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];

#[test]
fn sigkill_at_random_points_keeps_parquet_output_exactly_once() {
    kill_repeatedly(&Job::new("available-now", None, None), KILLS, 1);
}

/// The same with the parquet sink's output and the checkpoint in an S3 bucket (moto), where
/// nothing is renamed and log entries are conditional puts.
#[test]
fn sigkill_at_random_points_keeps_s3_parquet_output_and_checkpoint_exactly_once() {
    let test = "sigkill_at_random_points_keeps_s3_parquet_output_and_checkpoint_exactly_once";
    let Some(endpoint) = services::s3(test) else {
        return;
    };
    let bucket = object_stores::create_bucket(&endpoint, "crash");
    // Each batch makes a few dozen requests to the server: kills wait longer to land mid-run.
    let job = Job::new("available-now", Some(S3Place { endpoint, bucket }), None);
    kill_repeatedly(&job, KILLS / 2, 5);
}

/// The same reading a Kafka topic of two partitions (the broker of `services`) instead of
/// files: offsets per partition in the offsets log, no consumer group.
#[test]
fn sigkill_at_random_points_keeps_kafka_to_parquet_exactly_once() {
    let test = "sigkill_at_random_points_keeps_kafka_to_parquet_exactly_once";
    let Some(brokers) = services::kafka(test) else {
        return;
    };
    let topic = format!(
        "weir-crash-{}-{}",
        std::process::id(),
        Rng::from_env().below(1 << 30)
    );
    let kafka = KafkaPlace::create(brokers, topic);
    kill_repeatedly(&Job::new("available-now", None, Some(kafka)), KILLS / 2, 2);
}

/// Kills `weir run` at random moments (stretched by `slowdown`) until `wanted` kills landed,
/// then lets it finish and checks the sink against the oracle.
fn kill_repeatedly(job: &Job, wanted: usize, slowdown: u64) {
    let reader = job
        .s3
        .is_none()
        .then(|| PlainReader::start(job.out.clone()));
    let mut rng = Rng::from_env();
    let (mut files, mut kills, mut early, mut runs) = (0, 0, 0, 0);
    while kills < wanted {
        let committed = job.newest("commits");
        while files < committed.map_or(0, |n| n + 1) + BACKLOG {
            write_input_file(&job.input, files, &mut rng);
            if let Some(kafka) = &job.kafka {
                kafka.publish(&job.input.join(format!("{files:06}.json")));
            }
            files += 1;
        }
        runs += 1;
        assert!(
            runs <= 5 * wanted,
            "only {kills} of {runs} runs lived long enough to be killed"
        );
        let mut child = job.spawn();
        // Mostly mid-run; sometimes during startup and the re-run of an interrupted batch.
        let (least, spread) = [(1, 40), (40, 260), (40, 260), (40, 260)][rng.below(4) as usize];
        sleep(Duration::from_millis(
            (least + rng.below(spread)) * slowdown,
        ));
        match child.try_wait().expect("polling weir") {
            Some(status) => assert!(status.success(), "run {runs}: {status}\n{}", job.log_tail()),
            None => {
                child.kill().expect("sending SIGKILL");
                child.wait().expect("reaping the killed weir");
                kills += 1;
                early += usize::from(job.newest("commits") == committed);
            }
        }
    }
    job.expect_clean_exit(job.spawn(), Duration::from_secs(120), "the final run");
    eprintln!("{kills} kills ({early} before a batch committed) in {runs} runs over {files} files");
    if let Some(reader) = reader {
        let (reads, failures) = reader.stop();
        eprintln!("a plain reader read {reads} files while the runs were killed");
        assert!(
            failures.is_empty(),
            "a plain reader listing the output mid-write failed {} times; first: {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
        assert!(reads > 0, "the plain reader never read a file");
    }

    assert_sink_matches_oracle(job);
    let names = job.sink_file_names();
    let leftovers: Vec<_> = names.iter().filter(|n| n.starts_with(".part-")).collect();
    assert!(
        leftovers.is_empty(),
        "in-progress files left in the sink after recovery (hidden from readers, never removed): {leftovers:?}"
    );
    job.assert_every_planned_batch_committed();
    if job.kafka.is_none() {
        assert_eq!(
            job.newest("commits"),
            Some(files - 1),
            "one batch per input file"
        );
    }
}

/// Two `weir run` of one job started on one checkpoint, the second 50–750 ms after the first:
/// the second is refused at once with a message naming the first (or, if the first already
/// ended, runs what is left), and after a final run the sink holds every row exactly once.
#[test]
fn a_second_writer_on_a_checkpoint_is_refused_at_start_and_loses_nothing() {
    race_two_writers(6, 1, || Job::new("available-now", None, None));
}

/// The same with the output and the checkpoint in S3 (moto), where the checkpoint's lock is a
/// lease object.
#[test]
fn a_second_writer_on_an_s3_checkpoint_is_refused_at_start_and_loses_nothing() {
    let test = "a_second_writer_on_an_s3_checkpoint_is_refused_at_start_and_loses_nothing";
    let Some(endpoint) = services::s3(test) else {
        return;
    };
    race_two_writers(3, 3, || {
        let bucket = object_stores::create_bucket(&endpoint, "race");
        let s3 = S3Place {
            endpoint: endpoint.clone(),
            bucket,
        };
        Job::new("available-now", Some(s3), None)
    });
}

/// Races two writers `trials` times, the second started (50–750 ms) × `slowdown` after the
/// first, each trial on a new job.
fn race_two_writers(trials: usize, slowdown: u64, new_job: impl Fn() -> Job) {
    let mut rng = Rng::from_env();
    let mut refused = 0;
    for trial in 0..trials {
        let job = new_job();
        for index in 0..2 * BACKLOG {
            write_input_file(&job.input, index, &mut rng);
        }
        let first = job.spawn();
        sleep(Duration::from_millis((50 + rng.below(700)) * slowdown));
        let mut second = job.spawn();
        let status = job
            .poll(
                &mut second,
                Duration::from_secs(60),
                "the second writer's exit",
                || false,
            )
            .expect("the second writer ends");
        if !status.success() {
            refused += 1;
            let log = job.log_tail();
            assert!(
                log.contains("is in use by query 'out' (process ")
                    && log.contains("only one query may write a checkpoint"),
                "trial {trial}: the second writer failed for another reason\n{log}"
            );
        }
        job.expect_clean_exit(first, Duration::from_secs(120), "the first writer's run");
        job.expect_clean_exit(job.spawn(), Duration::from_secs(60), "the final run");
        assert_sink_matches_oracle(&job);
        job.assert_every_planned_batch_committed();
    }
    eprintln!("the second writer was refused in {refused} of {trials} trials");
    assert!(refused > 0, "no trial raced two writers");
}

#[test]
fn sigint_stops_gracefully_after_the_batch_in_flight() {
    let mut rng = Rng::from_env();
    // Spark accepts '200 milliseconds'; Weir's duration parser only '200ms'.
    let job = Job::new("200ms", None, None);
    for index in 0..3 {
        write_input_file(&job.input, index, &mut rng);
    }
    let mut child = job.spawn();
    job.wait_until(&mut child, "a first commit", || {
        job.newest("commits").is_some()
    });
    send_signal(&child, "INT");
    job.expect_clean_exit(child, Duration::from_secs(10), "SIGINT");
    job.assert_every_planned_batch_committed();

    let mut child = job.spawn();
    write_input_file(&job.input, 100, &mut rng);
    let new_ids = 100 * ROWS_PER_FILE..101 * ROWS_PER_FILE;
    let expected = new_ids.clone().filter(|id| id % 3 != 0).count();
    let dropped = Instant::now();
    job.wait_until(&mut child, "the dropped file's rows", || {
        let batches = sink_batches(&job.out);
        let ids = batches
            .iter()
            .flat_map(|b| b["id"].as_primitive::<Int64Type>().values().to_vec());
        ids.filter(|id| new_ids.contains(id)).count() >= expected
    });
    eprintln!(
        "a dropped file was processed {:?} after it appeared",
        dropped.elapsed()
    );
    send_signal(&child, "TERM");
    job.expect_clean_exit(child, Duration::from_secs(10), "SIGTERM");
    job.assert_every_planned_batch_committed();
    assert_sink_matches_oracle(&job);
}

/// A query's directories, its script and the log of its runs, in a temp dir; with `s3`, the
/// sink's output and the checkpoint are in a bucket instead (`out` and `ckpt` are then keys).
pub(crate) struct Job {
    pub(crate) root: TempDir,
    pub(crate) input: PathBuf,
    pub(crate) out: PathBuf,
    pub(crate) ckpt: PathBuf,
    pub(crate) s3: Option<S3Place>,
    /// When set, the query reads this topic; the input files are then only the oracle's.
    pub(crate) kafka: Option<KafkaPlace>,
}

/// A topic of two partitions on a Kafka-protocol broker.
pub(crate) struct KafkaPlace {
    brokers: String,
    topic: String,
}

impl KafkaPlace {
    fn create(brokers: String, topic: String) -> Self {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("a Kafka admin client");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let new = NewTopic::new(&topic, 2, TopicReplication::Fixed(1));
        let created = runtime
            .block_on(admin.create_topics([&new], &AdminOptions::new()))
            .expect("creating the topic");
        assert!(created.iter().all(Result::is_ok), "{created:?}");
        Self { brokers, topic }
    }

    /// Produces each line of `file` as a message, alternating partitions. The last message of
    /// each partition goes alone after a flush: tansu 0.6 reports a partition's end as the
    /// first offset of its newest record batch plus one.
    fn publish(&self, file: &Path) {
        let text = fs::read_to_string(file).expect("reading an input file");
        let lines: Vec<&str> = text.lines().collect();
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("linger.ms", "5")
            .create()
            .expect("a Kafka producer");
        let last_alone = lines.len().saturating_sub(2);
        for (i, line) in lines.iter().enumerate() {
            if i == last_alone {
                producer.flush(Duration::from_secs(30)).expect("flushing");
            }
            let record = BaseRecord::<(), str>::to(&self.topic)
                .payload(*line)
                .partition(i as i32 % 2);
            producer
                .send(record)
                .map_err(|(e, _)| e)
                .expect("producing");
            if i >= last_alone {
                producer.flush(Duration::from_secs(30)).expect("flushing");
            }
        }
    }
}

/// A bucket on an S3-compatible server.
pub(crate) struct S3Place {
    pub(crate) endpoint: String,
    pub(crate) bucket: String,
}

impl S3Place {
    /// The directory `dir` of the bucket, and a runtime to drive its async calls.
    fn dir(&self, dir: &Path) -> (tokio::runtime::Runtime, StoreLocation) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let url = format!("s3://{}/{}", self.bucket, dir.display());
        let store = object_stores::storage(&self.endpoint);
        let location = StoreLocation::open(&url, &store, false).expect("opening the bucket");
        (runtime, location)
    }
}

impl Job {
    fn new(trigger: &str, s3: Option<S3Place>, kafka: Option<KafkaPlace>) -> Self {
        let root = tempfile::tempdir().expect("creating a temp dir");
        let input = root.path().join("input");
        fs::create_dir(&input).expect("creating the input dir");
        let (out, ckpt, storage) = match &s3 {
            None => (
                root.path().join("out"),
                root.path().join("ckpt"),
                String::new(),
            ),
            Some(place) => (
                PathBuf::from("out"),
                PathBuf::from("ckpt"),
                format!(", {}", object_stores::s3_options(&place.endpoint)),
            ),
        };
        let url = |dir: &Path| match &s3 {
            None => dir.display().to_string(),
            Some(place) => format!("s3://{}/{}", place.bucket, dir.display()),
        };
        let (i, o, c) = (input.display(), url(&out), url(&ckpt));
        let source = match &kafka {
            None => format!("connector = 'files', path = '{i}', max_files_per_trigger = '1'"),
            Some(k) => format!(
                "connector = 'kafka', brokers = '{}', topic = '{}', starting_offsets = \
                 'earliest', max_records_per_trigger = '{ROWS_PER_FILE}'",
                k.brokers, k.topic
            ),
        };
        let script = format!(
            "CREATE SOURCE events (id BIGINT, name VARCHAR, amount DOUBLE) WITH ({source}, \
             format = 'json');\n\
             CREATE SINK out WITH (connector = 'parquet', path = '{o}', checkpoint = '{c}', \
             trigger = '{trigger}'{storage}) AS\n{SELECT};\n"
        );
        fs::write(root.path().join("job.sql"), script).expect("writing the script");
        Self {
            root,
            input,
            out,
            ckpt,
            s3,
            kafka,
        }
    }

    /// The names of the files in directory `dir` of the job (local or in the bucket).
    fn names_in(&self, dir: &Path) -> Vec<String> {
        match &self.s3 {
            None => file_names(dir),
            Some(place) => {
                let (runtime, location) = place.dir(dir);
                let files = runtime
                    .block_on(location.list())
                    .expect("listing the bucket");
                files.into_iter().map(|f| f.name).collect()
            }
        }
    }

    fn sink_file_names(&self) -> Vec<String> {
        self.names_in(&self.out)
    }

    /// Every row batch of the sink's visible parquet files.
    fn sink(&self) -> Vec<RecordBatch> {
        let Some(place) = &self.s3 else {
            return sink_batches(&self.out);
        };
        let (runtime, location) = place.dir(&self.out);
        let mut batches = Vec::new();
        for name in self.sink_file_names() {
            if name.starts_with(['_', '.']) || !name.ends_with(".parquet") {
                continue;
            }
            let bytes = runtime
                .block_on(location.get(&name))
                .expect("reading the bucket");
            let bytes = bytes.expect("a listed file is there");
            let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).and_then(|b| b.build());
            let reader = reader.unwrap_or_else(|e| panic!("{name}: bad parquet: {e}"));
            batches.extend(reader.map(|b| b.expect("decoding a sink file")));
        }
        batches
    }

    /// Starts `weir run job.sql`, appending its output to a log file (a pipe nobody reads
    /// could fill up and block it).
    pub(crate) fn spawn(&self) -> Child {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.root.path().join("weir.log"));
        let log = log.expect("opening the log");
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .arg("run")
            .arg(self.root.path().join("job.sql"))
            .env("WEIR_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .expect("starting weir")
    }

    /// Polls until `done` holds (`None`) or `child` exits (`Some`); kills it and fails the
    /// test after `timeout`.
    fn poll(
        &self,
        child: &mut Child,
        timeout: Duration,
        what: &str,
        done: impl Fn() -> bool,
    ) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while !done() {
            if let Some(status) = child.try_wait().expect("polling weir") {
                return Some(status);
            }
            if Instant::now() > deadline {
                child.kill().ok();
                child.wait().ok();
                panic!("no {what} within {timeout:?}\n{}", self.log_tail());
            }
            sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits up to 15 s for `done` while `child` runs.
    fn wait_until(&self, child: &mut Child, what: &str, done: impl Fn() -> bool) {
        if let Some(status) = self.poll(child, Duration::from_secs(15), what, done) {
            panic!("weir exited ({status}) before {what}\n{}", self.log_tail());
        }
    }

    pub(crate) fn expect_clean_exit(&self, mut child: Child, timeout: Duration, after: &str) {
        let status = self.poll(&mut child, timeout, &format!("exit after {after}"), || {
            false
        });
        let ok = status.is_some_and(|s| s.success());
        assert!(
            ok,
            "weir must exit with 0 after {after}, got {status:?}\n{}",
            self.log_tail()
        );
    }

    pub(crate) fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.root.path().join("weir.log")).unwrap_or_default();
        let start = log.char_indices().rev().nth(4000).map_or(0, |(i, _)| i);
        format!("--- weir output (tail) ---\n{}", &log[start..])
    }

    /// The batch ids in the checkpoint's `offsets` or `commits` log.
    fn entries(&self, log: &str) -> BTreeSet<u64> {
        let names = self.names_in(&self.ckpt.join(log));
        names
            .iter()
            .filter_map(|n| n.strip_suffix(".json")?.parse().ok())
            .collect()
    }

    pub(crate) fn newest(&self, log: &str) -> Option<u64> {
        self.entries(log).last().copied()
    }

    /// Every `offsets/N` has its `commits/N` (commits of purged offsets may outlive them).
    pub(crate) fn assert_every_planned_batch_committed(&self) {
        let (offsets, commits) = (self.entries("offsets"), self.entries("commits"));
        let pending: Vec<_> = offsets.difference(&commits).collect();
        assert!(
            pending.is_empty(),
            "batches planned but never committed: {pending:?}"
        );
    }
}

/// Writes input file `index` (ids `index * ROWS_PER_FILE ..`) under a hidden name first, so
/// the source never reads half of it, with an mtime that orders it after the files before it.
fn write_input_file(dir: &Path, index: u64, rng: &mut Rng) {
    let mut text = String::new();
    let first = index as i64 * ROWS_PER_FILE;
    for id in first..first + ROWS_PER_FILE {
        let name = NAMES.get(rng.below(NAMES.len() as u64 + 1) as usize); // sometimes null
        let amount = (rng.below(20) != 0).then(|| rng.below(40) as f64 * 0.5);
        text += &serde_json::json!({"id": id, "name": name, "amount": amount}).to_string();
        text.push('\n');
    }
    let hidden = dir.join(format!(".{index:06}.tmp"));
    fs::write(&hidden, text).expect("writing an input file");
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + index);
    let file = File::options().write(true).open(&hidden);
    file.and_then(|f| f.set_modified(mtime))
        .expect("setting an input file's mtime");
    fs::rename(&hidden, dir.join(format!("{index:06}.json"))).expect("publishing an input file");
}

/// Asserts the sink holds exactly the oracle's rows: none lost, none duplicated.
fn assert_sink_matches_oracle(job: &Job) {
    let (mut actual, mut expected) = (rows_of(&job.sink()), oracle_rows(&job.input));
    actual.sort();
    expected.sort();
    if actual == expected {
        return;
    }
    let mut surplus = BTreeMap::<&String, i64>::new();
    for (rows, sign) in [(&expected, -1), (&actual, 1)] {
        rows.iter()
            .for_each(|r| *surplus.entry(r).or_default() += sign);
    }
    let (missing, extra): (Vec<_>, Vec<_>) = surplus
        .into_iter()
        .filter(|(_, n)| *n != 0)
        .partition(|(_, n)| *n < 0);
    panic!(
        "the sink has {} rows, the oracle {}: {} missing (first: {:?}), {} extra or duplicated \
         (first, with surplus: {:?})\n{}",
        actual.len(),
        expected.len(),
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)],
        job.log_tail()
    );
}

/// A reader of the sink's directory in a loop while the test runs, as `pyarrow.dataset(dir)`
/// reads it: every file whose name does not start with `_` or `.`, whatever its extension,
/// read whole as Parquet. It must never fail: a file it lists is whole. (A file can vanish
/// between the listing and the read, when a restart removes the output of a batch that was
/// not committed; pyarrow would fail on that too, but it loses nothing, so it is not counted.)
struct PlainReader {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u64, Vec<String>)>,
}

impl PlainReader {
    fn start(dir: PathBuf) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let (mut reads, mut failures) = (0u64, Vec::new());
            while !stopped.load(Ordering::Relaxed) {
                for name in file_names(&dir)
                    .iter()
                    .filter(|n| !n.starts_with(['_', '.']))
                {
                    let file = match File::open(dir.join(name)) {
                        Ok(file) => file,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => {
                            failures.push(format!("{name}: {e}"));
                            continue;
                        }
                    };
                    let rows = ParquetRecordBatchReaderBuilder::try_new(file)
                        .and_then(|b| b.build())
                        .map_err(|e| e.to_string())
                        .and_then(|reader| {
                            reader
                                .map(|b| b.map(|b| b.num_rows()))
                                .sum::<Result<usize, _>>()
                                .map_err(|e| e.to_string())
                        });
                    match rows {
                        Ok(_) => reads += 1,
                        Err(e) => failures.push(format!("{name}: {e}")),
                    }
                }
                sleep(Duration::from_millis(2));
            }
            (reads, failures)
        });
        Self { stop, thread }
    }

    /// Stops the reader: the files it read whole, and its failures.
    fn stop(self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the plain reader panicked")
    }
}

/// Every batch of every `*.parquet` file below `dir`, read with the `parquet` crate as an
/// outside reader would, skipping entries whose names start with `_` or `.`.
pub(crate) fn sink_batches(dir: &Path) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for name in file_names(dir)
        .iter()
        .filter(|n| !n.starts_with(['_', '.']))
    {
        let path = dir.join(name);
        if path.is_dir() {
            batches.extend(sink_batches(&path));
        } else if name.ends_with(".parquet") {
            let file = File::open(&path).expect("opening a sink file");
            let reader = ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build());
            let reader = reader.unwrap_or_else(|e| panic!("{}: bad parquet: {e}", path.display()));
            batches.extend(reader.map(|b| b.expect("decoding a sink file")));
        }
    }
    batches
}

/// The query's result as DataFusion computes it in one batch over all the input files.
fn oracle_rows(input: &Path) -> Vec<String> {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
    ]);
    oracle_over_json(input, &schema, SELECT)
}

/// `sql` run by DataFusion as one batch query over the JSON files in `input`, read with
/// `schema` as table `events`.
pub(crate) fn oracle_over_json(input: &Path, schema: &Schema, sql: &str) -> Vec<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().build();
    let batches = runtime.expect("a runtime").block_on(async {
        let ctx = SessionContext::new();
        let options = JsonReadOptions::default()
            .schema(schema)
            .file_extension(".json");
        let dir = input.to_str().expect("a UTF-8 input path");
        ctx.register_json("events", dir, options)
            .await
            .expect("registering the input");
        let frame = ctx.sql(sql).await.expect("planning the oracle");
        frame.collect().await.expect("running the oracle")
    });
    rows_of(&batches)
}

/// Each row as `column=value, ...`, so rows compare across physical types (Utf8/Utf8View).
pub(crate) fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        let cells = |c| ArrayFormatter::try_new(c, &options).expect("a displayable column");
        let columns: Vec<_> = batch.columns().iter().map(|c| cells(c)).collect();
        for row in 0..batch.num_rows() {
            let named = schema.fields().iter().zip(&columns);
            let row = named.map(|(f, c)| format!("{}={}", f.name(), c.value(row)));
            rows.push(row.collect::<Vec<_>>().join(", "));
        }
    }
    rows
}

pub(crate) fn file_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let names = entries.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()));
    names
        .collect::<Result<_, _>>()
        .expect("listing a directory")
}

fn send_signal(child: &Child, signal: &str) {
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status();
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "kill -{signal} {pid}: {status:?}"
    );
}

/// SplitMix64: a tiny seeded generator, so a failing run replays with the same inputs and
/// kill delays.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_env() -> Self {
        let seed = std::env::var("WEIR_CRASH_SEED").ok();
        let seed = seed.map_or(0x5eed, |s| s.parse().expect("WEIR_CRASH_SEED is a u64"));
        eprintln!("WEIR_CRASH_SEED={seed}");
        Self(seed)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}
