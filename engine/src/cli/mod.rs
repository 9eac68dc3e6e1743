//! The `weir` command line: `weir run job.sql` (or `-e '<sql>'`) creates the script's
//! objects, starts its continuous queries and waits for them; SIGINT or SIGTERM stops them
//! gracefully after the batch in flight. `weir` alone (or `weir repl`) opens the interactive
//! shell. Behind the default `cli` feature.

#[cfg(feature = "allocator")]
pub mod allocator;
mod client;
mod repl;
mod run;
mod serve;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Streaming SQL on Apache Arrow and DataFusion.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// How log lines (on standard error) are written: `text` for people (coloured only on a
    /// terminal, and never with NO_COLOR set), `json` for log pipelines (one object a line).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(flatten)]
    repl: ReplArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a SQL script: create its sources, tables, views and sinks, start its queries and
    /// wait until they end (or until SIGINT/SIGTERM stops them gracefully).
    Run(RunArgs),
    /// The interactive SQL shell (also what `weir` alone opens).
    Repl(ReplArgs),
    /// A long-running engine behind an HTTP API (JSON): run SQL, list, describe and stop
    /// queries; stops every query gracefully on SIGTERM or SIGINT.
    Serve(serve::ServeArgs),
    /// Run a SQL script on a running `weir serve` (its sources, sinks and queries live there).
    Submit(client::SubmitArgs),
    /// List the queries of a running `weir serve`.
    Queries(client::ServerArg),
    /// Stop a query of a running `weir serve` gracefully.
    Stop(client::StopArgs),
}

/// Arguments of the shell.
#[derive(Debug, Clone, Args)]
pub struct ReplArgs {
    /// Checkpoint root for sinks without a `checkpoint` option: `<root>/<sink name>`, so a
    /// query started again in a later session resumes where it stopped [default:
    /// ~/.weir/checkpoints].
    #[arg(long)]
    checkpoint_root: Option<PathBuf>,
    /// How rows are printed.
    #[arg(long, value_enum, default_value = "table")]
    format: repl::Format,
    /// Longest result printed in full (0: no limit).
    #[arg(long, default_value_t = 40)]
    max_rows: usize,
    /// History file [default: $WEIR_HISTORY, else ~/.weir_history].
    #[arg(long)]
    history: Option<PathBuf>,
}

impl ReplArgs {
    fn settings(self) -> repl::ReplSettings {
        let history = self
            .history
            .or_else(|| std::env::var_os("WEIR_HISTORY").map(PathBuf::from))
            .or_else(|| {
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".weir_history"))
            });
        let home = std::env::var_os("HOME").map(PathBuf::from);
        repl::ReplSettings {
            checkpoint_root: self
                .checkpoint_root
                .or_else(|| home.map(|h| h.join(".weir").join("checkpoints"))),
            format: self.format,
            max_rows: self.max_rows,
            history,
        }
    }
}

/// Arguments of `weir run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The SQL script to run.
    #[arg(required_unless_present = "execute")]
    file: Option<PathBuf>,
    /// SQL text to run instead of a script file.
    #[arg(short = 'e', long = "execute", conflicts_with = "file")]
    execute: Option<String>,
    /// Checkpoint root for sinks without a `checkpoint` option: `<root>/<sink name>`.
    #[arg(long)]
    checkpoint_root: Option<PathBuf>,
    /// The most memory the queries' operators may hold (sorts, joins, aggregation tables),
    /// such as `512MiB` or `4GiB`; past it a batch fails with an error naming the operator,
    /// instead of the process being killed. Default: no limit.
    #[arg(long, value_parser = parse_size)]
    memory_limit: Option<usize>,
}

/// A size such as `4096`, `512MiB`, `4GiB` or `2GB`, in bytes.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size such as 512MiB or 4GiB"))?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" => 1e12,
        "tib" => 1024.0f64.powi(4),
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{text}': use B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)"
            ));
        }
    };
    let bytes = number * scale;
    if !(bytes >= 1.0 && bytes < usize::MAX as f64) {
        return Err(format!("'{text}' is not a usable memory limit"));
    }
    Ok(bytes as usize)
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Libraries whose own info lines are chatter for a Weir user (PostgreSQL's NOTICEs,
/// librdkafka's connection notes): shown from warn up unless `WEIR_LOG` asks for them.
const QUIET_LIBRARIES: &str = "tokio_postgres=warn,librdkafka=warn,rdkafka=warn";

/// Sets up logging to standard error: `WEIR_LOG` (an env-filter) or `default_level`.
fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default_level},{QUIET_LIBRARIES}"))
    });
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(colour).init(),
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The shell logs warnings only, so its output stays readable.
    let default_level = if matches!(cli.command, Some(Command::Run(_) | Command::Serve(_))) {
        "info"
    } else {
        "warn"
    };
    init_logging(cli.log_format, default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Command::Run(args)) => {
            runtime.block_on(run::run(args, cli.log_format == LogFormat::Json))
        }
        Some(Command::Repl(args)) => repl::run(args.settings(), &runtime),
        Some(Command::Serve(args)) => runtime.block_on(serve::serve(args)),
        Some(Command::Submit(args)) => runtime.block_on(client::submit(args)),
        Some(Command::Queries(args)) => runtime.block_on(client::queries(args)),
        Some(Command::Stop(args)) => runtime.block_on(client::stop(args)),
        None => repl::run(cli.repl.settings(), &runtime),
    }
}
