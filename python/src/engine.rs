//! `Engine` for Python: runs statements, starts queries, answers queries as `pyarrow.Table`s,
//! feeds memory sources from Arrow data, and registers Python scalar UDFs. Every call that
//! works waits with the GIL released.

use arrow::datatypes::DataType;
use arrow_pyarrow::{PyArrowType, Table};
use pyo3::prelude::*;
use weir::{Engine, Outcome};

use crate::query::PyStreamingQuery;
use crate::tables::{conform, to_pyarrow_table};
use crate::udf::{python_udf, volatility};
use crate::{WeirError, run, runtime, to_py};

/// The Weir engine: a catalog of sources, tables, views and sinks, and the continuous queries
/// running over them.
#[pyclass(frozen, name = "Engine", module = "weir._internal")]
pub struct PyEngine {
    engine: Engine,
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (*, checkpoint_root=None, target_partitions=None, state_partitions=None, memory_limit=None))]
    fn new(
        checkpoint_root: Option<std::path::PathBuf>,
        target_partitions: Option<usize>,
        state_partitions: Option<usize>,
        memory_limit: Option<usize>,
    ) -> PyResult<Self> {
        let mut builder = Engine::builder();
        if let Some(root) = checkpoint_root {
            builder = builder.checkpoint_root(root);
        }
        if let Some(partitions) = target_partitions {
            builder = builder.target_partitions(partitions);
        }
        if let Some(partitions) = state_partitions {
            builder = builder.state_partitions(partitions);
        }
        if let Some(bytes) = memory_limit {
            builder = builder.memory_limit(bytes);
        }
        let _entered = runtime().enter();
        Ok(Self {
            engine: builder.build().map_err(to_py)?,
        })
    }

    /// Runs every statement of `sql` in order, stopping at the first error. One result per
    /// statement: a `pyarrow.Table` of rows, a `StreamingQuery` it started, or the text of
    /// what it did.
    fn execute(&self, py: Python<'_>, sql: &str) -> PyResult<Vec<Py<PyAny>>> {
        let engine = self.engine.clone();
        let sql = sql.to_string();
        let outcomes = run(py, async move { engine.execute(&sql).await })?.map_err(to_py)?;
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Done(text) => Ok(text.into_pyobject(py)?.into_any().unbind()),
                Outcome::Rows(rows) => to_pyarrow_table(py, rows, None),
                Outcome::Started(query) => {
                    Ok(Py::new(py, PyStreamingQuery::new(query))?.into_any())
                }
            })
            .collect()
    }

    /// Runs one `CREATE SINK ... AS SELECT` or `INSERT INTO <sink> SELECT` and returns the
    /// query it started.
    fn start(&self, py: Python<'_>, sql: &str) -> PyResult<PyStreamingQuery> {
        let engine = self.engine.clone();
        let sql = sql.to_string();
        let query = run(py, async move { engine.start(&sql).await })?.map_err(to_py)?;
        Ok(PyStreamingQuery::new(query))
    }

    /// Starts `select` as a query whose rows only go to its subscribers.
    fn watch(&self, py: Python<'_>, select: &str) -> PyResult<PyStreamingQuery> {
        let engine = self.engine.clone();
        let select = select.to_string();
        let query = run(py, async move { engine.watch(&select).await })?.map_err(to_py)?;
        Ok(PyStreamingQuery::new(query))
    }

    /// Runs one ad hoc query (or SHOW / DESCRIBE / EXPLAIN): its rows as a `pyarrow.Table`.
    fn sql(&self, py: Python<'_>, sql: &str) -> PyResult<Py<PyAny>> {
        let engine = self.engine.clone();
        let sql = sql.to_string();
        let rows = run(py, async move { engine.sql(&sql).await })?.map_err(to_py)?;
        to_pyarrow_table(py, rows, None)
    }

    /// Appends the rows of `data` (anything with `__arrow_c_stream__`) to the memory source
    /// `source`, all visible to its queries at once. Returns how many rows were appended.
    fn insert(&self, py: Python<'_>, source: &str, data: PyArrowType<Table>) -> PyResult<usize> {
        let stream = self
            .engine
            .connectors()
            .memory_stream(source)
            .ok_or_else(|| {
                WeirError::new_err(format!(
                    "there is no memory source named '{source}'; create one with CREATE SOURCE \
                 {source} (...) WITH (connector = 'memory')"
                ))
            })?;
        let schema = stream.schema();
        let batch = py
            .detach(|| conform(source, data.0, &schema))
            .map_err(WeirError::new_err)?;
        let rows = batch.num_rows();
        if rows > 0 {
            stream
                .append(batch)
                .map_err(|e| WeirError::new_err(e.to_string()))?;
        }
        Ok(rows)
    }

    /// A running or ended query by name.
    fn query(&self, py: Python<'_>, name: &str) -> PyResult<Option<PyStreamingQuery>> {
        let engine = self.engine.clone();
        let name = name.to_string();
        let query = run(py, async move { engine.query(&name).await })?;
        Ok(query.map(PyStreamingQuery::new))
    }

    /// Every query this engine started.
    fn queries(&self, py: Python<'_>) -> PyResult<Vec<PyStreamingQuery>> {
        let engine = self.engine.clone();
        let queries = run(py, async move { engine.queries().await })?;
        Ok(queries.into_iter().map(PyStreamingQuery::new).collect())
    }

    /// Stops every running query gracefully; a query that had failed stops quietly.
    fn stop_all(&self, py: Python<'_>) -> PyResult<()> {
        let engine = self.engine.clone();
        for query in run(py, async move { engine.queries().await })? {
            crate::query::stop(py, &query)?;
        }
        Ok(())
    }

    /// Registers `function` as the scalar function `name(input_types...) -> return_type`.
    fn register_udf(
        &self,
        name: &str,
        function: Py<PyAny>,
        input_types: Vec<PyArrowType<DataType>>,
        return_type: PyArrowType<DataType>,
        volatility_name: &str,
    ) -> PyResult<()> {
        if input_types.is_empty() {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "UDF '{name}' takes no arguments; a Python UDF needs at least one column"
            )));
        }
        let inputs = input_types.into_iter().map(|t| t.0).collect();
        let udf = python_udf(
            name,
            function,
            inputs,
            return_type.0,
            volatility(volatility_name)?,
        );
        self.engine.register_udf(udf);
        Ok(())
    }
}
