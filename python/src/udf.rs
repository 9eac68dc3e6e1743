//! Python scalar UDFs: a Python callable registered as a DataFusion scalar function. Each call
//! gets a whole batch's argument columns as `pyarrow.Array`s (no copy) and returns one array of
//! the declared type and length (or anything `pyarrow.array` takes, converted to that type).
//! The function runs on the engine's threads with the GIL taken for the call, so it works in
//! continuous queries as in ad hoc ones; its exception fails the batch with the function's
//! name and the exception's text.

use std::sync::Arc;

use arrow::array::{Array, ArrayData, ArrayRef, make_array};
use arrow::datatypes::DataType;
use arrow::pyarrow::{FromPyArrow, ToPyArrow};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::scalar::ScalarValue;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// `function` as the scalar function `name(input_types...) -> return_type`.
pub fn python_udf(
    name: &str,
    function: Py<PyAny>,
    input_types: Vec<DataType>,
    return_type: DataType,
    volatility: Volatility,
) -> ScalarUDF {
    let udf_name = name.to_string();
    let returns = return_type.clone();
    let implementation = Arc::new(move |args: &[ColumnarValue]| -> DfResult<ColumnarValue> {
        let all_scalars = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(args)?;
        let rows = arrays.first().map_or(0, |a| a.len());
        let result = Python::attach(|py| call(py, &function, &arrays, &returns, rows))
            .map_err(|e| DataFusionError::Execution(format!("Python UDF '{udf_name}': {e}")))?;
        if all_scalars {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?));
        }
        Ok(ColumnarValue::Array(result))
    });
    create_udf(name, input_types, return_type, volatility, implementation)
}

/// One call: the columns in, the checked array out.
fn call(
    py: Python<'_>,
    function: &Py<PyAny>,
    arrays: &[ArrayRef],
    return_type: &DataType,
    rows: usize,
) -> PyResult<ArrayRef> {
    let arguments = arrays
        .iter()
        .map(|array| array.to_data().to_pyarrow(py))
        .collect::<PyResult<Vec<_>>>()?;
    let returned = function.bind(py).call1(PyTuple::new(py, arguments)?)?;
    let pyarrow = py.import("pyarrow")?;
    let returned = if returned.is_instance(&pyarrow.getattr("Array")?)? {
        returned
    } else if returned.is_instance(&pyarrow.getattr("ChunkedArray")?)? {
        returned.call_method0("combine_chunks")?
    } else {
        let options = PyDict::new(py);
        options.set_item("type", return_type.to_pyarrow(py)?)?;
        pyarrow.call_method("array", (returned,), Some(&options))?
    };
    let array = make_array(ArrayData::from_pyarrow_bound(&returned)?);
    if array.len() != rows {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "returned {} values for {rows} rows; return one value per row",
            array.len()
        )));
    }
    if array.data_type() != return_type {
        let strict = arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        };
        return arrow::compute::cast_with_options(&array, return_type, &strict).map_err(|e| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "returned {} where {return_type} was declared, and it does not cast: {e}",
                array.data_type()
            ))
        });
    }
    Ok(array)
}

/// The volatility a Python caller names: `immutable` (the default), `stable`, `volatile`.
pub fn volatility(name: &str) -> PyResult<Volatility> {
    match name.to_ascii_lowercase().as_str() {
        "immutable" => Ok(Volatility::Immutable),
        "stable" => Ok(Volatility::Stable),
        "volatile" => Ok(Volatility::Volatile),
        _ => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "volatility '{name}' is not one of immutable, stable, volatile"
        ))),
    }
}
