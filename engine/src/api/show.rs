//! Rows for `SHOW`, `SHOW PROGRESS`, `DESCRIBE`, `EXPLAIN` and `EXPLAIN ANALYZE`.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use weir_sql::{ShowKind, StreamingPlan};

use weir_sql::logical::{feeding_operator_ids, operator_watermark_lags, streaming_operators};

use super::catalog::Catalog;
use super::streaming_query::StreamingQuery;
use crate::error::{Result, WeirError};
use crate::event_time::EventTime;
use crate::runtime::{OperatorProgress, QueryState, watermark_text};

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
                "watermark",
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
                        q.batches_run().to_string(),
                        last.map_or(String::new(), |p| p.batch_id.to_string()),
                        last.map_or(String::new(), |p| p.input_rows.to_string()),
                        last.map_or(String::new(), |p| {
                            format!("{:.0}", p.processed_rows_per_second)
                        }),
                        last.map_or(String::new(), |p| {
                            watermark_text(p.watermark_ms.map(EventTime::from_ms))
                        }),
                        q.sources().join(", "),
                    ]
                })
                .collect(),
        ),
    }
}

/// `SHOW PROGRESS name`: the query's recent batches, oldest first.
pub(super) fn progress(query: &StreamingQuery) -> Result<Vec<RecordBatch>> {
    let rows = query
        .recent_progress()
        .iter()
        .map(|p| {
            let operators = |f: fn(&OperatorProgress) -> u64| {
                p.operators.iter().map(f).sum::<u64>().to_string()
            };
            vec![
                p.batch_id.to_string(),
                p.input_rows.to_string(),
                p.output_rows.to_string(),
                format!("{:.0}", p.processed_rows_per_second),
                p.durations.total.as_millis().to_string(),
                watermark_text(p.watermark_ms.map(EventTime::from_ms)),
                operators(|o| o.late_rows),
                operators(|o| o.state_rows),
                operators(|o| o.state_bytes),
                operators(|o| o.rows_evicted),
                operators(|o| o.time.as_millis() as u64),
                p.operators
                    .iter()
                    .map(operator_line)
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        })
        .collect();
    text_table(
        &[
            "batch",
            "input_rows",
            "output_rows",
            "rows_per_second",
            "duration_ms",
            "watermark",
            "late_rows",
            "state_rows",
            "state_bytes",
            "rows_evicted",
            "operator_ms",
            "operators",
        ],
        rows,
    )
}

/// One operator's figures in a batch, for `SHOW PROGRESS`'s `operators` column: its state,
/// its late rows (by input, for a join) and what it evicted and emitted.
fn operator_line(o: &OperatorProgress) -> String {
    let by_input = if o.late_rows_by_input.is_empty() {
        String::new()
    } else {
        let sides: Vec<String> = o
            .late_rows_by_input
            .iter()
            .map(|(input, n)| format!("{input} {n}"))
            .collect();
        format!(" ({})", sides.join(", "))
    };
    format!(
        "{}: state {} rows {} bytes, late {}{by_input}, evicted {}, emitted {}",
        o.operator_id, o.state_rows, o.state_bytes, o.late_rows, o.rows_evicted, o.rows_emitted
    )
}

/// `EXPLAIN ANALYZE name`: the last batch's physical plan with each operator's rows and time.
pub(super) fn explain_analyze(query: &StreamingQuery) -> Result<Vec<RecordBatch>> {
    let plan = query.last_plan().ok_or_else(|| {
        WeirError::Plan(format!(
            "query '{}' has not run a batch yet; try again once SHOW PROGRESS {} lists one",
            query.name(),
            query.name()
        ))
    })?;
    let batch = query
        .progress()
        .map_or(String::new(), |p| p.batch_id.to_string());
    text_table(&["batch", "plan_with_metrics"], vec![vec![batch, plan]])
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

/// `EXPLAIN query`: the streams it reads and their watermarks, its stateful operators with
/// their keys, the output modes it can run in, and the plan each micro-batch runs.
pub(super) fn explain(catalog: &Catalog, plan: &StreamingPlan) -> Result<Vec<RecordBatch>> {
    let watermarks: Vec<String> = plan
        .sources
        .iter()
        .filter_map(|name| {
            let watermark = catalog.sources.get(name)?.desc.watermark.as_ref()?;
            Some(format!(
                "{name}: {} - {}",
                watermark.column,
                humantime::format_duration(watermark.delay)
            ))
        })
        .collect();
    let operators = streaming_operators(&plan.logical_plan);
    let (operators, modes) = if operators.is_empty() {
        (
            "none: each batch's rows are independent".to_string(),
            "append, update (the same for a query without aggregation)".to_string(),
        )
    } else {
        let lags = operator_watermark_lags(&plan.logical_plan);
        let feeding = feeding_operator_ids(&plan.logical_plan);
        let describe = operators.iter().map(|o| {
            let id = o.operator_id();
            match lags.get(id) {
                Some(&lag) if lag > 0 => format!(
                    "{} (works with the watermark - {lag} ms: a join below it emits rows that \
                     far behind)",
                    o.describe()
                ),
                _ => o.describe(),
            }
        });
        let modes = operators.iter().map(|o| {
            if feeding.contains(o.operator_id()) {
                format!(
                    "{}: append, whatever the sink's mode (it feeds another stateful operator)",
                    o.operator_id()
                )
            } else {
                o.output_modes().summary
            }
        });
        (
            describe.collect::<Vec<_>>().join("; "),
            modes.collect::<Vec<_>>().join("; "),
        )
    };
    let rows = vec![
        vec!["streaming sources".to_string(), plan.sources.join(", ")],
        vec![
            "watermarks".to_string(),
            if watermarks.is_empty() {
                "none".to_string()
            } else {
                watermarks.join("; ")
            },
        ],
        vec!["stateful operators".to_string(), operators],
        vec!["output modes".to_string(), modes],
        vec![
            "per-batch plan".to_string(),
            plan.logical_plan.display_indent().to_string(),
        ],
    ];
    text_table(&["plan_type", "plan"], rows)
}
