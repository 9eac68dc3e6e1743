//! Window table functions: `TUMBLE(source, time_column, size)` and `HOP(source, time_column,
//! slide, size)` in `FROM`, which add the columns `window_start` and `window_end` (`[start,
//! end)`, aligned to the Unix epoch) to every row (one row per window it falls in), as Flink
//! SQL and RisingWave do. `GROUP BY window_start, window_end` then
//! aggregates per window; when the time column is the source's watermark column, the window
//! end closes the window for append mode.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::marker::{FixedWindow, HopMarker, WindowColumn};
use crate::logical::WINDOW_STARTS_COLUMN;
use datafusion::arrow::datatypes::TimeUnit;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::metadata::FieldMetadata;
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, lit};

use super::floor::window_floor;

/// What a window function needs to know about a relation named in its first argument.
#[derive(Debug, Clone)]
pub struct WindowInput {
    pub provider: Arc<dyn TableProvider>,
    /// The columns holding a source's watermarked event time: the source's watermark column,
    /// or, for a view, the columns that pass one through unchanged.
    pub watermark_columns: Vec<String>,
}

/// The relations window functions can read, kept up to date by the engine's DDL.
pub type WindowInputs = Arc<RwLock<HashMap<String, WindowInput>>>;

/// `TUMBLE(source, time_column, size)`: fixed, non-overlapping windows.
#[derive(Debug)]
pub(crate) struct Tumble {
    pub inputs: WindowInputs,
}

impl TableFunctionImpl for Tumble {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let usage = "TUMBLE(source, time_column, INTERVAL 'size' [, INTERVAL 'offset'])";
        let (relation, time, size, offset) = match args.exprs() {
            [relation, time, size] => (relation, time, size, None),
            [relation, time, size, offset] => (relation, time, size, Some(offset)),
            other => {
                return plan_error(format!(
                    "{usage} takes 3 or 4 arguments, got {}",
                    other.len()
                ));
            }
        };
        let size = interval(size, usage)?;
        let origin = window_offset(offset, &size, usage)?;
        windowed(&self.inputs, usage, relation, time, size, 1, origin)
    }
}

/// `HOP(source, time_column, slide, size)`: windows of `size` starting every `slide`, so a
/// row belongs to `size / slide` windows (Spark's sliding `window(ts, size, slide)`).
#[derive(Debug)]
pub(crate) struct Hop {
    pub inputs: WindowInputs,
}

impl TableFunctionImpl for Hop {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let usage =
            "HOP(source, time_column, INTERVAL 'slide', INTERVAL 'size' [, INTERVAL 'offset'])";
        let (relation, time, slide, size, offset) = match args.exprs() {
            [relation, time, slide, size] => (relation, time, slide, size, None),
            [relation, time, slide, size, offset] => (relation, time, slide, size, Some(offset)),
            other => {
                return plan_error(format!(
                    "{usage} takes 4 or 5 arguments, got {}",
                    other.len()
                ));
            }
        };
        let (slide, size) = (interval(slide, usage)?, interval(size, usage)?);
        let (slide_ns, size_ns) = (nanos(&slide), nanos(&size));
        if size_ns % slide_ns != 0 {
            return plan_error(format!(
                "{usage}: the size must be a whole multiple of the slide"
            ));
        }
        let windows = size_ns / slide_ns;
        if windows > 1000 {
            return plan_error(format!(
                "{usage}: each row would be in {windows} windows; at most 1000"
            ));
        }
        let origin = window_offset(offset, &slide, usage)?;
        windowed(&self.inputs, usage, relation, time, slide, windows, origin)
    }
}

/// `SESSION(source, time_column, gap)`: per group, a session spans rows less than `gap`
/// apart: `[first row, last row + gap)`. Each row starts as its own session; the aggregation
/// merges overlapping sessions of the same group keys.
#[derive(Debug)]
pub(crate) struct Session {
    pub inputs: WindowInputs,
}

impl TableFunctionImpl for Session {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let usage = "SESSION(source, time_column, INTERVAL 'gap')";
        let [relation, time, gap] = args.exprs() else {
            return plan_error(format!(
                "{usage} takes 3 arguments, got {}",
                args.exprs().len()
            ));
        };
        let gap = interval(gap, usage)?;
        windowed(&self.inputs, usage, relation, time, gap, 0, 0)
    }
}

/// The relation `relation` with `window_start` and `window_end` columns: each row is in
/// `windows` windows of `windows × slide`, starting every `slide` (one window: tumbling;
/// zero: a session window starting at the row and lasting `slide`, the gap). Windows start at
/// the Unix epoch plus `origin_ns`, plus multiples of `slide`.
fn windowed(
    inputs: &WindowInputs,
    usage: &str,
    relation: &Expr,
    time: &Expr,
    slide: ScalarValue,
    windows: i128,
    origin_ns: i64,
) -> Result<Arc<dyn TableProvider>> {
    let relation = identifier(
        relation,
        usage,
        "the first argument must name a source or view",
    )?;
    let time = identifier(time, usage, "the second argument must name a time column")?;
    let input = inputs
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
    let datafusion::arrow::datatypes::DataType::Timestamp(unit, _) = time_field.data_type() else {
        return plan_error(format!(
            "{usage}: column '{time}' is {}, not a TIMESTAMP",
            time_field.data_type()
        ));
    };
    let unit = *unit;
    if nanos(&slide) % nanos_per(unit) != 0 {
        return plan_error(format!(
            "{usage}: column '{time}' is in {unit:?}s, so the window's size and slide must be \
             whole {unit:?}s"
        ));
    }
    let columns: Vec<Expr> = schema.columns().into_iter().map(Expr::Column).collect();
    let time_expr = Expr::Column(Column::from_name(&time));
    let origin = lit(ScalarValue::TimestampNanosecond(Some(origin_ns), None));
    // The latest window holding the row starts at the row's time rounded down to the slide.
    let latest = window_floor(lit(slide.clone()), time_expr, origin);
    let size = scaled(&slide, windows.max(1), unit);
    let watermarked = input.watermark_columns.contains(&time);
    let mut end = WindowColumn {
        end_watermarked: Some(watermarked),
        ..Default::default()
    };
    let mut start = WindowColumn::default();
    if windows > 0 {
        // The end is the start plus the size: the aggregation keeps only the start in state.
        let fixed = FixedWindow {
            size_ns: i64::try_from(nanos(&slide) * windows).unwrap_or(i64::MAX),
            id: format!("{relation}.{time}"),
        };
        start.fixed = Some(fixed.clone());
        end.fixed = Some(fixed);
    }
    if windows > 1 {
        // Lets an aggregation over the window count each row once, in its latest window
        // (`AggregateHopPanes`).
        start.hop = Some(HopMarker {
            slide_ns: i64::try_from(nanos(&slide)).unwrap_or(i64::MAX),
            windows: i64::try_from(windows).unwrap_or(i64::MAX),
        });
    }
    let (start_metadata, end_metadata) = (start.metadata(), end.metadata());
    let builder = if windows == 0 {
        let session = WindowColumn {
            session_start: true,
            ..Default::default()
        };
        let session = FieldMetadata::from(session.metadata());
        scan.project(
            columns
                .iter()
                .cloned()
                .chain([Expr::Column(Column::from_name(&time))
                    .alias_with_metadata("window_start", Some(session))]),
        )?
    } else if windows == 1 {
        scan.project(
            columns
                .iter()
                .cloned()
                .chain([latest.alias("window_start")]),
        )?
    } else {
        let starts = (0..windows)
            .map(|k| latest.clone() - lit(scaled(&slide, k, unit)))
            .collect();
        let array = datafusion::functions_nested::expr_fn::make_array(starts).alias(STARTS);
        scan.project(columns.iter().cloned().chain([array]))?
            .unnest_column(STARTS)?
            .project(
                columns
                    .iter()
                    .cloned()
                    .chain([Expr::Column(Column::from_name(STARTS)).alias("window_start")]),
            )?
    };
    let window_start = Expr::Column(Column::from_name("window_start"));
    let outputs = columns.into_iter().chain([
        window_start.clone().alias_with_metadata(
            "window_start",
            (!start_metadata.is_empty()).then(|| start_metadata.into()),
        ),
        (window_start + lit(size)).alias_with_metadata("window_end", Some(end_metadata.into())),
    ]);
    let plan = builder.project(outputs)?.build()?;
    Ok(Arc::new(ViewTable::new(plan, None)))
}

/// The temporary column holding a row's window starts (latest first) before they are
/// unnested.
const STARTS: &str = WINDOW_STARTS_COLUMN;

fn nanos(interval: &ScalarValue) -> i128 {
    match interval {
        ScalarValue::IntervalMonthDayNano(Some(v)) => {
            v.days as i128 * 86_400_000_000_000 + v.nanoseconds as i128
        }
        _ => 0,
    }
}

fn nanos_per(unit: TimeUnit) -> i128 {
    match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    }
}

/// `interval × k` as a duration in the time column's unit (a fixed length: days count as 24
/// hours, as windows are aligned to the epoch in UTC). Adding a duration to a timestamp is a
/// plain vectorized addition, unlike a calendar interval.
fn scaled(interval: &ScalarValue, k: i128, unit: TimeUnit) -> ScalarValue {
    let total = nanos(interval) * k;
    let value = Some(i64::try_from(total / nanos_per(unit)).unwrap_or(i64::MAX));
    match unit {
        TimeUnit::Second => ScalarValue::DurationSecond(value),
        TimeUnit::Millisecond => ScalarValue::DurationMillisecond(value),
        TimeUnit::Microsecond => ScalarValue::DurationMicrosecond(value),
        TimeUnit::Nanosecond => ScalarValue::DurationNanosecond(value),
    }
}

/// The start offset of windows (Spark's `startTime`): at least zero and less than `step`.
fn window_offset(offset: Option<&Expr>, step: &ScalarValue, usage: &str) -> Result<i64> {
    let Some(offset) = offset else { return Ok(0) };
    let nanoseconds = match offset {
        Expr::Literal(value @ ScalarValue::IntervalMonthDayNano(Some(v)), _) if v.months == 0 => {
            nanos(value)
        }
        other => {
            return plan_error(format!(
                "{usage}: the offset must be an INTERVAL literal in days or less, found {other}"
            ));
        }
    };
    if nanoseconds < 0 || nanoseconds >= nanos(step) {
        return plan_error(format!(
            "{usage}: the offset must be at least 0 and less than the slide"
        ));
    }
    Ok(i64::try_from(nanoseconds).unwrap_or(0))
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
