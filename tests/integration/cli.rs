//! The `weir` binary: `weir run -e`, script output, console sink, and errors with exit codes.

use std::process::{Command, Output};

fn weir(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .env("WEIR_LOG", "warn")
        .output()
        .expect("run weir")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

#[test]
fn run_e_creates_objects_runs_queries_and_prints_console_batches() {
    let output = weir(&[
        "run",
        "-e",
        "CREATE SOURCE s (a INT, tag VARCHAR) WITH (connector = 'memory', max_records_per_trigger = '2');\
         INSERT INTO s VALUES (1, 'x'), (2, 'y'), (3, 'z');\
         CREATE SINK doubled WITH (connector = 'console', trigger = 'available-now') AS SELECT a * 2 AS b, upper(tag) AS t FROM s;",
    ]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let rule = "-".repeat(43);
    let expected = format!(
        "{rule}\ndoubled: batch 0\n{rule}\n+---+---+\n| b | t |\n+---+---+\n| 2 | X |\n| 4 | Y |\n+---+---+\n\
         {rule}\ndoubled: batch 1\n{rule}\n+---+---+\n| b | t |\n+---+---+\n| 6 | Z |\n+---+---+\n"
    );
    assert_eq!(stdout, expected);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("created source s") && stderr.contains("inserted 3 rows into s"),
        "{stderr}"
    );
    assert!(
        stderr.contains("started query doubled") && stderr.contains("query doubled ended"),
        "{stderr}"
    );
}

#[test]
fn a_join_of_two_streams_without_a_bound_runs_and_warns_that_its_state_grows() {
    let output = weir(&[
        "run",
        "-e",
        "CREATE SOURCE a (k INT, x VARCHAR) WITH (connector = 'memory');\
         CREATE SOURCE b (k INT, y VARCHAR) WITH (connector = 'memory');\
         INSERT INTO a VALUES (1, 'a1'), (2, 'a2');\
         INSERT INTO b VALUES (2, 'b2'), (2, 'b2x'), (3, 'b3');\
         CREATE SINK pairs WITH (connector = 'console', trigger = 'available-now') AS \
         SELECT a.k, x, y FROM a JOIN b ON a.k = b.k;",
    ]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("| 2 | a2 | b2  |") && stdout.contains("| 2 | a2 | b2x |"),
        "{stdout}"
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(
            "join-0 keeps every row of its left and right sides in state forever (no watermark \
             bound evicts them)"
        ),
        "{stderr}"
    );
}

#[test]
fn a_script_file_with_an_ad_hoc_query_prints_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.csv"), "id,name\n1,one\n2,two\n").unwrap();
    let script = dir.path().join("job.sql");
    std::fs::write(
        &script,
        format!(
            "-- a static table and a query over it\nCREATE TABLE t WITH (connector = 'files', path = '{}', format = 'csv');\nSELECT name FROM t WHERE id = 2;\n",
            dir.path().join("t.csv").display()
        ),
    )
    .unwrap();
    let output = weir(&["run", script.to_str().unwrap()]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "+------+\n| name |\n+------+\n| two  |\n+------+\n"
    );
}

#[test]
fn errors_exit_1_with_a_message_naming_the_problem() {
    let output = weir(&[
        "run",
        "-e",
        "CREATE SOURCE s (a INT) WITH (connector = 'memory'); CREATE SINK o WITH (connector = 'memory') AS SELECT a FROM s ORDER BY a;",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("error: query cannot run as a streaming query: ORDER BY over stream 's'"),
        "{stderr}"
    );

    let output = weir(&["run", "/no/such/job.sql"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("error: cannot read /no/such/job.sql"),
        "{}",
        text(&output.stderr)
    );

    let output = weir(&[
        "run",
        "-e",
        "CREATE SOURCE s (a INT WITH (connector = 'memory')",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).starts_with("error: syntax error: "),
        "{}",
        text(&output.stderr)
    );

    // A parquet sink without a checkpoint is refused before anything runs.
    let output = weir(&[
        "run",
        "-e",
        "CREATE SOURCE s (a INT) WITH (connector = 'memory'); CREATE SINK o WITH (connector = 'parquet', path = '/tmp/weir-never') AS SELECT a FROM s;",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("sink 'o' needs option 'checkpoint'"),
        "{}",
        text(&output.stderr)
    );
}

/// The README's main command: the quickstart script runs on an embedded generator, exits 0
/// and writes every result row to Parquet exactly once; run again, it resumes and adds nothing.
#[test]
fn the_quickstart_runs_and_its_parquet_output_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.sql");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", script.to_str().unwrap()])
            .current_dir(dir.path())
            .env("WEIR_LOG", "warn")
            .output()
            .expect("run weir")
    };
    let output = run();
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let query = format!(
        "CREATE TABLE euros WITH (connector = 'files', path = '{out}/bids_in_euros', format = 'parquet');\
         CREATE TABLE windows WITH (connector = 'files', path = '{out}/bids_per_window', format = 'parquet');\
         SELECT (SELECT count(*) FROM euros) AS bids, count(*) AS windows, sum(bids) AS windowed_bids \
         FROM (SELECT window_start, sum(bids) AS bids FROM windows GROUP BY window_start);",
        out = dir.path().join("out/quickstart").display()
    );
    let expected = "+--------+---------+---------------+\n| bids   | windows | windowed_bids |\n+--------+---------+---------------+\n\
                    | 460000 | 5       | 460000        |\n+--------+---------+---------------+\n";
    assert_eq!(text(&weir(&["run", "-e", &query]).stdout), expected);
    let again = run();
    assert!(again.status.success(), "stderr: {}", text(&again.stderr));
    assert_eq!(text(&weir(&["run", "-e", &query]).stdout), expected);
}

/// `weir run` with the default log level and no terminal on standard error.
fn weir_logging(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .env_remove("WEIR_LOG")
        .env_remove("NO_COLOR")
        .output()
        .expect("run weir")
}

const WATERMARKED: &str = "CREATE SOURCE w (ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) \
     WITH (connector = 'memory');\
     INSERT INTO w VALUES ('2024-01-01 00:00:10');\
     CREATE SINK c WITH (connector = 'console', trigger = 'available-now') AS \
     SELECT window_start, count(*) AS n FROM TUMBLE(w, ts, INTERVAL '10' SECOND) \
     GROUP BY window_start, window_end;";

#[test]
fn logs_off_a_terminal_have_no_colour_show_watermarks_as_times_and_tell_a_failure_once() {
    let output = weir_logging(&["run", "-e", WATERMARKED]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains('\u{1b}'),
        "ANSI escapes in a pipe: {stderr}"
    );
    // Batch 1 runs because the watermark moved to 00:00:05.
    assert!(
        stderr.contains("watermark=2024-01-01T00:00:05.000") && !stderr.contains("Some("),
        "{stderr}"
    );

    let failing = "CREATE SOURCE s (a INT) WITH (connector = 'memory');\
         INSERT INTO s VALUES (0);\
         CREATE SINK z WITH (connector = 'console', trigger = 'available-now') AS SELECT 10 / a AS q FROM s;";
    let output = weir_logging(&["run", "-e", failing]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert_eq!(
        stderr.matches("Divide by zero").count(),
        1,
        "the failure must be told once: {stderr}"
    );
    assert!(stderr.contains("query failed"), "{stderr}");
}

#[test]
fn json_logs_are_one_object_a_line_with_the_batch_fields() {
    let output = weir_logging(&["run", "--log-format", "json", "-e", WATERMARKED]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let stderr = text(&output.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let committed: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "batch committed")
        .collect();
    assert_eq!(committed.len(), 2, "{stderr}");
    assert_eq!(
        committed[1]["fields"]["watermark"],
        "2024-01-01T00:00:05.000"
    );
    assert_eq!(committed[1]["fields"]["query"], "c");
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "started query c"),
        "{stderr}"
    );
}

#[test]
fn sigterm_while_the_scripts_statements_plan_ends_weir_at_once() {
    // Thirty statements that each take a while to plan (450-term expressions).
    let terms = vec!["a"; 450].join(" + ");
    let mut script = "CREATE SOURCE s (a BIGINT) WITH (connector = 'memory');".to_string();
    for _ in 0..30 {
        script += &format!("EXPLAIN SELECT {terms} FROM s;");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "-e", &script])
        .env("WEIR_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let sent = std::time::Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = sent + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "weir ignored SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(143), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains(
            "SIGTERM received while the script's statements ran: stopping the queries started \
             so far; the rest of the script is not run"
        ),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_memory_limit_fails_a_statement_over_it_with_a_resources_error() {
    let sql = "SELECT v, count(*) FROM generate_series(1, 2000000) AS t(v) GROUP BY v ORDER BY v DESC LIMIT 1;";
    let output = weir(&["run", "--memory-limit", "1MiB", "-e", sql]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("Resources exhausted"), "{stderr}");
    let output = weir(&["run", "--memory-limit", "lots", "-e", sql]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("'lots' is not a size such as 512MiB or 4GiB"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn piped_input_with_a_line_that_is_not_utf8_runs_the_rest_and_exits_1() {
    use std::io::Write;
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .env("WEIR_LOG", "warn")
        .env("WEIR_HISTORY", home.path().join("history"))
        .env("HOME", home.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"SELECT 1 AS first;\nSELECT '\xff\xfe' AS bad;\nSELECT 2 AS second;\n")
        .unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        stdout.contains("| first |") && stdout.contains("| second |"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("a line of input is not valid UTF-8 and was skipped")
            && stderr.contains("1 line(s) of input were not valid UTF-8"),
        "{stderr}"
    );
    assert_eq!(output.status.code(), Some(1));
}

/// A peek that finds nothing says why: what each kind of source is waiting for.
#[test]
fn an_empty_peek_says_why_the_source_holds_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let output = weir(&[
        "run",
        "-e",
        &format!(
            "CREATE SOURCE slow WITH (connector = 'nexmark', table = 'person', events_per_second = '1');\
             SELECT id FROM slow LIMIT 3;\
             CREATE SOURCE files_in (id INT) WITH (connector = 'files', path = '{}', format = 'json');\
             SELECT * FROM files_in LIMIT 3;\
             CREATE SOURCE typed (id INT) WITH (connector = 'memory');\
             SELECT * FROM typed LIMIT 3;",
            dir.path().display()
        ),
    ]);
    assert!(output.status.success(), "stderr: {}", text(&output.stderr));
    let stderr = text(&output.stderr);
    for why in [
        format!(
            "source 'files_in' holds no rows: no file in '{}' yet (names starting with '_' or '.' are skipped)",
            dir.path().display()
        ),
        "source 'typed' holds no rows: nothing was inserted yet (INSERT INTO typed VALUES …)"
            .to_string(),
        "source 'slow' holds no rows: it produces 1 events a second from its CREATE SOURCE, and \
         none of this table's were due yet; peek again in a moment"
            .to_string(),
    ] {
        assert!(stderr.contains(&why), "missing {why:?} in\n{stderr}");
    }
}

/// A broker that does not answer: librdkafka's own connection failures and global errors,
/// which it retries by itself, stay at debug; Weir warns once that it retries and then fails
/// once, naming the brokers.
#[test]
fn an_unreachable_broker_is_told_once_without_librdkafkas_chatter() {
    let output = weir_logging(&[
        "run",
        "-e",
        "CREATE SOURCE k (v VARCHAR) WITH (connector = 'kafka', brokers = '127.0.0.1:9', \
         topic = 't', format = 'json', timeout = '1s');\
         CREATE SINK o WITH (connector = 'console', trigger = 'available-now') AS SELECT * FROM k;",
    ]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert_eq!(lines[0], "created source k");
    assert!(
        lines[1].contains(" WARN weir_connectors::kafka::client: fetching the topic's metadata failed; retrying up to 2 more times"),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("error: i/o error on kafka topic 't' on brokers '127.0.0.1:9': fetching the topic's metadata failed 3 times"),
        "{stderr}"
    );
}

/// The shipped binary carries no debug info (line tables for every crate made the release
/// `weir` ~800 MB): the release profile turns it off and strips what dependencies bring.
/// (Building a release binary here would take most of CI's time; the profile is what decides.)
#[test]
fn the_release_profile_ships_no_debug_info() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .expect("the workspace manifest");
    let release: Vec<&str> = manifest
        .split("\n[")
        .find(|section| section.starts_with("profile.release]"))
        .expect("a [profile.release] section")
        .lines()
        .skip(1)
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    assert!(release.contains(&"debug = false"), "{release:?}");
    assert!(
        release.contains(&"strip = \"debuginfo\"") || release.contains(&"strip = \"symbols\""),
        "{release:?}"
    );
}
