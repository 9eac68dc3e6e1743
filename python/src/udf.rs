//! Python scalar UDFs: a Python callable registered as a DataFusion scalar function. Each call
//! gets a whole batch's argument columns as `pyarrow.Array`s (no copy) and returns one array of
//! the declared type and length (or anything `pyarrow.array` takes, converted to that type).
//! The function runs on the engine's threads with the GIL taken for the call, so it works in
//! continuous queries as in ad hoc ones; its exception fails the batch with the function's
//! name and the exception's text.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use arrow::array::{Array, ArrayData, ArrayRef, make_array};
use arrow::datatypes::DataType;
use arrow_pyarrow::{FromPyArrow, ToPyArrow};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
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
    ScalarUDF::new_from_impl(PythonUdf {
        name: name.to_string(),
        signature: Signature::exact(input_types, volatility),
        return_type,
        function: Arc::new(function),
    })
}

/// A Python function as a DataFusion scalar UDF.
#[derive(Debug)]
struct PythonUdf {
    name: String,
    signature: Signature,
    return_type: DataType,
    function: Arc<Py<PyAny>>,
}

// The same function object under the same name and signature is the same UDF.
impl PartialEq for PythonUdf {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.signature == other.signature
            && self.return_type == other.return_type
            && self.function.as_ptr() == other.function.as_ptr()
    }
}

impl Eq for PythonUdf {}

impl Hash for PythonUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.signature.hash(state);
        self.return_type.hash(state);
        (self.function.as_ptr() as usize).hash(state);
    }
}

impl ScalarUDFImpl for PythonUdf {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(self.return_type.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        // Constant arguments to a function that gives the same result for the same arguments
        // make one call of one row; otherwise every row gets its own value (a volatile
        // function of constants is still called for each row).
        let once = self.signature.volatility != Volatility::Volatile
            && args
                .args
                .iter()
                .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let rows = if once { 1 } else { args.number_rows };
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<Vec<_>>>()?;
        let result = Python::attach(|py| {
            call(py, &self.function, &arrays, &self.return_type, rows)
                .map_err(|e| described(py, &e))
        })
        .map_err(|e| DataFusionError::Execution(format!("Python UDF '{}': {e}", self.name)))?;
        if once {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &result, 0,
            )?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

/// A Python exception as text: its type and message, then where it was raised.
fn described(py: Python<'_>, error: &PyErr) -> String {
    let traceback = error
        .traceback(py)
        .and_then(|t| t.format().ok())
        .map(|t| format!("\n{}", t.trim_end()))
        .unwrap_or_default();
    format!("{error}{traceback}")
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
    crate::tables::cast_exactly(&array, return_type).map_err(|e| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "returned {} where {return_type} was declared, and it does not cast: {e}",
            array.data_type()
        ))
    })
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
