//! `StreamingQuery` and `Subscription`: a running continuous query's handle, and the live feed
//! of its committed batches, for Python.

use std::sync::{Mutex, TryLockError};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use pyo3::exceptions::{PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use weir::{QueryOutput, QueryState, StreamingQuery};

use crate::tables::to_pyarrow_table;
use crate::{run, to_py, wait_for};

/// The handle of a running (or ended) continuous query.
#[pyclass(frozen, name = "StreamingQuery", module = "weir._internal")]
pub struct PyStreamingQuery {
    query: StreamingQuery,
}

impl PyStreamingQuery {
    pub fn new(query: StreamingQuery) -> Self {
        Self { query }
    }
}

#[pymethods]
impl PyStreamingQuery {
    /// The query's name (its sink's).
    #[getter]
    fn name(&self) -> &str {
        self.query.name()
    }

    /// The streaming sources it reads.
    #[getter]
    fn sources(&self) -> Vec<String> {
        self.query.sources().to_vec()
    }

    /// `running`, `stopped` or `failed`.
    #[getter]
    fn state(&self) -> &'static str {
        match self.query.state() {
            QueryState::Running => "running",
            QueryState::Stopped => "stopped",
            QueryState::Failed(_) => "failed",
        }
    }

    #[getter]
    fn is_active(&self) -> bool {
        self.query.is_active()
    }

    #[getter]
    fn last_error(&self) -> Option<String> {
        self.query.last_error()
    }

    #[getter]
    fn batches_run(&self) -> u64 {
        self.query.batches_run()
    }

    #[getter]
    fn last_plan(&self) -> Option<String> {
        self.query.last_plan()
    }

    /// The last batch's progress as JSON in Spark's `StreamingQueryProgress` shape.
    fn progress_json(&self) -> Option<String> {
        let progress = self.query.progress()?;
        Some(weir::runtime::spark_progress(self.query.name(), &progress).to_string())
    }

    /// Up to the last 100 batches' progress, oldest first, as one JSON array.
    fn recent_progress_json(&self) -> String {
        let name = self.query.name();
        let all: Vec<_> = self
            .query
            .recent_progress()
            .iter()
            .map(|p| weir::runtime::spark_progress(name, p))
            .collect();
        serde_json::Value::Array(all).to_string()
    }

    /// Stops the query gracefully: the batch in flight finishes and is committed.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        stop(py, &self.query)
    }

    /// Waits for the query to end (at most `timeout` seconds): whether it ended. Raises the
    /// query's error if it failed.
    #[pyo3(signature = (timeout=None))]
    fn await_termination(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let limit = timeout.map(seconds).transpose()?;
        let query = self.query.clone();
        match wait_for(py, async move { query.await_termination().await }, limit)? {
            Some(ended) => ended.map(|()| true).map_err(to_py),
            None => Ok(false),
        }
    }

    /// Runs batches until everything its sources hold now is processed.
    fn process_all_available(&self, py: Python<'_>) -> PyResult<()> {
        let query = self.query.clone();
        run(py, async move { query.process_all_available().await })?.map_err(to_py)
    }

    /// A feed of every batch committed from now on.
    fn subscribe(&self) -> PySubscription {
        PySubscription {
            outputs: Mutex::new(Some(self.query.subscribe())),
        }
    }
}

/// The rows of each batch a query commits, in order, from the moment of `subscribe()`.
#[pyclass(frozen, name = "Subscription", module = "weir._internal")]
pub struct PySubscription {
    /// None once the query has ended and the feed is drained.
    outputs: Mutex<Option<BoxStream<'static, QueryOutput>>>,
}

#[pymethods]
impl PySubscription {
    /// The next committed batch as `(batch_id, pyarrow.Table)`, waiting at most `timeout`
    /// seconds (TimeoutError); None once the query has ended.
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<(u64, Py<PyAny>)>> {
        let limit = timeout.map(seconds).transpose()?;
        // Never waited for with the GIL held: that would deadlock with the reader, which
        // takes the GIL back while it holds the lock.
        let mut guard = match self.outputs.try_lock() {
            Ok(guard) => guard,
            // A reader that panicked left the feed itself intact.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(PyValueError::new_err(
                    "another thread is reading this subscription; give each its own",
                ));
            }
        };
        let Some(outputs) = guard.as_mut() else {
            return Ok(None);
        };
        match wait_for(py, outputs.next(), limit)? {
            None => Err(PyTimeoutError::new_err(format!(
                "no batch was committed within {} s",
                timeout.unwrap_or_default()
            ))),
            Some(None) => {
                guard.take();
                Ok(None)
            }
            Some(Some(output)) => {
                let table = to_pyarrow_table(py, output.rows, Some(output.schema))?;
                Ok(Some((output.batch_id.0, table)))
            }
        }
    }
}

/// Stops `query`. As in Spark, a query that had already failed stops quietly: its error is
/// for `await_termination` and `last_error`, not for whoever cleans up.
pub fn stop(py: Python<'_>, query: &StreamingQuery) -> PyResult<()> {
    let stopping = query.clone();
    match run(py, async move { stopping.stop().await })? {
        Err(_) if matches!(query.state(), QueryState::Failed(_)) => Ok(()),
        stopped => stopped.map_err(to_py),
    }
}

fn seconds(value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("timeout {value} is not a number of seconds")))
}
