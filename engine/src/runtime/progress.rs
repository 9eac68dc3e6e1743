//! Progress of a running query: one [`BatchProgress`] per batch, kept in a bounded history,
//! logged through `tracing` and passed to the engine's [`QueryListener`]s; the query's
//! [`QueryState`]; and the committed output of each batch for subscribers.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use serde::Serialize;
use tokio::sync::broadcast;
use weir_connectors::{BatchId, SourceOffset};

/// Batches of progress kept per query.
const HISTORY: usize = 100;
/// Batches of output buffered for a subscriber that reads slower than the query runs.
const SUBSCRIBER_BUFFER: usize = 64;

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
    /// Rows lost to malformed input, skipped or dead-lettered: each bad record, and the rows
    /// of each bad file where the file says how many it held.
    pub bad_records: u64,
    /// Files that could not be read whole (corrupt, truncated, or not matching the source).
    pub bad_files: u64,
}

/// The progress report of one batch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchProgress {
    /// The batch.
    pub batch_id: BatchId,
    /// When the batch started (its trigger fired), in ms since the epoch.
    pub timestamp_ms: i64,
    /// How late the batch started after it was due (the previous batch's start plus the
    /// trigger interval): zero while batches keep up with a processing-time trigger, and for
    /// a trigger without an interval.
    pub trigger_lag: Duration,
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
    /// Late input dropped (its window closed by the previous batch's watermark), counted as
    /// Spark's `numRowsDroppedByWatermark`: the groups (a key's window) that late rows fell
    /// into; for session windows, the late rows.
    pub late_rows: u64,
    /// Of `late_rows`, those of each input of an operator with several: a join's `left` and
    /// `right` (empty for one input).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub late_rows_by_input: std::collections::BTreeMap<String, u64>,
    /// Rows removed from state because the watermark passed them: an aggregate's groups whose
    /// window closed, a join's rows that can no longer match.
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

/// The rows one committed batch of a query wrote to its sink.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    /// The batch.
    pub batch_id: BatchId,
    /// The schema of its rows (there even when there are none).
    pub schema: SchemaRef,
    /// Its output rows (maybe none).
    pub rows: Vec<RecordBatch>,
}

/// A query was started.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryStarted {
    /// The query's name (its sink's).
    pub name: String,
    /// Its `SELECT`.
    pub sql: String,
}

/// A query ended.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryTerminated {
    /// The query's name.
    pub name: String,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// Hooks called as queries run, like Spark's `StreamingQueryListener`; register one with
/// [`EngineBuilder::listener`](crate::EngineBuilder::listener). They are called on the
/// query's own task, between batches: keep them quick (hand slow work to a channel).
pub trait QueryListener: Send + Sync + Debug {
    /// A query started (before its first batch).
    fn on_query_started(&self, _event: &QueryStarted) {}
    /// A batch of query `name` committed.
    fn on_query_progress(&self, _name: &str, _progress: &BatchProgress) {}
    /// A query stopped or failed.
    fn on_query_terminated(&self, _event: &QueryTerminated) {}
    /// Sink `name` was dropped (`DROP SINK`), and with it its ended query: what was kept for
    /// that query (metric series, say) can go.
    fn on_sink_dropped(&self, _name: &str) {}
}

/// Shared status of a query: state, recent progress, output subscribers and listeners.
#[derive(Debug)]
pub struct QueryStatus {
    name: String,
    inner: Mutex<StatusInner>,
    listeners: Vec<Arc<dyn QueryListener>>,
}

#[derive(Debug)]
struct StatusInner {
    state: QueryState,
    history: VecDeque<BatchProgress>,
    /// Batches run since the query started (the history keeps only the last ones).
    batches_run: u64,
    /// Each committed batch's output goes to subscribers; dropped when the query ends, which
    /// ends their streams.
    outputs: Option<broadcast::Sender<Arc<QueryOutput>>>,
    /// The last batch's physical plan with its operators' metrics.
    last_plan: Option<String>,
}

impl QueryStatus {
    /// The status of a starting query `name`.
    pub fn new(name: &str, listeners: Vec<Arc<dyn QueryListener>>) -> Self {
        Self {
            name: name.to_string(),
            inner: Mutex::new(StatusInner {
                state: QueryState::Running,
                history: VecDeque::new(),
                batches_run: 0,
                outputs: Some(broadcast::channel(SUBSCRIBER_BUFFER).0),
                last_plan: None,
            }),
            listeners,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StatusInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the listeners the query started.
    pub fn started(&self, sql: &str) {
        let event = QueryStarted {
            name: self.name.clone(),
            sql: sql.to_string(),
        };
        for listener in &self.listeners {
            listener.on_query_started(&event);
        }
    }

    /// Records a finished batch.
    pub fn record(&self, progress: BatchProgress) {
        for listener in &self.listeners {
            listener.on_query_progress(&self.name, &progress);
        }
        let mut inner = self.lock();
        if inner.history.len() == HISTORY {
            inner.history.pop_front();
        }
        inner.history.push_back(progress);
        inner.batches_run += 1;
    }

    /// Whether anyone subscribed to the output (so a batch's rows are worth keeping).
    pub fn has_subscribers(&self) -> bool {
        self.lock()
            .outputs
            .as_ref()
            .is_some_and(|tx| tx.receiver_count() > 0)
    }

    /// Hands a committed batch's output to the subscribers.
    pub fn publish(&self, output: QueryOutput) {
        if let Some(tx) = &self.lock().outputs {
            // No receiver left is fine: nobody is watching.
            tx.send(Arc::new(output)).ok();
        }
    }

    /// A receiver of the output of the batches committed from now on (none once the query
    /// ended).
    pub fn subscribe(&self) -> Option<broadcast::Receiver<Arc<QueryOutput>>> {
        self.lock()
            .outputs
            .as_ref()
            .map(broadcast::Sender::subscribe)
    }

    /// Keeps the last batch's plan with metrics.
    pub fn set_last_plan(&self, plan: String) {
        self.lock().last_plan = Some(plan);
    }

    /// The last batch's physical plan with its operators' metrics.
    pub fn last_plan(&self) -> Option<String> {
        self.lock().last_plan.clone()
    }

    /// Sets the state; an ended query closes its subscribers' streams and tells the
    /// listeners.
    pub fn set_state(&self, state: QueryState) {
        let ended = match &state {
            QueryState::Running => None,
            QueryState::Stopped => Some(None),
            QueryState::Failed(error) => Some(Some(error.clone())),
        };
        {
            let mut inner = self.lock();
            inner.state = state;
            if ended.is_some() {
                inner.outputs = None;
            }
        }
        if let Some(error) = ended {
            let event = QueryTerminated {
                name: self.name.clone(),
                error,
            };
            for listener in &self.listeners {
                listener.on_query_terminated(&event);
            }
        }
    }

    /// The state.
    pub fn state(&self) -> QueryState {
        self.lock().state.clone()
    }

    /// The last batch's progress.
    pub fn last(&self) -> Option<BatchProgress> {
        self.lock().history.back().cloned()
    }

    /// How many batches the query has run since it started.
    pub fn batches_run(&self) -> u64 {
        self.lock().batches_run
    }

    /// Up to the last 100 batches' progress, oldest first.
    pub fn recent(&self) -> Vec<BatchProgress> {
        self.lock().history.iter().cloned().collect()
    }
}
