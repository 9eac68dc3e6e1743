//! `weir._internal`: the engine as a CPython extension module, under the small pure-Python API
//! of `python/weir/`. This module owns the bridge: one Tokio runtime for every engine of the
//! process, waiting on it with the GIL released (and Ctrl-C still heard), and Weir's errors as
//! the Python exception `weir.WeirError`. Rows cross as Arrow through the C data interface,
//! without a copy.

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

/// Runs `work` to the end with the GIL released, so that other Python threads and the
/// engine's Python UDFs run meanwhile. Every [`SIGNAL_CHECK`] it takes the GIL back to see
/// whether Python has a signal to raise (KeyboardInterrupt); if so, `work` is dropped.
fn wait<F>(py: Python<'_>, work: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    wait_for(py, work, None)?.ok_or_else(|| WeirError::new_err("timed out"))
}

/// As [`wait`], but gives up after `limit` (None: the work did not end in time).
fn wait_for<F>(py: Python<'_>, work: F, limit: Option<Duration>) -> PyResult<Option<F::Output>>
where
    F: Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        return Err(WeirError::new_err(
            "the engine cannot be called from inside a UDF or another engine callback",
        ));
    }
    let deadline = limit.map(|limit| tokio::time::Instant::now() + limit);
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
