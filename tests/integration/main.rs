//! Weir's end-to-end tests, compiled into one binary (DataFusion links slowly).
//!
//! - `slt`: golden `.slt` files under `tests/slt/`, each run three ways (as written,
//!   restarting every query after each statement, one row per micro-batch).
//! - `aggregate`: streaming aggregation's emitted rows and state across restarts.
//! - `embedding`: listeners, output subscriptions, `watch`, the memory limit, and the
//!   examples (custom source, custom sink, UDFs).
//! - `files_source`: the files source and parquet sink through the engine API.
//! - `property`: streaming results equal DataFusion batch results for random batch splits.
//! - `cli`: the `weir` binary's `run` command, output and exit codes.
//! - `repl`: the interactive shell through a pseudo-terminal.
//! - `crash`: the real `weir` binary killed with SIGKILL many times; the sink must hold every
//!   row exactly once.
//! - `crash_windowed`: the same for a tumbling-window aggregation: every window exactly once.

#![allow(clippy::unwrap_used)]

mod aggregate;
mod cli;
mod crash;
mod crash_windowed;
mod embedding;
mod files_source;
mod property;
mod repl;
mod slt;
