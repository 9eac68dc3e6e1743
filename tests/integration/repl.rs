//! The interactive shell through a pseudo-terminal: typing statements (one line and several),
//! completion, Ctrl-C at the prompt and during `WATCH`, background queries, output formats,
//! errors with a caret, and history kept across sessions.

use std::path::Path;
use std::process::Command;

use rexpect::session::{PtySession, spawn_command};

const PROMPT: &str = "weir> ";
/// What the line editor writes when it starts reading a line (switching bracketed paste on,
/// after putting the terminal in raw mode): input sent before it may be lost.
const READING: &str = "\x1b[?2004h";

/// Waits until the shell reads its next statement: the editor is reading and the prompt is
/// drawn. (The prompt alone also appears while the editor redraws a typed line.)
fn ready(session: &mut PtySession) {
    session.exp_string(READING).unwrap();
    session.exp_string(PROMPT).unwrap();
}

/// A shell keeping its history in `history`, with its home (and so its default checkpoint
/// root, `~/.weir/checkpoints`) in the same directory.
fn shell(history: &Path) -> PtySession {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .env("HOME", history.parent().unwrap())
        .env("WEIR_HISTORY", history)
        .env("WEIR_LOG", "warn")
        .env("TERM", "xterm");
    let mut session = spawn_command(command, Some(30_000)).expect("spawn weir");
    session.exp_string("Type help").unwrap();
    ready(&mut session);
    session
}

/// Runs `statement` until its output holds `expected` (a background query catching up).
fn until(session: &mut PtySession, statement: &str, expected: &str) {
    let mut last = String::new();
    for _ in 0..100 {
        session.send_line(statement).unwrap();
        // Every result ends with its row count and time.
        let (before, _) = session.exp_regex(r"\d+ rows? in \d").unwrap();
        ready(session);
        last = before;
        if last.contains(expected) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("{statement} never gave {expected}; last output: {last}");
}

fn leave(mut session: PtySession) {
    // Give the editor time to switch the terminal to raw mode after its prompt.
    std::thread::sleep(std::time::Duration::from_millis(100));
    session.send_control('d').unwrap();
    session.exp_eof().unwrap();
}

#[test]
fn statements_run_over_one_line_or_several_with_tables_and_timing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = shell(&dir.path().join("history"));
    s.send_line("SELECT 40 +").unwrap();
    s.send_line("2 AS answer;").unwrap();
    s.exp_string("| answer |").unwrap();
    s.exp_string("| 42     |").unwrap();
    s.exp_string("1 row in").unwrap();
    ready(&mut s);
    s.send_line("\\format csv").unwrap();
    ready(&mut s);
    s.send_line("SELECT 1 AS a, 'x' AS b;").unwrap();
    s.exp_string("a,b").unwrap();
    s.exp_string("1,x").unwrap();
    ready(&mut s);
    s.send_line("\\maxrows 2").unwrap();
    ready(&mut s);
    s.send_line("SELECT * FROM (VALUES (1), (2), (3), (4)) AS t(v);")
        .unwrap();
    s.exp_string("1\r\n2\r\n(2 more rows not shown").unwrap();
    ready(&mut s);
    s.send_line("help").unwrap();
    s.exp_string("SHOW PROGRESS per_minute;").unwrap();
    s.exp_string("\\format table|csv|json").unwrap();
    ready(&mut s);
    leave(s);
}

#[test]
fn tab_completes_catalog_names_and_errors_point_at_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = shell(&dir.path().join("history"));
    s.send_line("CREATE SOURCE clickstream (user_id INT) WITH (connector = 'memory');")
        .unwrap();
    s.exp_string("created source clickstream").unwrap();
    ready(&mut s);
    s.send_line("INSERT INTO clickstream VALUES (7);").unwrap();
    ready(&mut s);
    // `clicks` + Tab completes to the source's name, `user_` + Tab to its column.
    s.send("SELECT user_").unwrap();
    s.send("\t").unwrap();
    s.send(" FROM clicks").unwrap();
    s.send("\t").unwrap();
    s.send_line(";").unwrap();
    s.exp_string("| user_id |").unwrap();
    s.exp_string("| 7       |").unwrap();
    ready(&mut s);
    s.send_line("SELECT user_idd FROM clickstream;").unwrap();
    s.exp_string("No field named user_idd. Did you mean 'clickstream.user_id'?")
        .unwrap();
    ready(&mut s);
    // Keywords complete in the case they are typed in.
    s.send("sel").unwrap();
    s.send("\t").unwrap();
    s.send_line(" 3 AS three;").unwrap();
    s.exp_string("| three |").unwrap();
    ready(&mut s);
    s.send_line("\\format json").unwrap();
    ready(&mut s);
    s.send_line("SELECT 4 AS four;").unwrap();
    s.exp_string("{\"four\":4}").unwrap();
    ready(&mut s);
    s.send_line("SELEC 1;").unwrap();
    s.exp_string("found: SELEC at Line: 1, Column: 1").unwrap();
    s.exp_string("  SELEC 1;\r\n  ^").unwrap();
    leave(s);
}

#[test]
fn ctrl_c_cancels_the_input_and_stops_a_watch_and_queries_run_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = shell(&dir.path().join("history"));
    // Ctrl-C drops a half-typed statement.
    s.send("SELECT 'half").unwrap();
    s.send_control('c').unwrap();
    ready(&mut s);
    s.send_line("SELECT 5 AS five;").unwrap();
    s.exp_string("| five |").unwrap();
    ready(&mut s);
    s.send_line(
        "CREATE SOURCE bids WITH (connector = 'nexmark', table = 'bid', events_per_second = '200');",
    )
    .unwrap();
    ready(&mut s);
    // WATCH prints micro-batches until Ctrl-C, then the shell is back.
    s.send_line("WATCH SELECT auction, price FROM bids WHERE price > 0;")
        .unwrap();
    s.exp_string("watching (Ctrl-C to stop)").unwrap();
    s.exp_string("| auction | price |").unwrap();
    s.send_control('c').unwrap();
    s.exp_string("stopped watching").unwrap();
    ready(&mut s);
    // A continuous query runs in the background while the shell answers.
    s.send_line(
        "CREATE SINK counts WITH (connector = 'memory', output_mode = 'complete') AS SELECT count(*) AS n FROM bids;",
    )
    .unwrap();
    s.exp_string("started query counts in the background")
        .unwrap();
    ready(&mut s);
    s.send_line("SHOW QUERIES;").unwrap();
    s.exp_string("| counts ").unwrap();
    s.exp_string("| running ").unwrap();
    ready(&mut s);
    s.send_line("STOP QUERY counts;").unwrap();
    s.exp_string("stopped query counts").unwrap();
    ready(&mut s);
    s.send_line("SHOW PROGRESS counts;").unwrap();
    s.exp_string("| batch | input_rows |").unwrap();
    ready(&mut s);
    leave(s);
}

#[test]
fn history_is_kept_across_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history");
    let mut first = shell(&history);
    first.send_line("SELECT 6 * 7 AS remembered;").unwrap();
    first.exp_string("| 42         |").unwrap();
    ready(&mut first);
    first.send_line("exit").unwrap();
    first.exp_eof().unwrap();
    assert!(
        std::fs::read_to_string(&history)
            .unwrap()
            .contains("SELECT 6 * 7 AS remembered;")
    );
    let mut second = shell(&history);
    // Up arrow recalls the last statement of the previous session.
    second.send("\x1b[A").unwrap();
    second.send_line("").unwrap();
    second.exp_string("| remembered |").unwrap();
    second.exp_string("| 42         |").unwrap();
    leave(second);
}

#[test]
fn a_query_started_again_in_a_new_session_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("1.json"), "{\"v\": 1}\n{\"v\": 2}\n").unwrap();
    let history = dir.path().join("history");
    let statements = [
        format!(
            "CREATE SOURCE nums (v BIGINT) WITH (connector = 'files', path = '{}', format = 'json');",
            input.display()
        ),
        "CREATE SINK doubled WITH (connector = 'memory') AS SELECT v * 2 AS d FROM nums;"
            .to_string(),
    ];
    let mut first = shell(&history);
    for statement in &statements {
        first.send_line(statement).unwrap();
        ready(&mut first);
    }
    until(
        &mut first,
        "SELECT sum(d) AS total FROM doubled;",
        "| 6     |",
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    first.send_line("exit").unwrap();
    first.exp_string("stopping running queries").unwrap();
    first.exp_eof().unwrap();
    assert!(
        dir.path()
            .join(".weir/checkpoints/doubled/commits")
            .is_dir()
    );

    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(input.join("2.json"), "{\"v\": 10}\n").unwrap();
    let mut second = shell(&history);
    for statement in &statements {
        second.send_line(statement).unwrap();
        ready(&mut second);
    }
    // Only the new file is read: the first one was committed in the first session.
    until(
        &mut second,
        "SELECT sum(d) AS total FROM doubled;",
        "| 20    |",
    );
    leave(second);
}
