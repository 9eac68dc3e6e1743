//! Weir's end-to-end tests, compiled into one binary (DataFusion links slowly).
//!
//! - `slt`: golden `.slt` files under `tests/slt/`, each run three ways (as written,
//!   restarting every query after each statement, one row per micro-batch).
//! - `aggregate`: streaming aggregation's emitted rows and state across restarts.
//! - `bad_records`: damaged or mismatched files, values an integer column cannot hold, an
//!   open quote at the end of a CSV file and event times at the ends of the range: each
//!   counted (rows and files) and following `on_error`.
//! - `bad_statements`: statements that once panicked, overflowed the stack or hung, and a
//!   bounded fuzz of mutated statements: each ends within a bound with a clear answer.
//! - `embedding`: listeners, output subscriptions, `watch`, the memory limit, and the
//!   examples (custom source, custom sink, UDFs).
//! - `joins`: stream-stream joins against DataFusion's batch join for random batch splits,
//!   the joins Spark refuses, EXPLAIN's account of their state, and late rows per side.
//! - `chained_operators`: an aggregation over a join and over an aggregation, a join of two
//!   aggregations and a Top-N over a join against DataFusion's batch query for random batch
//!   splits; the watermark an operator above a join works with; chains refused.
//! - `dedup`: `SELECT DISTINCT` and keep-first `ROW_NUMBER()` against DataFusion's batch
//!   query for random batch splits, and the forms refused.
//! - `idle`: an idle query polls its sources with a bounded back-off and runs no batch.
//! - `files_source`: the files source and parquet sink through the engine API.
//! - `kafka`: the kafka source and sink against a real broker (tansu): windows into a topic,
//!   metadata columns, restarts and a crash before the commit, with and without transactions.
//! - `object_stores`: `s3://` paths for sources, tables, sinks and checkpoints against a real
//!   S3-compatible server, and the errors for unreachable or misconfigured stores.
//! - `paced_generator`: a paced nexmark source's events due so far, for a peek and an
//!   `available-now` run.
//! - `postgres`: the `postgres` sink's upserts, exactly-once re-runs and errors against a real
//!   PostgreSQL.
//! - `late_rows`: late rows kept, dropped and counted by Spark's rule (the previous batch's
//!   watermark), against that rule written out, for any batch split.
//! - `property`: streaming results equal DataFusion batch results for random batch splits.
//! - `query_changes`: restarting a checkpoint with a changed query: what resumes and what is
//!   refused at start.
//! - `server`: `weir serve` over HTTP with a real client: statements, rows, queries, error
//!   statuses, stopping a query, SIGTERM.
//! - `cli`: the `weir` binary's `run` command, output and exit codes.
//! - `repl`: the interactive shell through a pseudo-terminal.
//! - `crash`: the real `weir` binary killed with SIGKILL many times; the sink must hold every
//!   row exactly once.
//! - `crash_windowed`: the same for a tumbling-window aggregation (every window exactly once),
//!   stream-stream left outer and inner joins, `SELECT DISTINCT`, keep-first deduplication,
//!   deduplication within the watermark and a window Top-N (every row exactly once).
//! - `damaged_checkpoint`: each kind of damage to a checkpoint file is refused at start by
//!   name, before the output is touched; a lost last commit re-runs its batch once.
//! - `stateful_contract`: the stateful rules end to end: the watermark across inputs and
//!   within a batch, the end of input, which output modes each sink takes, per-operator
//!   progress, and how many state versions are kept.
//! - `static_tables`: static tables read when a query starts and on `refresh`, a failed read
//!   keeping the rows before, and PostgreSQL tables with their column types.
//! - `top_n`: window Top-N against DataFusion's batch query for random batch splits, a
//!   whole-stream Top-N in complete mode, and the modes refused.
//! - `source_columns`: a query asks its sources for only the columns it uses, and gets the
//!   same rows.
//! - `services`: finds the Kafka broker, S3 server and PostgreSQL the connector tests use, or
//!   skips those tests visibly when they are down.

#![allow(clippy::unwrap_used)]

mod aggregate;
mod bad_records;
mod bad_statements;
mod chained_operators;
mod cli;
mod crash;
mod crash_windowed;
mod damaged_checkpoint;
mod dedup;
mod embedding;
mod files_source;
mod idle;
mod joins;
mod kafka;
mod late_rows;
mod object_stores;
mod one_source;
mod paced_generator;
mod postgres;
mod property;
mod query_changes;
mod repl;
mod server;
mod services;
mod slt;
mod source_columns;
mod stateful_contract;
mod static_tables;
mod top_n;
