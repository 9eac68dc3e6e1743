//! # Weir
//!
//! A streaming SQL engine in the style of Spark Structured Streaming, on Apache Arrow and
//! DataFusion. SQL over unbounded sources runs as a sequence of micro-batches; offsets are
//! checkpointed before each batch and commits after its output is durable, so output to
//! idempotent sinks is exactly once across crashes.
//!
//! ```text
//!  weir-sql (text ─▶ statements ─▶ streaming LogicalPlan; no I/O) ─┐
//!  weir-connectors (Source / Sink contracts + implementations) ────┼─▶ weir (this crate):
//!                                                                  │   runtime, checkpoint,
//!                                                                  │   Engine API, CLI
//!
//!  per batch N:  source.latest_offset ─▶ offsets/N (with the watermark in force)
//!                ─▶ source.read ─▶ DataFusion plan (streaming operators read state N-1)
//!                ─▶ sink.write(N) ─▶ state deltas N ─▶ commits/N (new watermark) ─▶ source.commit
//!  on restart:   state of the last commit is loaded; the newest offsets/N without
//!                commits/N is re-run with the same offsets and watermark
//! ```
//!
//! - [`api`]: [`Engine`] (statements, ad hoc queries, starting queries, window table
//!   functions, static tables re-read on `refresh`) and [`StreamingQuery`] (progress, stop,
//!   `process_all_available`).
//! - [`runtime`]: the trigger loop, watermarks and progress reporting.
//! - [`physical`]: streaming operators as DataFusion `ExecutionPlan`s (streaming aggregation,
//!   session merging, stream-stream join, deduplication, Top-N), one file or folder each, and
//!   the planner that maps `weir_sql::logical` nodes to them.
//! - [`state`]: operator state between batches: deltas and snapshots in the checkpoint, and
//!   the time-keyed table (rows by key with row ids and a matched flag) the join, dedup and
//!   Top-N keep.
//! - [`checkpoint`]: the metadata, offsets and commits logs and their ordering rule.

pub mod api;
pub mod checkpoint;
#[cfg(feature = "cli")]
pub mod cli;
pub mod error;
pub mod event_time;
pub mod physical;
pub mod runtime;
#[cfg(feature = "cli")]
pub mod server;
pub mod state;

pub use api::{Engine, EngineBuilder, Outcome, RestoreReport, StreamingQuery};

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
pub use error::{Result, WeirError};
pub use event_time::EventTime;
pub use runtime::{
    BatchProgress, OperatorProgress, OutputMode, QueryListener, QueryOutput, QueryStarted,
    QueryState, QueryTerminated,
};
