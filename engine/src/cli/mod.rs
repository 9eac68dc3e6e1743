//! The `weir` command line: `weir run job.sql` (or `-e '<sql>'`) creates the script's
//! objects, starts its continuous queries and waits for them; SIGINT or SIGTERM stops them
//! gracefully after the batch in flight. Behind the default `cli` feature.

mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Streaming SQL on Apache Arrow and DataFusion.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a SQL script: create its sources, tables, views and sinks, start its queries and
    /// wait until they end (or until SIGINT/SIGTERM stops them gracefully).
    Run(RunArgs),
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
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
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
        Command::Run(args) => runtime.block_on(run::run(args)),
    }
}
