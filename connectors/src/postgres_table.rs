//! Static tables read from PostgreSQL (`CREATE TABLE ... WITH (connector = 'postgres')`): a
//! table or view read whole with one `SELECT`, for ad hoc queries and stream-static joins.
//!
//! Columns map to Arrow by their PostgreSQL type: `smallint`, `integer`, `bigint`, `real`,
//! `double precision`, `boolean`, the text types (`text`, `varchar`, `char`, `name`),
//! `timestamp` and `timestamptz` (microseconds; `timestamptz` in UTC) and `date`. Any other
//! type (`numeric`, `uuid`, `json`, arrays, ...) is read as its text. A declared column list
//! picks and types the columns instead (each cast by PostgreSQL's rules, so a declared
//! `DOUBLE` over a `numeric` column reads numbers).

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float32Builder, Float64Builder, Int16Builder,
    Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, Row};

use crate::error::{ConnectorError, Result};
use crate::options::{ConnectorOptions, OptionSpec};

/// Options of a static `postgres` table.
pub const POSTGRES_TABLE_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "url",
        help: "the database, as postgres://user[:password]@host[:port]/database; required",
    },
    OptionSpec {
        key: "table",
        help: "the table or view to read, optionally schema-qualified (schema.table); required",
    },
    OptionSpec {
        key: "timeout",
        help: "how long connecting and reading may take (default '30 seconds')",
    },
];

/// Double-quotes an identifier for SQL.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// How one column is read: the SQL expression selecting it, and its Arrow type.
struct ColumnRead {
    select: String,
    field: Field,
}

/// The Arrow type of a PostgreSQL type, and how to select it (`None`: read as text).
fn arrow_type(pg: &Type) -> Option<DataType> {
    Some(match *pg {
        Type::INT2 => DataType::Int16,
        Type::INT4 => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 => DataType::Float64,
        Type::BOOL => DataType::Boolean,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => DataType::Utf8,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::DATE => DataType::Date32,
        _ => return None,
    })
}

/// The SQL reading `column` (quoted) as `to`, in a form the reader decodes: times as
/// microseconds since the epoch, dates as days, anything else cast.
fn select_as(column: &str, to: &DataType) -> Result<String> {
    Ok(match to {
        DataType::Int16 => format!("{column}::int2"),
        DataType::Int32 => format!("{column}::int4"),
        DataType::Int64 => format!("{column}::int8"),
        DataType::Float32 => format!("{column}::float4"),
        DataType::Float64 => format!("{column}::float8"),
        DataType::Boolean => format!("{column}::bool"),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => format!("{column}::text"),
        DataType::Timestamp(..) => {
            format!("(extract(epoch from {column}::timestamptz) * 1000000)::int8")
        }
        DataType::Date32 => format!("({column}::date - date '1970-01-01')::int4"),
        other => {
            return Err(ConnectorError::Config(format!(
                "a postgres table cannot read a column as {other}; declare it as BIGINT, INT, \
                 SMALLINT, DOUBLE, REAL, BOOLEAN, VARCHAR, TIMESTAMP or DATE"
            )));
        }
    })
}

/// Reads the table of `options` whole; with `declared`, those columns as those types.
pub async fn read_postgres_table(
    declared: Option<SchemaRef>,
    options: &ConnectorOptions,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let url = options.required("url")?;
    url.parse::<tokio_postgres::Config>()
        .map_err(|e| options.bad_value("url", "<the url>", &format!("a postgres:// URL ({e})")))?;
    let target = options.required("table")?.trim().to_string();
    let table = target.split('.').map(quote).collect::<Vec<_>>().join(".");
    let timeout = options
        .duration("timeout")?
        .unwrap_or(Duration::from_secs(30));
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        ConnectorError::io(
            format!(
                "postgres table '{target}' of table '{}' ({what})",
                options.object()
            ),
            std::io::Error::other(e.to_string()),
        )
    };
    let read = async {
        let client = connect(url).await.map_err(|e| failed("connecting", &e))?;
        let columns = columns(&client, &table, declared.as_deref())
            .await
            .map_err(|e| failed("reading its columns", &e))?;
        let columns = columns?;
        let list: Vec<&str> = columns.iter().map(|c| c.select.as_str()).collect();
        let rows = client
            .query(&format!("SELECT {} FROM {table}", list.join(", ")), &[])
            .await
            .map_err(|e| failed("reading its rows", &e))?;
        let schema = Arc::new(Schema::new(
            columns.into_iter().map(|c| c.field).collect::<Vec<_>>(),
        ));
        let batch = to_batch(&schema, &rows)?;
        Ok::<_, ConnectorError>((schema, vec![batch]))
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| failed("no answer", &format!("timed out after {timeout:?}")))?
}

async fn connect(url: &str) -> std::result::Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("postgres table connection ended: {e}");
        }
    });
    Ok(client)
}

/// How to read each column: the table's own (by its types), or the declared ones.
async fn columns(
    client: &Client,
    table: &str,
    declared: Option<&Schema>,
) -> std::result::Result<Result<Vec<ColumnRead>>, tokio_postgres::Error> {
    let statement = client
        .prepare(&format!("SELECT * FROM {table} LIMIT 0"))
        .await?;
    let found = statement.columns();
    let reads = match declared {
        Some(schema) => schema
            .fields()
            .iter()
            .map(|field| {
                let Some(column) = found.iter().find(|c| c.name() == field.name()) else {
                    let names: Vec<&str> = found.iter().map(|c| c.name()).collect();
                    return Err(ConnectorError::Config(format!(
                        "the postgres table has no column '{}' (it has {})",
                        field.name(),
                        names.join(", ")
                    )));
                };
                Ok(ColumnRead {
                    select: select_as(&quote(column.name()), field.data_type())?,
                    field: Field::new(field.name(), field.data_type().clone(), true),
                })
            })
            .collect(),
        None => found
            .iter()
            .map(|column| {
                let to = arrow_type(column.type_()).unwrap_or(DataType::Utf8);
                Ok(ColumnRead {
                    select: select_as(&quote(column.name()), &to)?,
                    field: Field::new(column.name(), to, true),
                })
            })
            .collect(),
    };
    Ok(reads)
}

/// The rows as one record batch of `schema` (each column selected by [`select_as`]).
fn to_batch(schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch> {
    let bad = |e: &dyn std::fmt::Display| {
        ConnectorError::Internal(format!("decoding a postgres row: {e}"))
    };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        macro_rules! column {
            ($builder:ty, $rust:ty) => {{
                let mut builder = <$builder>::with_capacity(rows.len());
                for row in rows {
                    builder.append_option(row.try_get::<_, Option<$rust>>(i).map_err(|e| bad(&e))?);
                }
                Arc::new(builder.finish()) as ArrayRef
            }};
        }
        let array = match field.data_type() {
            DataType::Int16 => column!(Int16Builder, i16),
            DataType::Int32 => column!(Int32Builder, i32),
            DataType::Int64 => column!(Int64Builder, i64),
            DataType::Float32 => column!(Float32Builder, f32),
            DataType::Float64 => column!(Float64Builder, f64),
            DataType::Boolean => column!(BooleanBuilder, bool),
            DataType::Date32 => column!(Date32Builder, i32),
            DataType::Timestamp(_, zone) => {
                let mut builder = TimestampMicrosecondBuilder::with_capacity(rows.len());
                for row in rows {
                    builder.append_option(row.try_get::<_, Option<i64>>(i).map_err(|e| bad(&e))?);
                }
                let micros: ArrayRef = Arc::new(builder.finish().with_timezone_opt(zone.clone()));
                arrow::compute::cast(&micros, field.data_type()).map_err(|e| bad(&e))?
            }
            _ => {
                let mut builder = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
                for row in rows {
                    builder.append_option(row.try_get::<_, Option<&str>>(i).map_err(|e| bad(&e))?);
                }
                let strings: ArrayRef = Arc::new(builder.finish());
                arrow::compute::cast(&strings, field.data_type()).map_err(|e| bad(&e))?
            }
        };
        columns.push(array);
    }
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len())),
    )
    .map_err(|e| bad(&e))
}
