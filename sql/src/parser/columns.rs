//! Column lists of `CREATE SOURCE` / `CREATE TABLE`: SQL types to an Arrow schema (through
//! DataFusion's own type mapping, so `VARCHAR`, `TIMESTAMP`, `DECIMAL(p, s)` mean what they
//! mean in a DataFusion query) and the `WATERMARK FOR` clause.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::common::config::ConfigOptions;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::planner::ContextProvider;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, TableSource, WindowUDF};
use datafusion::sql::planner::SqlToRel;
use sqlparser::ast::{BinaryOperator, ColumnDef, DateTimeField, Expr, Interval, Value};

use crate::catalog::WatermarkDesc;
use crate::error::{Result, SqlError};

/// Converts declared columns to an Arrow schema with DataFusion's SQL type mapping.
pub fn columns_to_schema(columns: Vec<ColumnDef>) -> Result<SchemaRef> {
    let context = TypeOnlyContext::default();
    let planner = SqlToRel::new(&context);
    let schema: Schema = planner.build_schema(columns)?;
    let mut seen = std::collections::HashSet::new();
    for field in schema.fields() {
        if !seen.insert(field.name().clone()) {
            return Err(SqlError::Invalid(format!(
                "column '{}' is declared twice",
                field.name()
            )));
        }
    }
    Ok(Arc::new(schema))
}

/// Interprets `WATERMARK FOR column AS <expr>`: the expression must be the column itself or the
/// column minus a fixed interval (days, hours, minutes, seconds, milliseconds).
pub(crate) fn watermark_from_expr(column: String, expr: &Expr) -> Result<WatermarkDesc> {
    let bad = |why: &str| {
        SqlError::Invalid(format!(
            "unsupported watermark expression '{expr}': {why}; write \
             `WATERMARK FOR {column} AS {column} - INTERVAL '5' SECOND`"
        ))
    };
    let delay = match expr {
        Expr::Identifier(id) if normalize(id) == column => Duration::ZERO,
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } => {
            match left.as_ref() {
                Expr::Identifier(id) if normalize(id) == column => {}
                _ => return Err(bad("the left side must be the watermark column")),
            }
            match right.as_ref() {
                Expr::Interval(interval) => interval_to_duration(interval).map_err(|e| bad(&e))?,
                _ => return Err(bad("the right side must be an INTERVAL literal")),
            }
        }
        _ => return Err(bad("expected `column - INTERVAL ...`")),
    };
    Ok(WatermarkDesc { column, delay })
}

/// Normalizes an identifier the way DataFusion does: unquoted names are lower-cased.
pub(crate) fn normalize(ident: &sqlparser::ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

fn interval_to_duration(interval: &Interval) -> std::result::Result<Duration, String> {
    let text = match interval.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => s.clone(),
            other => return Err(format!("interval value {other} is not a string or number")),
        },
        other => return Err(format!("interval value {other} is not a literal")),
    };
    match &interval.leading_field {
        Some(field) => {
            let amount: f64 = text
                .trim()
                .parse()
                .map_err(|_| format!("interval amount '{text}' is not a number"))?;
            let unit_seconds = match field {
                DateTimeField::Day | DateTimeField::Days => 86_400.0,
                DateTimeField::Hour | DateTimeField::Hours => 3_600.0,
                DateTimeField::Minute | DateTimeField::Minutes => 60.0,
                DateTimeField::Second | DateTimeField::Seconds => 1.0,
                DateTimeField::Millisecond | DateTimeField::Milliseconds => 0.001,
                other => return Err(format!("interval unit {other} has no fixed length")),
            };
            duration_from_seconds(amount * unit_seconds)
        }
        // `INTERVAL '5 seconds'`, `INTERVAL '1 minute 30 seconds'`
        None => humantime::parse_duration(text.trim())
            .map_err(|e| format!("cannot read interval '{text}': {e}")),
    }
}

fn duration_from_seconds(seconds: f64) -> std::result::Result<Duration, String> {
    if !(seconds.is_finite() && seconds >= 0.0) {
        return Err("the delay must not be negative".to_string());
    }
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("the delay of {seconds} seconds is too long"))
}

/// A planner context with no tables or functions: enough for DataFusion to map SQL types.
#[derive(Default)]
struct TypeOnlyContext {
    options: ConfigOptions,
}

impl ContextProvider for TypeOnlyContext {
    fn get_table_source(
        &self,
        name: TableReference,
    ) -> datafusion::error::Result<Arc<dyn TableSource>> {
        Err(DataFusionError::Plan(format!(
            "no table '{name}' in a column list"
        )))
    }
    fn get_function_meta(&self, _name: &str) -> Option<Arc<ScalarUDF>> {
        None
    }
    fn get_higher_order_meta(
        &self,
        _name: &str,
    ) -> Option<Arc<datafusion::logical_expr::HigherOrderUDF>> {
        None
    }
    fn get_aggregate_meta(&self, _name: &str) -> Option<Arc<AggregateUDF>> {
        None
    }
    fn get_window_meta(&self, _name: &str) -> Option<Arc<WindowUDF>> {
        None
    }
    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }
    fn options(&self) -> &ConfigOptions {
        &self.options
    }
    fn udf_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn udaf_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn udwf_names(&self) -> Vec<String> {
        Vec::new()
    }
    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sqlparser::dialect::GenericDialect;
    use sqlparser::parser::Parser;

    fn watermark(sql: &str) -> Result<WatermarkDesc> {
        let expr = Parser::new(&GenericDialect {})
            .try_with_sql(sql)?
            .parse_expr()?;
        watermark_from_expr("ts".to_string(), &expr)
    }

    #[test]
    fn watermark_delays() {
        assert_eq!(
            watermark("ts - INTERVAL '5' SECOND").unwrap().delay,
            Duration::from_secs(5)
        );
        assert_eq!(
            watermark("ts - INTERVAL '2' MINUTE").unwrap().delay,
            Duration::from_secs(120)
        );
        assert_eq!(
            watermark("ts - INTERVAL '1.5 seconds'").unwrap().delay,
            Duration::from_millis(1500)
        );
        assert_eq!(watermark("ts").unwrap().delay, Duration::ZERO);
    }

    #[test]
    fn watermark_rejects_other_shapes() {
        let err = watermark("other - INTERVAL '5' SECOND")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("left side must be the watermark column"),
            "{err}"
        );
        let err = watermark("ts - INTERVAL '1' MONTH")
            .unwrap_err()
            .to_string();
        assert!(err.contains("no fixed length"), "{err}");
        let err = watermark("ts + 5").unwrap_err().to_string();
        assert!(err.contains("expected `column - INTERVAL"), "{err}");
    }
}
