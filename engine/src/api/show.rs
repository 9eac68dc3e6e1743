//! Rows for `SHOW`, `DESCRIBE` and `EXPLAIN`.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use weir_sql::{ShowKind, StreamingPlan};

use super::catalog::Catalog;
use crate::error::{Result, WeirError};
use crate::runtime::QueryState;

/// A table of text columns.
fn text_table(columns: &[&str], rows: Vec<Vec<String>>) -> Result<Vec<RecordBatch>> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r[i].as_str()),
            )) as ArrayRef
        })
        .collect();
    RecordBatch::try_new(schema, arrays)
        .map(|b| vec![b])
        .map_err(|e| WeirError::Internal(format!("building a result table: {e}")))
}

fn connector(options: &weir_sql::catalog::Options) -> String {
    options.get("connector").cloned().unwrap_or_default()
}

/// `SHOW SOURCES | TABLES | VIEWS | SINKS | QUERIES`.
pub(super) fn show(catalog: &Catalog, kind: ShowKind) -> Result<Vec<RecordBatch>> {
    match kind {
        ShowKind::Sources => text_table(
            &["name", "connector", "watermark"],
            catalog
                .sources
                .values()
                .map(|s| {
                    let watermark = s.desc.watermark.as_ref().map_or(String::new(), |w| {
                        format!("{} - {}", w.column, humantime::format_duration(w.delay))
                    });
                    vec![s.desc.name.clone(), connector(&s.desc.options), watermark]
                })
                .collect(),
        ),
        ShowKind::Tables => text_table(
            &["name", "connector", "rows"],
            catalog
                .tables
                .values()
                .map(|t| {
                    vec![
                        t.desc.name.clone(),
                        connector(&t.desc.options),
                        t.rows.to_string(),
                    ]
                })
                .collect(),
        ),
        ShowKind::Views => text_table(
            &["name", "query"],
            catalog
                .views
                .values()
                .map(|v| vec![v.name.clone(), v.query.clone()])
                .collect(),
        ),
        ShowKind::Sinks => text_table(
            &["name", "connector", "query"],
            catalog
                .sinks
                .values()
                .map(|s| {
                    let state = catalog
                        .queries
                        .get(&s.desc.name)
                        .map_or("none".to_string(), |q| state_text(&q.state()));
                    vec![s.desc.name.clone(), connector(&s.desc.options), state]
                })
                .collect(),
        ),
        ShowKind::Queries => text_table(
            &[
                "name",
                "state",
                "batches",
                "last_batch",
                "input_rows",
                "rows_per_second",
                "sources",
            ],
            catalog
                .queries
                .values()
                .map(|q| {
                    let recent = q.recent_progress();
                    let last = recent.last();
                    vec![
                        q.name().to_string(),
                        state_text(&q.state()),
                        recent.len().to_string(),
                        last.map_or(String::new(), |p| p.batch_id.to_string()),
                        last.map_or(String::new(), |p| p.input_rows.to_string()),
                        last.map_or(String::new(), |p| {
                            format!("{:.0}", p.processed_rows_per_second)
                        }),
                        q.sources().join(", "),
                    ]
                })
                .collect(),
        ),
    }
}

fn state_text(state: &QueryState) -> String {
    match state {
        QueryState::Running => "running".to_string(),
        QueryState::Stopped => "stopped".to_string(),
        QueryState::Failed(e) => format!("failed: {e}"),
    }
}

/// `DESCRIBE name`: columns, types, nullability, and the watermark of a source.
pub(super) fn describe(catalog: &Catalog, name: &str) -> Result<Vec<RecordBatch>> {
    let (schema, watermark): (SchemaRef, _) = if let Some(source) = catalog.sources.get(name) {
        (Arc::clone(&source.schema), source.desc.watermark.clone())
    } else if let Some(table) = catalog.tables.get(name) {
        (Arc::clone(&table.schema), None)
    } else {
        return Err(WeirError::Plan(format!(
            "DESCRIBE takes a source or table; '{name}' is neither"
        )));
    };
    let rows = schema
        .fields()
        .iter()
        .map(|f| {
            let mark =
                watermark
                    .as_ref()
                    .filter(|w| &w.column == f.name())
                    .map_or(String::new(), |w| {
                        format!(
                            "watermark {} - {}",
                            w.column,
                            humantime::format_duration(w.delay)
                        )
                    });
            vec![
                f.name().clone(),
                f.data_type().to_string(),
                if f.is_nullable() { "YES" } else { "NO" }.to_string(),
                mark,
            ]
        })
        .collect();
    text_table(&["column_name", "data_type", "is_nullable", "notes"], rows)
}

/// `EXPLAIN query`: the plan each micro-batch runs, and the streams it reads.
pub(super) fn explain(plan: &StreamingPlan) -> Result<Vec<RecordBatch>> {
    let rows = vec![
        vec!["streaming sources".to_string(), plan.sources.join(", ")],
        vec![
            "per-batch plan".to_string(),
            plan.logical_plan.display_indent().to_string(),
        ],
    ];
    text_table(&["plan_type", "plan"], rows)
}
