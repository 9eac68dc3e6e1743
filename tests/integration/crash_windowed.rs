//! Crash safety of the stateful operators in the real `weir` binary: a windowed aggregation,
//! stream-stream left outer and inner joins, an aggregation over a join, `SELECT DISTINCT`,
//! keep-first deduplication, deduplication within the watermark and a window Top-N.
//!
//! `sigkill_during_a_windowed_aggregation_keeps_every_window_exactly_once` runs a tumbling
//! window `GROUP BY` in append mode (`flush_on_end`, available-now) over many one-file batches
//! and kills `weir run` with SIGKILL at seeded random moments, at least [`KILLS`] times while
//! input remains and up to four times near its end (aimed at the last file's batch, the batch
//! the watermark alone triggers and the flush that closes every window). Each restart must load
//! the aggregation state of the last committed batch and re-run an uncommitted one with the
//! same watermark. The sink, read with the plain `parquet` crate, must then hold every
//! (window, name) row exactly once with the counts, sums and distinct counts DataFusion computes in one batch
//! query over all the input: a window emitted twice, lost or with wrong totals fails.
//!
//! The join and dedup tests run the same way over the same input: a left outer self-join
//! (each row with the next id of its name within 5 s, or its null-padded row, emitted when the
//! watermark evicts it), the inner join of the same, each distinct (name, amount), each
//! (name, amount)'s earliest row, each message sent twice once, and each window's three
//! largest amounts; every output row exactly once.
//!
//! Input event times move forward file by file and never fall further behind than the
//! watermark delay allows: no row is ever late, so the oracle needs no watermark.
//!
//! Set `WEIR_CRASH_SEED` to replay a run with the seed it printed.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use crate::crash::{Job, Rng, file_names, oracle_over_json, rows_of, sink_batches};

/// The query under test. Its two distinct counts of `amount` share one pair set.
const SELECT: &str = "SELECT window_start, window_end, name, count(*) AS n, sum(amount) AS \
                      total, count(DISTINCT amount) FILTER (WHERE id % 3 = 0) AS kinds, \
                      count(DISTINCT amount) AS all_kinds FROM TUMBLE(events, ts, INTERVAL '10' SECOND) GROUP BY window_start, \
                      window_end, name";
/// The same windows as DataFusion computes them in one batch query.
const ORACLE: &str = "SELECT date_bin(INTERVAL '10' SECOND, ts, TIMESTAMP '1970-01-01T00:00:00') \
                      AS window_start, date_bin(INTERVAL '10' SECOND, ts, \
                      TIMESTAMP '1970-01-01T00:00:00') + INTERVAL '10' SECOND AS window_end, \
                      name, count(*) AS n, sum(amount) AS total, \
                      count(DISTINCT amount) FILTER (WHERE id % 3 = 0) AS kinds, \
                      count(DISTINCT amount) AS all_kinds FROM events \
                      GROUP BY 1, 2, 3";
/// SIGKILLs that must land on a running process while input remains.
const KILLS: usize = 24;
/// Input files not yet committed, topped up before each start so kills land mid-run.
const BACKLOG: u64 = 30;
const MIN_FILES: u64 = 48;
const ROWS_PER_FILE: u64 = 300;
const NAMES: [&str; 3] = ["alice", "bob", "carol"];
/// File `k` holds event times in `[k * STRIDE_MS, k * STRIDE_MS + SPAN_MS)` after
/// 2024-01-01T00:00:00 (a window boundary), in random order. INVARIANT: `SPAN_MS` ≤ the
/// 5 s watermark delay, so the watermark in force for file `k` (at most the max event time
/// of files before it, minus 5 s) stays below `k * STRIDE_MS`: no row of file `k` is late,
/// whatever batch reads it, and no row is more than 5 s behind the max seen before it.
const STRIDE_MS: u64 = 4_000;
const SPAN_MS: u64 = 5_000;

#[test]
fn sigkill_during_a_windowed_aggregation_keeps_every_window_exactly_once() {
    let (files, expected) = kill_and_compare(SELECT, ORACLE, "aggregate-0", |row| {
        row.split_once(", n=")
            .map_or(row.to_string(), |(k, _)| k.to_string())
    });
    let counted: u64 = expected.iter().map(|row| count_of(row)).sum();
    assert_eq!(
        counted,
        files * ROWS_PER_FILE,
        "the oracle must count every input row once"
    );
}

/// Each row with the next id of its name within 5 s, or null: the left rows are evicted (and
/// the unmatched padded) by the watermark, so kills land on evictions and null rows too.
const OUTER_JOIN: &str = "SELECT a.id, a.name, a.ts, b.id AS next FROM events AS a LEFT JOIN \
                          events AS b ON a.name = b.name AND b.id = a.id + 1 AND \
                          b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND a.ts + INTERVAL '5' SECOND";

#[test]
fn sigkill_during_a_stream_stream_outer_join_keeps_every_row_exactly_once() {
    let (files, expected) = kill_and_compare(OUTER_JOIN, OUTER_JOIN, "join-0.left", |row| {
        row.split_once(", ")
            .map_or(row.to_string(), |(k, _)| k.to_string())
    });
    assert_eq!(
        expected.len() as u64,
        files * ROWS_PER_FILE,
        "one row per left row"
    );
}

/// Each (name, amount)'s earliest time: emitted when the watermark reaches it.
const KEEP_FIRST: &str = "SELECT name, amount, ts FROM (SELECT *, row_number() OVER \
                          (PARTITION BY name, amount ORDER BY ts) AS rn FROM events) WHERE rn = 1";

#[test]
fn sigkill_during_deduplication_keeps_every_first_row_exactly_once() {
    let (_, expected) = kill_and_compare(KEEP_FIRST, KEEP_FIRST, "dedup-0", |row| {
        row.rsplit_once(", ts=")
            .map_or(row.to_string(), |(k, _)| k.to_string())
    });
    assert!(expected.len() > 100, "{} keys", expected.len());
}

/// Each 10-second window's three largest amounts (ties by id), emitted when it closes.
const WINDOW_TOP_3: &str = "SELECT window_start, id, amount, rn FROM (SELECT *, row_number() \
                            OVER (PARTITION BY window_start, window_end ORDER BY amount DESC, id) \
                            AS rn FROM TUMBLE(events, ts, INTERVAL '10' SECOND)) WHERE rn <= 3";
const WINDOW_TOP_3_ORACLE: &str = "SELECT window_start, id, amount, rn FROM (SELECT *, \
    date_bin(INTERVAL '10' SECOND, ts, TIMESTAMP '1970-01-01T00:00:00') AS window_start, \
    row_number() OVER (PARTITION BY date_bin(INTERVAL '10' SECOND, ts, \
    TIMESTAMP '1970-01-01T00:00:00') ORDER BY amount DESC, id) AS rn FROM events) WHERE rn <= 3";

#[test]
fn sigkill_during_a_window_top_n_keeps_every_ranking_exactly_once() {
    let (_, expected) = kill_and_compare(WINDOW_TOP_3, WINDOW_TOP_3_ORACLE, "top-n-0", |row| {
        row.to_string()
    });
    assert!(expected.len() > 30, "{} rows", expected.len());
}

/// Each row with the next id of its name within 5 s (an inner join: a row without one is
/// never emitted); the left rows leave state with the watermark.
const INNER_JOIN: &str = "SELECT a.id, a.name, b.id AS next FROM events AS a JOIN events AS b \
                          ON a.name = b.name AND b.id = a.id + 1 AND \
                          b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND a.ts + INTERVAL '5' SECOND";

#[test]
fn sigkill_during_a_stream_stream_inner_join_keeps_every_row_exactly_once() {
    let (files, expected) = kill_and_compare(INNER_JOIN, INNER_JOIN, "join-0.left", |row| {
        row.split_once(", ")
            .map_or(row.to_string(), |(k, _)| k.to_string())
    });
    let rows = expected.len() as u64;
    assert!(
        rows > files * ROWS_PER_FILE / 5 && rows < files * ROWS_PER_FILE / 2,
        "about a third of the rows have a next id of their name: {rows}"
    );
}

/// Chained operators: the matches of each row among the next three ids of its name within
/// 5 s (a join), counted per row by an aggregation keyed by the row's event time, which
/// closes when the join's watermark (5.001 s behind the query's) passes it. This checks
/// exactly-once output of chained operators across kills; the lag itself is exercised by
/// `chained_operators` (this input joins no row behind the watermark, and passes without it).
const COUNT_OVER_JOIN: &str = "SELECT a.id, a.ts, count(*) AS matches FROM events AS a JOIN \
                               events AS b ON a.name = b.name AND b.id BETWEEN a.id + 1 AND \
                               a.id + 3 AND b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND \
                               a.ts + INTERVAL '5' SECOND GROUP BY a.id, a.ts";

#[test]
fn sigkill_during_an_aggregation_over_a_join_keeps_every_group_exactly_once() {
    let (_, expected) = kill_and_compare(COUNT_OVER_JOIN, COUNT_OVER_JOIN, "aggregate-0", |row| {
        row.split_once(", ")
            .map_or(row.to_string(), |(k, _)| k.to_string())
    });
    assert!(
        expected.len() > 1000,
        "{} rows with a match",
        expected.len()
    );
}

/// Each (name, amount) once, as it first arrives (Spark's dropDuplicates: kept forever).
const DISTINCT: &str = "SELECT DISTINCT name, amount FROM events";

#[test]
fn sigkill_during_select_distinct_keeps_every_key_exactly_once() {
    let (_, expected) = kill_and_compare(DISTINCT, DISTINCT, "dedup-0", |row| row.to_string());
    assert!(expected.len() > 250, "{} keys", expected.len());
}

/// Each message once, though a producer sent it twice (see [`write_input_file`]'s `msg`):
/// the copy in the later file arrives while the first is in state, which the watermark then
/// empties.
const WITHIN_WATERMARK: &str = "SELECT msg FROM DROP_DUPLICATES_WITHIN_WATERMARK(events, msg)";

#[test]
fn sigkill_during_dedup_within_the_watermark_keeps_every_message_exactly_once() {
    let (files, expected) = kill_and_compare(
        WITHIN_WATERMARK,
        "SELECT DISTINCT msg FROM events",
        "dedup-0",
        |row| row.to_string(),
    );
    assert_eq!(expected.len() as u64, files.div_ceil(2) * ROWS_PER_FILE);
}

/// Runs `select` under repeated SIGKILLs (see the module docs) and compares the sink with
/// `oracle` run by DataFusion over all the input, rows matched by `key`; `state` names the
/// state directory whose files are checked. Returns the input files and the oracle's rows.
fn kill_and_compare(
    select: &str,
    oracle: &str,
    state: &str,
    key: fn(&str) -> String,
) -> (u64, Vec<String>) {
    let started = Instant::now();
    let mut rng = Rng::from_env();
    let job = stateful_job(select);
    let (mut files, mut kills, mut early, mut runs) = (0, 0, 0, 0);
    while kills < KILLS {
        let committed = job.newest("commits");
        let done = committed.map_or(0, |n| n + 1);
        while files < done + BACKLOG {
            write_input_file(&job.input, files, &mut rng);
            files += 1;
        }
        runs += 1;
        let mut child = job.spawn();
        // Mostly mid-run; sometimes during startup and the re-run of an interrupted batch.
        let (least, spread) = [(1, 40), (40, 260), (40, 260), (40, 260)][rng.below(4) as usize];
        let kill_at = Instant::now() + Duration::from_millis(least + rng.below(spread));
        // A run that drained its input would flush every window (the watermark jumps to the
        // end of time) and the files added after it would all be late: stop it well before.
        let cap = done + BACKLOG / 2;
        while Instant::now() < kill_at && job.newest("commits").is_none_or(|n| n < cap) {
            if let Some(status) = child.try_wait().expect("polling weir") {
                panic!(
                    "run {runs} ended ({status}) before its kill with {files} files published, \
                     batch {committed:?} committed before it\n{}",
                    job.log_tail()
                );
            }
            sleep(Duration::from_millis(2));
        }
        child.kill().expect("sending SIGKILL");
        child.wait().expect("reaping the killed weir");
        kills += 1;
        early += usize::from(job.newest("commits") == committed);
    }
    while files < MIN_FILES {
        write_input_file(&job.input, files, &mut rng);
        files += 1;
    }

    // No file is added from here on, so runs may now reach the end of the input. Aim a kill
    // at each of the last batches, soon after it is planned: the last file's, the one the
    // watermark alone triggers to close the windows it passed, and the flush of every
    // remaining window; first one at random.
    let mut end_kills = Vec::new();
    let last = files - 1;
    for target in [last - 1 + rng.below(4), last, last + 1, last + 2] {
        if job.newest("commits").is_some_and(|n| n >= target) {
            continue;
        }
        runs += 1;
        let mut child = job.spawn();
        let exited = loop {
            if job.newest("offsets").is_some_and(|n| n >= target) {
                sleep(Duration::from_millis(rng.below(20)));
                break child.try_wait().expect("polling weir");
            }
            if let Some(status) = child.try_wait().expect("polling weir") {
                break Some(status);
            }
            sleep(Duration::from_millis(1));
        };
        match exited {
            Some(status) => assert!(status.success(), "run {runs}: {status}\n{}", job.log_tail()),
            None => {
                child.kill().expect("sending SIGKILL");
                child.wait().expect("reaping the killed weir");
                let (planned, committed) = (job.newest("offsets"), job.newest("commits"));
                end_kills.push(format!("{target}: {planned:?}/{committed:?}"));
            }
        }
    }
    job.expect_clean_exit(job.spawn(), Duration::from_secs(120), "the final run");
    eprintln!(
        "{kills} kills ({early} before a batch committed), {} near the end (newest offsets/commit \
         after each, by target batch: {end_kills:?}) in {runs} runs over {files} files, {:?}",
        end_kills.len(),
        started.elapsed()
    );

    let sink = sorted(rows_of(&sink_batches(&job.out)));
    let expected = sorted(oracle_rows(&job.input, oracle));
    if let Some(mismatch) = mismatch(&sink, &expected, key) {
        let log = job.log_tail();
        let kept = job.root.keep();
        panic!(
            "{mismatch}\n{log}\n(kept the job's directory for a look: {})",
            kept.display()
        );
    }

    let newest = job.newest("commits");
    job.expect_clean_exit(
        job.spawn(),
        Duration::from_secs(60),
        "a run with no new input",
    );
    assert_eq!(
        job.newest("commits"),
        newest,
        "a restart after the end of the input ran a batch"
    );
    assert!(
        sorted(rows_of(&sink_batches(&job.out))) == sink,
        "a restart after the end of the input changed the sink"
    );
    let leftovers = hidden_part_files(&job.out);
    assert!(
        leftovers.is_empty(),
        "in-progress files left in the sink after recovery (hidden from readers, never \
         removed): {leftovers:?}"
    );
    job.assert_every_planned_batch_committed();
    let newest = newest.expect("at least one commit");
    assert!(
        newest + 1 >= files,
        "{files} one-file batches, but only batches up to {newest} committed"
    );
    let state = job.ckpt.join(format!("state/{state}/0"));
    let state_files = file_names(&state);
    assert!(
        state_files.contains(&format!("{newest}.delta"))
            && state_files.iter().any(|f| f.ends_with(".snapshot")),
        "no state delta for the newest committed batch {newest}, or no snapshot, in {}: {state_files:?}",
        state.display()
    );
    (files, expected)
}

/// `select` over `events`, run by the [`Job`] helpers of `crash`.
fn stateful_job(select: &str) -> Job {
    let root = tempfile::tempdir().expect("creating a temp dir");
    let [input, out, ckpt] = ["input", "out", "ckpt"].map(|d| root.path().join(d));
    fs::create_dir(&input).expect("creating the input dir");
    let [i, o, c] = [&input, &out, &ckpt].map(|p| p.display().to_string());
    let script = format!(
        "CREATE SOURCE events (id BIGINT, name VARCHAR, amount BIGINT, ts TIMESTAMP, msg BIGINT, \
         WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH (connector = 'files', path = '{i}', \
         format = 'json', max_files_per_trigger = '1');\n\
         CREATE SINK out WITH (connector = 'parquet', path = '{o}', checkpoint = '{c}', \
         trigger = 'available-now', output_mode = 'append', flush_on_end = 'true') AS\n\
         {select};\n"
    );
    fs::write(root.path().join("job.sql"), script).expect("writing the script");
    Job {
        root,
        input,
        out,
        ckpt,
        s3: None,
        kafka: None,
    }
}

/// Writes input file `index` (see [`STRIDE_MS`]) under a hidden name first, so the source
/// never reads half of it, with an mtime that orders it after the files before it.
fn write_input_file(dir: &Path, index: u64, rng: &mut Rng) {
    let mut text = String::new();
    for row in 0..ROWS_PER_FILE {
        let id = index * ROWS_PER_FILE + row;
        let name = NAMES[rng.below(NAMES.len() as u64) as usize];
        let amount = (rng.below(20) != 0).then(|| rng.below(100));
        let ms = index * STRIDE_MS + rng.below(SPAN_MS);
        assert!(ms < 86_400_000, "input past its first day");
        let (s, ms) = (ms / 1000, ms % 1000);
        let ts = format!(
            "2024-01-01T{:02}:{:02}:{:02}.{ms:03}",
            s / 3600,
            s / 60 % 60,
            s % 60
        );
        // A message id a producer sent twice: line `row` of files 2m and 2m + 1, at most 9 s
        // apart, within the 5 s watermark delay of each other's expiry (Spark's
        // `expiresAt` = event time + delay, reached when the max event time is 10 s on).
        let msg = index / 2 * ROWS_PER_FILE + row;
        let row =
            serde_json::json!({"id": id, "name": name, "amount": amount, "ts": ts, "msg": msg});
        text += &row.to_string();
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

/// What is wrong with `sink` (rows as [`rows_of`] formats them) if it does not hold each of
/// the `expected` rows exactly once, rows matched by `key`.
fn mismatch(sink: &[String], expected: &[String], key: fn(&str) -> String) -> Option<String> {
    let mut by_key = BTreeMap::<String, Vec<&String>>::new();
    sink.iter()
        .for_each(|r| by_key.entry(key(r)).or_default().push(r));
    let duplicated: Vec<_> = by_key
        .values()
        .filter(|rows| rows.len() > 1)
        .cloned()
        .collect();
    let (mut missing, mut wrong) = (Vec::new(), Vec::new());
    for row in expected {
        match by_key.remove(&key(row)) {
            None => missing.push(row),
            Some(rows) if rows.iter().any(|r| *r != row) => wrong.push((row, rows)),
            Some(_) => {}
        }
    }
    let unexpected: Vec<_> = by_key.into_values().collect();
    if [
        duplicated.len(),
        missing.len(),
        wrong.len(),
        unexpected.len(),
    ] == [0; 4]
    {
        return None;
    }
    Some(format!(
        "the sink has {} rows, the oracle {}: {} rows emitted more than once \
         (first: {:?}), {} missing (first: {:?}), {} with other values (first, expected then \
         found: {:?}), {} not in the oracle (first: {:?})",
        sink.len(),
        expected.len(),
        duplicated.len(),
        &duplicated[..duplicated.len().min(5)],
        missing.len(),
        &missing[..missing.len().min(5)],
        wrong.len(),
        &wrong[..wrong.len().min(5)],
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)],
    ))
}

/// What DataFusion computes for `sql` in one batch query over all the input files.
fn oracle_rows(input: &Path, sql: &str) -> Vec<String> {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Int64, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
        Field::new("msg", DataType::Int64, true),
    ]);
    oracle_over_json(input, &schema, sql)
}

/// The `n` of a row as [`rows_of`] formats it.
fn count_of(row: &str) -> u64 {
    let n = row
        .split_once(", n=")
        .and_then(|(_, rest)| rest.split(',').next());
    n.and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {row}"))
}

fn sorted(mut rows: Vec<String>) -> Vec<String> {
    rows.sort();
    rows
}

/// Paths of `.part-*` files anywhere below `dir`.
fn hidden_part_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for name in file_names(dir) {
        let path = dir.join(&name);
        if path.is_dir() {
            found.extend(hidden_part_files(&path));
        } else if name.starts_with(".part-") {
            found.push(path);
        }
    }
    found
}
