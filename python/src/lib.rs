//! `weir._internal`: the engine as a CPython extension module, under the small pure-Python API
//! of `python/weir/`. This module owns the bridge: one Tokio runtime for every engine of the
//! process, waiting on it with the GIL released (and Ctrl-C still heard), and Weir's errors as
//! the Python exception `weir.WeirError`. Rows cross as Arrow through the C data interface:
//! answers and UDF arguments without a copy (an insert of several chunks joins them into one
//! batch).

mod engine;
mod query;
mod tables;
mod udf;

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    weir,
    WeirError,
    PyException,
    "An error from the engine: bad SQL or options, a failed query, an unreachable service."
);

/// How often a wait wakes to let Python handle a signal (Ctrl-C in a shell or a notebook).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// The runtime every engine and query of this process runs on. Queries are tasks on it, so
/// they go on while Python does other things.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("weir")
            .enable_all()
            .build()
            .expect("the Tokio runtime starts")
    })
}

/// Runs `work` to the end on the engine's runtime with the GIL released, so that other
/// Python threads and the engine's Python UDFs run meanwhile. Every [`SIGNAL_CHECK`] it takes
/// the GIL back to see whether Python has a signal to raise (KeyboardInterrupt); if so, the
/// caller stops waiting but `work` runs on to its end, so that a statement is never left half
/// done (a sink created without its query).
fn run<F>(py: Python<'_>, work: F) -> PyResult<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    refuse_inside_the_engine()?;
    let task = runtime().spawn(work);
    match wait_for(py, task, None)? {
        Some(Ok(output)) => Ok(output),
        Some(Err(e)) => Err(WeirError::new_err(format!("the engine's task failed: {e}"))),
        None => Err(WeirError::new_err("timed out")),
    }
}

/// Waits for `work` (which borrows, so it stays with the caller) as [`run`] does, giving up
/// after `limit` (None: it did not end in time). Interrupted, `work` is dropped: only for
/// work that may stop anywhere (reading a feed, waiting for a query's end).
fn wait_for<F>(py: Python<'_>, work: F, limit: Option<Duration>) -> PyResult<Option<F::Output>>
where
    F: Future + Send,
    F::Output: Send,
{
    refuse_inside_the_engine()?;
    // A limit too far ahead to represent is no limit.
    let deadline = limit.and_then(|limit| tokio::time::Instant::now().checked_add(limit));
    let mut work = std::pin::pin!(work);
    loop {
        let step = SIGNAL_CHECK.min(deadline.map_or(SIGNAL_CHECK, |d| {
            d.saturating_duration_since(tokio::time::Instant::now())
        }));
        let done = py.detach(|| {
            runtime().block_on(async { tokio::time::timeout(step, &mut work).await.ok() })
        });
        if let Some(output) = done {
            return Ok(Some(output));
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Ok(None);
        }
        py.check_signals()?;
    }
}

/// A UDF runs on the engine's threads: waiting there for the engine would block it.
fn refuse_inside_the_engine() -> PyResult<()> {
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(WeirError::new_err(
            "the engine cannot be called from inside a UDF or another engine callback",
        ));
    }
    Ok(())
}

/// A Weir error as `weir.WeirError`, its message unchanged.
fn to_py(error: weir::WeirError) -> PyErr {
    WeirError::new_err(error.to_string())
}

#[pymodule]
fn _internal(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("WeirError", m.py().get_type::<WeirError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<engine::PyEngine>()?;
    m.add_class::<query::PyStreamingQuery>()?;
    m.add_class::<query::PySubscription>()?;
    Ok(())
}
