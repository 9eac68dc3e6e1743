//! Window table functions: `TUMBLE(source, time_column, size)` in `FROM`, which adds the
//! columns `window_start` and `window_end` (`[start, end)`, aligned to the Unix epoch) to
//! every row, as Flink SQL and RisingWave do. `GROUP BY window_start, window_end` then
//! aggregates per window; when the time column is the source's watermark column, the window
//! end closes the window for append mode.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::metadata::FieldMetadata;
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, lit};
use weir_sql::logical::WINDOW_END_METADATA;

/// What a window function needs to know about a relation named in its first argument.
#[derive(Debug, Clone)]
pub(crate) struct WindowInput {
    pub provider: Arc<dyn TableProvider>,
    /// The source's watermark column, if it declares one.
    pub watermark_column: Option<String>,
}

/// The relations window functions can read, kept up to date by the engine's DDL.
pub(crate) type WindowInputs = Arc<RwLock<HashMap<String, WindowInput>>>;

/// `TUMBLE(source, time_column, size)`: fixed, non-overlapping windows.
#[derive(Debug)]
pub(crate) struct Tumble {
    pub inputs: WindowInputs,
}

impl TableFunctionImpl for Tumble {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let usage = "TUMBLE(source, time_column, INTERVAL 'size')";
        let [relation, time, size] = args.exprs() else {
            return plan_error(format!(
                "{usage} takes 3 arguments, got {}",
                args.exprs().len()
            ));
        };
        let relation = identifier(
            relation,
            usage,
            "the first argument must name a source or view",
        )?;
        let time = identifier(time, usage, "the second argument must name a time column")?;
        let size = interval(size, usage)?;
        let input = self
            .inputs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&relation)
            .cloned()
            .ok_or_else(|| {
                DataFusionError::Plan(format!("{usage}: no source or view named '{relation}'"))
            })?;
        let scan = LogicalPlanBuilder::scan(
            relation.as_str(),
            provider_as_source(Arc::clone(&input.provider)),
            None,
        )?;
        let schema = scan.schema().clone();
        let (_, time_field) = schema
            .qualified_field_with_unqualified_name(&time)
            .map_err(|_| {
                DataFusionError::Plan(format!("{usage}: '{relation}' has no column '{time}'"))
            })?;
        if !matches!(
            time_field.data_type(),
            datafusion::arrow::datatypes::DataType::Timestamp(..)
        ) {
            return plan_error(format!(
                "{usage}: column '{time}' is {}, not a TIMESTAMP",
                time_field.data_type()
            ));
        }
        let time_expr = Expr::Column(Column::from_name(&time));
        let origin = lit(ScalarValue::TimestampNanosecond(Some(0), None));
        let start = datafusion::functions::datetime::expr_fn::date_bin(
            lit(size.clone()),
            time_expr.clone(),
            origin,
        );
        let end = start.clone() + lit(size);
        let watermarked = input.watermark_column.as_deref() == Some(time.as_str());
        let marker = if watermarked {
            "watermarked"
        } else {
            "unwatermarked"
        };
        let metadata = FieldMetadata::from(HashMap::from([(
            WINDOW_END_METADATA.to_string(),
            marker.to_string(),
        )]));
        let mut columns: Vec<Expr> = schema.columns().into_iter().map(Expr::Column).collect();
        columns.push(start.alias("window_start"));
        columns.push(end.alias_with_metadata("window_end", Some(metadata)));
        let plan = scan.project(columns)?.build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

fn identifier(expr: &Expr, usage: &str, what: &str) -> Result<String> {
    match expr {
        Expr::Column(column) => Ok(column.name.clone()),
        other => plan_error(format!("{usage}: {what}, found {other}")),
    }
}

fn interval(expr: &Expr, usage: &str) -> Result<ScalarValue> {
    match expr {
        Expr::Literal(value @ ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
            if v.days == 0 && v.nanoseconds <= 0 {
                return plan_error(format!("{usage}: the size must be positive"));
            }
            Ok(value.clone())
        }
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(_)), _) => plan_error(format!(
            "{usage}: a size in months has no fixed length; use days or less"
        )),
        other => plan_error(format!(
            "{usage}: the size must be an INTERVAL literal, found {other}"
        )),
    }
}

fn plan_error<T>(message: String) -> Result<T> {
    Err(DataFusionError::Plan(message))
}
