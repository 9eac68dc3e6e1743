//! The interactive shell (`weir`, or `weir repl`): a line editor with history kept across
//! sessions, multi-line statements ending in `;`, completion of keywords and catalog names,
//! Ctrl-C to cancel the input or stop what runs in the foreground, Ctrl-D to leave.
//!
//! Continuous queries (`CREATE SINK … AS SELECT`) run in the background while the shell stays
//! usable; leaving the shell stops them gracefully, and their checkpoints let the same
//! `CREATE SINK` resume where they stopped. `WATCH SELECT …` prints a query's micro-batches
//! until Ctrl-C, leaving no checkpoint behind.

mod input;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use futures::StreamExt;
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Config, Editor};
use tokio::runtime::Runtime;
use tokio::signal::unix::{Signal, SignalKind, signal};

pub use output::Format;

use self::input::{Names, ShellHelper};
use crate::api::{Engine, Outcome};
use crate::error::{Result, WeirError};

/// Settings of a shell session.
#[derive(Debug, Clone)]
pub struct ReplSettings {
    /// Checkpoint root for sinks without a `checkpoint` option.
    pub checkpoint_root: Option<PathBuf>,
    /// How rows are printed.
    pub format: Format,
    /// Longest result printed in full (0: no limit).
    pub max_rows: usize,
    /// Where history is kept.
    pub history: Option<PathBuf>,
}

/// Every statement, with an example, for `help`.
const HELP: &str = "\
Statements end with ';' and may span lines. Tab completes keywords and names.

  CREATE SOURCE bids WITH (connector = 'nexmark', table = 'bid', events_per_second = '1000');
  CREATE SOURCE clicks (user_id INT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)
      WITH (connector = 'files', path = '/data/clicks', format = 'json');
  CREATE TABLE users WITH (connector = 'files', path = '/data/users.csv', format = 'csv');
  CREATE VIEW big_bids AS SELECT * FROM bids WHERE price > 1000;
  CREATE SINK per_minute WITH (connector = 'console', output_mode = 'update') AS
      SELECT window_start, count(*) FROM TUMBLE(bids, date_time, INTERVAL '1' MINUTE)
      GROUP BY window_start, window_end;      -- runs in the background
  INSERT INTO per_minute SELECT ...;          -- a query into an existing sink
  SELECT * FROM bids LIMIT 10;                -- peek: what the source holds now
  SELECT * FROM users;                        -- static tables and sinks' output
  WATCH SELECT auction, price FROM bids;      -- print each micro-batch until Ctrl-C
  SHOW SOURCES | TABLES | VIEWS | SINKS | QUERIES;
  SHOW PROGRESS per_minute;                   -- the query's recent batches
  DESCRIBE bids;
  EXPLAIN SELECT ...;                         -- the incremental plan
  EXPLAIN ANALYZE per_minute;                 -- a running query's operators: rows and time
  STOP QUERY per_minute;
  DROP SOURCE | TABLE | VIEW | SINK [IF EXISTS] name;

Shell commands:
  help                 this text
  \\format table|csv|json   how rows are printed
  \\maxrows N           print at most N rows of a result (0: all)
  \\timing on|off       time each statement
  exit, quit, Ctrl-D   leave (running queries stop gracefully)
  Ctrl-C               cancel the input, or stop what runs in the foreground";

/// What the shell is set to print.
struct Display {
    format: Format,
    max_rows: usize,
    timing: bool,
}

/// Runs the shell until Ctrl-D or `exit`; the exit code is 0 unless the shell could not start.
pub fn run(settings: ReplSettings, runtime: &Runtime) -> ExitCode {
    match run_shell(settings, runtime) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_shell(settings: ReplSettings, runtime: &Runtime) -> Result<()> {
    let mut builder = Engine::builder();
    if let Some(root) = &settings.checkpoint_root {
        builder = builder.checkpoint_root(root);
    }
    let engine = builder.build()?;
    let config = Config::builder()
        .auto_add_history(false)
        .completion_type(CompletionType::List)
        .build();
    let mut editor: Editor<ShellHelper, FileHistory> = Editor::with_config(config)
        .map_err(|e| WeirError::Internal(format!("cannot start the line editor: {e}")))?;
    // Ctrl-C while a statement runs arrives as SIGINT (the editor is not reading then). The
    // editor installs its own SIGINT handler when it is created; registering after it puts
    // ours first (the editor's still runs after it).
    let mut interrupt = runtime
        .block_on(async { signal(SignalKind::interrupt()) })
        .map_err(|e| WeirError::Internal(format!("SIGINT handler: {e}")))?;
    let names = Names::default();
    editor.set_helper(Some(ShellHelper {
        names: names.clone(),
    }));
    if let Some(path) = &settings.history {
        // A first session has no history file yet.
        editor.load_history(path).ok();
    }
    let mut display = Display {
        format: settings.format,
        max_rows: settings.max_rows,
        timing: true,
    };
    println!(
        "Weir {} — streaming SQL. Type help for the statements, Ctrl-D to leave.",
        env!("CARGO_PKG_VERSION")
    );
    // Lines of piped input that were not UTF-8: skipped (the reader has consumed them), the
    // rest still runs, and the shell then exits with an error.
    let mut skipped_lines = 0u64;
    loop {
        let line = match editor.readline("weir> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(ReadlineError::Io(e))
                if e.kind() == std::io::ErrorKind::InvalidData && skipped_lines < 10_000 =>
            {
                skipped_lines += 1;
                eprintln!("error: a line of input is not valid UTF-8 and was skipped: {e}");
                continue;
            }
            Err(e) => {
                eprintln!("error: reading input: {e}");
                break;
            }
        };
        let text = line.trim();
        let command = text.trim_end_matches(';').trim();
        let leaving = ["exit", "quit", "\\q"].contains(&command.to_ascii_lowercase().as_str());
        if leaving {
            break;
        }
        if text.is_empty() {
            continue;
        }
        editor.add_history_entry(text).ok();
        if let Some(path) = &settings.history
            && let Err(e) = editor.append_history(path)
        {
            eprintln!("warning: cannot save history to {}: {e}", path.display());
        }
        match command.to_ascii_lowercase().as_str() {
            "help" | "\\?" | "\\h" => {
                println!("{HELP}");
                continue;
            }
            _ => {}
        }
        if command.starts_with('\\') {
            shell_command(command, &mut display);
            continue;
        }
        runtime.block_on(run_sql(&engine, text, &display, &mut interrupt));
        runtime.block_on(refresh_names(&engine, &names));
    }
    let queries = runtime.block_on(engine.queries());
    if queries.iter().any(|q| q.is_active()) {
        println!("stopping running queries after their batch in flight");
    }
    runtime.block_on(engine.stop_all())?;
    if skipped_lines > 0 {
        return Err(WeirError::Plan(format!(
            "{skipped_lines} line(s) of input were not valid UTF-8 and were skipped; save the \
             script as UTF-8"
        )));
    }
    Ok(())
}

/// `\format`, `\maxrows`, `\timing`.
fn shell_command(command: &str, display: &mut Display) {
    let mut words = command.split_whitespace();
    let name = words.next().unwrap_or_default();
    let value = words.next().unwrap_or_default();
    match name {
        "\\format" => match Format::parse(value) {
            Some(format) => display.format = format,
            None => eprintln!("error: \\format takes table, csv or json"),
        },
        "\\maxrows" => match value.parse() {
            Ok(rows) => display.max_rows = rows,
            Err(_) => eprintln!("error: \\maxrows takes a number of rows (0: all)"),
        },
        "\\timing" => match value {
            "on" => display.timing = true,
            "off" => display.timing = false,
            _ => eprintln!("error: \\timing takes on or off"),
        },
        other => eprintln!("error: unknown command {other}; type help for the commands"),
    }
}

/// Runs the statements of `text` in order, printing each outcome; Ctrl-C stops the one
/// running in the foreground.
async fn run_sql(engine: &Engine, text: &str, display: &Display, interrupt: &mut Signal) {
    if let Some(select) = strip_keyword(text, "WATCH") {
        watch(engine, select, display, interrupt).await;
        return;
    }
    let statements = match weir_sql::parse_sql(text) {
        Ok(statements) => statements,
        Err(e) => {
            eprintln!("{}", describe_error(text, &e.into()));
            return;
        }
    };
    for statement in statements {
        let started = Instant::now();
        let outcome = tokio::select! {
            outcome = engine.execute_statement(statement) => outcome,
            _ = interrupt.recv() => {
                eprintln!("cancelled");
                return;
            }
        };
        match outcome {
            Ok(Outcome::Done(message)) => println!("{message}"),
            Ok(Outcome::Rows(rows)) => print_rows(&rows, display, started),
            Ok(Outcome::Started(query)) => println!(
                "started query {name} in the background (SHOW QUERIES; SHOW PROGRESS {name}; STOP QUERY {name})",
                name = query.name()
            ),
            Err(e) => {
                eprintln!("{}", describe_error(text, &e));
                return;
            }
        }
    }
}

fn print_rows(rows: &[arrow::array::RecordBatch], display: &Display, started: Instant) {
    let total: usize = rows.iter().map(|b| b.num_rows()).sum();
    match output::render(rows, display.format, display.max_rows) {
        Ok((text, left_out)) => {
            if !text.is_empty() {
                println!("{text}");
            }
            if left_out > 0 {
                println!("({left_out} more rows not shown; \\maxrows 0 shows all, or add a LIMIT)");
            }
        }
        Err(e) => eprintln!("error: {e}"),
    }
    if display.timing {
        let plural = if total == 1 { "row" } else { "rows" };
        println!(
            "{total} {plural} in {:.3} s",
            started.elapsed().as_secs_f64()
        );
    }
}

/// `WATCH SELECT …`: runs the query continuously and prints each micro-batch's rows until
/// Ctrl-C; the query keeps no checkpoint.
async fn watch(engine: &Engine, select: &str, display: &Display, interrupt: &mut Signal) {
    let query = match engine.watch(select).await {
        Ok(query) => query,
        Err(e) => {
            eprintln!("{}", describe_error(select, &e));
            return;
        }
    };
    println!("watching (Ctrl-C to stop)");
    let mut batches = query.subscribe();
    loop {
        tokio::select! {
            next = batches.next() => match next {
                // Batches that only moved the watermark print nothing.
                Some(output) if output.rows.iter().all(|b| b.num_rows() == 0) => {}
                Some(output) => {
                    println!("-- batch {}", output.batch_id);
                    print_rows(&output.rows, display, Instant::now());
                }
                None => break,
            },
            _ = interrupt.recv() => break,
        }
    }
    if let Err(e) = query.stop().await {
        eprintln!("error: {e}");
    }
    println!("stopped watching");
}

/// The rest of `text` after a leading keyword (any case), if it starts with it.
fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    let rest = &text[keyword.len()..];
    (head.eq_ignore_ascii_case(keyword) && rest.starts_with(char::is_whitespace))
        .then(|| rest.trim_start())
}

/// An error message; when it names a line and column of the statement (a syntax error),
/// the line is shown with a caret under the position.
fn describe_error(sql: &str, error: &WeirError) -> String {
    let message = format!("error: {error}");
    let Some((line, column)) = position(&message) else {
        return message;
    };
    let Some(text) = sql.lines().nth(line.saturating_sub(1)) else {
        return message;
    };
    let caret = " ".repeat(column.saturating_sub(1));
    format!("{message}\n  {text}\n  {caret}^")
}

/// The `Line: L, Column: C` of a parser error.
fn position(message: &str) -> Option<(usize, usize)> {
    let at = message.rfind("Line: ")?;
    let rest = &message[at + "Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

/// Refreshes the names completion offers: the catalog's relations, their columns, queries.
async fn refresh_names(engine: &Engine, names: &Names) {
    let mut fresh = Vec::new();
    let ctx = engine.session_context();
    for catalog_name in ctx.catalog_names() {
        let Some(catalog) = ctx.catalog(&catalog_name) else {
            continue;
        };
        for schema_name in catalog.schema_names() {
            let Some(schema) = catalog.schema(&schema_name) else {
                continue;
            };
            for table in schema.table_names() {
                if let Ok(Some(provider)) = schema.table(&table).await {
                    fresh.extend(provider.schema().fields().iter().map(|f| f.name().clone()));
                }
                fresh.push(table);
            }
        }
    }
    fresh.extend(engine.queries().await.iter().map(|q| q.name().to_string()));
    fresh.sort();
    fresh.dedup();
    *names.write().unwrap_or_else(|p| p.into_inner()) = fresh;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syntax_error_points_at_its_position() {
        let error = WeirError::Plan(
            "sql parser error: Expected: an expression, found: FROM at Line: 2, Column: 8"
                .to_string(),
        );
        assert_eq!(
            describe_error("SELECT a,\nSELECT FROM t;", &error),
            "error: sql parser error: Expected: an expression, found: FROM at Line: 2, Column: 8\n  SELECT FROM t;\n         ^"
        );
        assert_eq!(strip_keyword("watch  SELECT 1", "WATCH"), Some("SELECT 1"));
        assert_eq!(strip_keyword("watchful", "WATCH"), None);
    }
}
