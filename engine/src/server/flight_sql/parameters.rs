//! Bound parameters of a Flight SQL prepared statement: each placeholder `$n` of the
//! statement's text is replaced by the SQL literal of column n of the one row the client bound
//! (`DoPut`). Placeholders are found with sqlparser's tokenizer, so a `$1` inside a string
//! literal or a comment stays as written.

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::array_value_to_string;
use sqlparser::dialect::GenericDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// `sql` with its placeholders `$1`, `$2`, … replaced by the values of the one row of
/// `parameters`, or why they cannot be.
pub(super) fn bind(sql: &str, parameters: &RecordBatch) -> Result<String, String> {
    if parameters.num_rows() != 1 {
        return Err(format!(
            "a prepared statement takes one row of parameters, and {} were bound; run it once \
             per row",
            parameters.num_rows()
        ));
    }
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| format!("cannot read the statement's placeholders: {e}"))?;
    let mut bound = String::with_capacity(sql.len());
    for token in tokens {
        match &token {
            Token::Placeholder(name) if name.starts_with('$') => {
                let index: usize = name[1..]
                    .parse()
                    .ok()
                    .filter(|i| *i >= 1)
                    .ok_or_else(|| format!("placeholder {name} is not $1, $2, …"))?;
                let column = parameters.columns().get(index - 1).ok_or_else(|| {
                    format!(
                        "placeholder {name} has no value: {} parameter(s) were bound",
                        parameters.num_columns()
                    )
                })?;
                bound.push_str(&literal(column.as_ref())?);
            }
            other => bound.push_str(&other.to_string()),
        }
    }
    Ok(bound)
}

/// Row 0 of `column` as a SQL literal.
fn literal(column: &dyn Array) -> Result<String, String> {
    if column.is_null(0) {
        return Ok("NULL".to_string());
    }
    let text = array_value_to_string(column, 0).map_err(|e| e.to_string())?;
    let quoted = || format!("'{}'", text.replace('\'', "''"));
    Ok(match column.data_type() {
        DataType::Boolean => text.to_uppercase(),
        t if t.is_integer() || t.is_floating() || matches!(t, DataType::Decimal128(..)) => text,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => quoted(),
        DataType::Date32 | DataType::Date64 => format!("DATE {}", quoted()),
        DataType::Timestamp(..) => format!("TIMESTAMP {}", quoted()),
        other => return Err(format!("a parameter of type {other} cannot be bound yet")),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BooleanArray, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn placeholders_take_the_bound_values_as_literals() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
            Field::new("c", DataType::Boolean, true),
        ]);
        let row = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![5])),
                Arc::new(StringArray::from(vec!["it's"])),
                Arc::new(BooleanArray::from(vec![None])),
            ],
        )
        .expect("a row");
        assert_eq!(
            bind(
                "SELECT '$1' AS kept, x FROM t WHERE a > $1 AND b = $2 OR c IS $3",
                &row
            )
            .expect("bound"),
            "SELECT '$1' AS kept, x FROM t WHERE a > 5 AND b = 'it''s' OR c IS NULL"
        );
        assert_eq!(
            bind("SELECT $4", &row).expect_err("too few"),
            "placeholder $4 has no value: 3 parameter(s) were bound"
        );
    }
}
