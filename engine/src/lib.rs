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
//!  per batch N:  source.latest_offset ─▶ offsets/N ─▶ source.read ─▶ DataFusion plan
//!                ─▶ sink.write(N) ─▶ commits/N ─▶ source.commit
//!  on restart:   newest offsets/N without commits/N is re-run with the same offsets
//! ```
//!
//! - [`api`]: [`Engine`] (statements, ad hoc queries, starting queries) and
//!   [`StreamingQuery`] (progress, stop).
//! - [`runtime`]: the trigger loop and progress reporting.
//! - [`checkpoint`]: the metadata, offsets and commits logs and their ordering rule.

pub mod api;
pub mod checkpoint;
#[cfg(feature = "cli")]
pub mod cli;
pub mod error;
pub mod physical;
pub mod runtime;
pub mod state;

pub use api::{Engine, EngineBuilder, Outcome, StreamingQuery};
pub use error::{Result, WeirError};
pub use runtime::{BatchProgress, QueryState};
