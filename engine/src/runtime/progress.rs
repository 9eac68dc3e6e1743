//! Progress of a running query: one [`BatchProgress`] per batch, kept in a bounded history
//! and logged through `tracing`, and the query's [`QueryState`].

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use weir_connectors::{BatchId, SourceOffset};

/// Batches of progress kept per query.
const HISTORY: usize = 100;

/// How long each phase of a batch took.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PhaseDurations {
    /// Asking sources for their latest offsets.
    pub latest_offset: Duration,
    /// Writing `offsets/N`.
    pub write_offsets: Duration,
    /// Reading the sources.
    pub read: Duration,
    /// Planning and executing the DataFusion plan.
    pub execute: Duration,
    /// The sink's write.
    pub sink_write: Duration,
    /// Writing `commits/N` and committing sources.
    pub commit: Duration,
    /// The whole batch.
    pub total: Duration,
}

/// What one source contributed to a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceProgress {
    /// Source name.
    pub name: String,
    /// Start offset (exclusive).
    pub start_offset: Option<SourceOffset>,
    /// End offset (inclusive).
    pub end_offset: Option<SourceOffset>,
    /// Rows read.
    pub input_rows: u64,
    /// Malformed records skipped or dead-lettered.
    pub bad_records: u64,
}

/// The progress report of one batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchProgress {
    /// The batch.
    pub batch_id: BatchId,
    /// Rows read from all sources.
    pub input_rows: u64,
    /// Rows written to the sink.
    pub output_rows: u64,
    /// Input rows per second of wall-clock time since the previous batch started.
    pub input_rows_per_second: f64,
    /// Input rows per second of this batch's own duration.
    pub processed_rows_per_second: f64,
    /// Phase durations.
    pub durations: PhaseDurations,
    /// Per-source details.
    pub sources: Vec<SourceProgress>,
    /// The event-time watermark in force for the batch, in ms since the epoch.
    pub watermark_ms: Option<i64>,
    /// Per stateful operator.
    pub operators: Vec<OperatorProgress>,
}

/// What one stateful operator did in a batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorProgress {
    /// The operator id (for example `aggregate-0`).
    pub operator_id: String,
    /// Rows (groups) in its state after the batch.
    pub state_rows: u64,
    /// Memory held by its state after the batch.
    pub state_bytes: u64,
    /// Input rows dropped as late (their window had closed).
    pub late_rows: u64,
    /// Groups removed from state because the watermark passed their window.
    pub rows_evicted: u64,
    /// Rows it emitted.
    pub rows_emitted: u64,
    /// Time spent in the operator.
    pub time: Duration,
}

/// Where a query is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum QueryState {
    /// Recovering from its checkpoint, or running batches.
    Running,
    /// Ended: its trigger ran out or it was stopped.
    Stopped,
    /// Ended with an error.
    Failed(String),
}

/// Shared status of a query: state and recent progress.
#[derive(Debug)]
pub struct QueryStatus {
    inner: Mutex<StatusInner>,
}

#[derive(Debug)]
struct StatusInner {
    state: QueryState,
    history: VecDeque<BatchProgress>,
}

impl Default for QueryStatus {
    fn default() -> Self {
        Self {
            inner: Mutex::new(StatusInner {
                state: QueryState::Running,
                history: VecDeque::new(),
            }),
        }
    }
}

impl QueryStatus {
    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a finished batch.
    pub fn record(&self, progress: BatchProgress) {
        let mut inner = self.lock();
        if inner.history.len() == HISTORY {
            inner.history.pop_front();
        }
        inner.history.push_back(progress);
    }

    /// Sets the state.
    pub fn set_state(&self, state: QueryState) {
        self.lock().state = state;
    }

    /// The state.
    pub fn state(&self) -> QueryState {
        self.lock().state.clone()
    }

    /// The last batch's progress.
    pub fn last(&self) -> Option<BatchProgress> {
        self.lock().history.back().cloned()
    }

    /// Up to the last 100 batches' progress, oldest first.
    pub fn recent(&self) -> Vec<BatchProgress> {
        self.lock().history.iter().cloned().collect()
    }
}
