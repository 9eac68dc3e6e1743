//! [`StreamingAggregateNode`]: a `GROUP BY` over a stream, computed incrementally.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::metadata::FieldMetadata;
use datafusion::common::tree_node::TreeNode;
use datafusion::common::{DFSchema, DFSchemaRef, Result, ScalarValue};
use datafusion::logical_expr::{
    Aggregate, Expr, ExprSchemable, LogicalPlan, UserDefinedLogicalNodeCore, lit,
};

use super::operator::{OutputModes, StreamingOperator};
use crate::planner::watermarked_columns;
use crate::window::{FixedWindow, WindowColumn};

/// The list column `HOP` computes for each row (its window starts, latest first) and unnests
/// into `window_start`.
pub const WINDOW_STARTS_COLUMN: &str = "__weir_window_starts";

/// A tumbling or hopping window whose end is its start plus a fixed size, both group keys:
/// the aggregation groups by the start alone and adds the end to its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub struct DerivedWindowEnd {
    /// The position of `window_start` in `group_expr`.
    pub start: usize,
    /// The position of `window_end` in `group_expr`.
    pub end: usize,
    /// The window size in milliseconds.
    pub size_ms: i64,
}

/// A hopping window aggregated by panes (set by [`AggregateHopPanes`]): the input holds
/// each row once, with `window_start` the start of its latest window (its pane, a whole
/// slide); the aggregation groups rows by pane first, then adds each pane's partial state to
/// the `windows` windows that contain it (starts `pane − j × slide`, `j < windows`).
///
/// [`AggregateHopPanes`]: crate::window::AggregateHopPanes
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub struct HopPanes {
    /// The slide, a pane's length, in milliseconds.
    pub slide_ms: i64,
    /// The windows each pane (and each row) is in: size ÷ slide.
    pub windows: i64,
}

/// A grouped aggregation over a stream. Its state is, per group, the aggregate functions'
/// intermediate state (`Accumulator::state`); each batch merges the new rows into it.
///
/// The schema is exactly the one DataFusion's `Aggregate` would have for the same
/// expressions, so the rest of the plan is unchanged by the rewrite.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamingAggregateNode {
    /// The input rows.
    pub input: LogicalPlan,
    /// Group keys.
    pub group_expr: Vec<Expr>,
    /// Aggregate expressions.
    pub aggr_expr: Vec<Expr>,
    /// Output schema (as `Aggregate`'s).
    pub schema: DFSchemaRef,
    /// The position in `group_expr` of the key that closes a group: a window end, if the
    /// aggregation is windowed, or else a watermarked event-time column grouped by itself
    /// (see [`event_time_key`](Self::event_time_key)).
    pub window_end: Option<usize>,
    /// Whether that window is over a watermarked event-time column (append mode needs it).
    pub watermarked: bool,
    /// Set when the `window_end` key is a watermarked event-time column itself, not a
    /// window's end (`GROUP BY ts` over a source declaring `WATERMARK FOR ts`): as in Spark,
    /// a group closes, and rows for it are late, once the watermark reaches its time.
    pub event_time_key: bool,
    /// The position in `group_expr` of a session window's start key, for session windows.
    pub session_start: Option<usize>,
    /// Set when the window end is a group key that follows from the window start key.
    pub derived_window_end: Option<DerivedWindowEnd>,
    /// Set when a hopping window is aggregated by panes (see [`HopPanes`]).
    pub hop_panes: Option<HopPanes>,
    /// Stable id of the operator within its query, naming its state in the checkpoint.
    pub operator_id: String,
}

impl StreamingAggregateNode {
    /// Builds the node from DataFusion's `Aggregate`, finding the window end key by its
    /// field metadata.
    pub fn try_new(aggregate: &Aggregate, operator_id: String) -> Result<Self> {
        let input_schema = aggregate.input.schema();
        let mut window_end = None;
        let mut watermarked = false;
        let mut session_start = None;
        // Start keys by their window, and the end key's window.
        let mut window_starts: Vec<(usize, FixedWindow)> = Vec::new();
        let mut end_window = None;
        for (index, expr) in aggregate.group_expr.iter().enumerate() {
            let (_, field) = expr.to_field(input_schema)?;
            let column = WindowColumn::of(&field);
            if let Some(over_watermark) = column.end_watermarked {
                window_end = Some(index);
                watermarked = over_watermark;
            }
            if column.session_start {
                session_start = Some(index);
            }
            match (column.fixed, column.end_watermarked) {
                (Some(window), Some(_)) => end_window = Some(window),
                (Some(window), None) => window_starts.push((index, window)),
                (None, _) => {}
            }
        }
        // Without a window, a key that is the watermarked event time closes its group.
        let mut event_time_key = false;
        if window_end.is_none() && session_start.is_none() {
            let watermarked_input = watermarked_columns(&aggregate.input);
            window_end = aggregate.group_expr.iter().position(|expr| {
                matches!(unaliased(expr), Expr::Column(c) if watermarked_input.contains(&c.name))
            });
            event_time_key = window_end.is_some();
            watermarked = event_time_key;
        }
        let derived_window_end = match (window_end, end_window) {
            (Some(end), Some(window))
                if session_start.is_none() && !has_union(&aggregate.input) =>
            {
                let start = window_starts.iter().find(|(_, w)| *w == window);
                start
                    .zip(window_size_ms(window.size_ns))
                    .map(|((start, _), size_ms)| DerivedWindowEnd {
                        start: *start,
                        end,
                        size_ms,
                    })
            }
            _ => None,
        };
        let mut group_expr = aggregate.group_expr.clone();
        if let Some(derived) = derived_window_end
            && let Some(end) = end_from_start(&group_expr, derived, input_schema)?
        {
            group_expr[derived.end] = end;
        }
        Ok(Self {
            input: aggregate.input.as_ref().clone(),
            group_expr,
            aggr_expr: aggregate.aggr_expr.clone(),
            schema: Arc::clone(&aggregate.schema),
            window_end,
            watermarked,
            event_time_key,
            session_start,
            derived_window_end,
            hop_panes: None,
            operator_id,
        })
    }
}

impl StreamingAggregateNode {
    /// The positions in `aggr_expr` of the `count(DISTINCT x)` aggregates (one argument, any
    /// `FILTER`) whose distinct values are kept as a set of `(group, x)` pairs in state of
    /// their own, so a batch only adds its new pairs instead of re-merging every group's
    /// values (see `StreamingAggregateExec`). Not for session windows, whose groups merge.
    pub fn distinct_counts(&self) -> Vec<usize> {
        if self.session_start.is_some() {
            return Vec::new();
        }
        self.aggr_expr
            .iter()
            .enumerate()
            .filter(|(_, expr)| distinct_value(expr).is_some())
            .map(|(i, _)| i)
            .collect()
    }

    /// [`distinct_counts`](Self::distinct_counts) in classes of one counted value, in
    /// order of first position, each of at most `max_per_class` (a larger class is split):
    /// the counts of one class share their pairs in memory, each pair marked with the counts
    /// that counted it, so a row is looked up once for all of them.
    pub fn distinct_count_classes(&self, max_per_class: usize) -> Vec<Vec<usize>> {
        let mut classes: Vec<(&Expr, Vec<usize>)> = Vec::new();
        for index in self.distinct_counts() {
            let Some(value) = distinct_value(&self.aggr_expr[index]) else {
                continue;
            };
            match classes
                .iter_mut()
                .find(|(v, members)| *v == value && members.len() < max_per_class.max(1))
            {
                Some((_, members)) => members.push(index),
                None => classes.push((value, vec![index])),
            }
        }
        classes.into_iter().map(|(_, members)| members).collect()
    }

    /// The group keys as written in the query: each key's expression, but the window end
    /// computed from the start (see `end_from_start`) by its column.
    pub fn key_names(&self) -> Vec<String> {
        let columns = self.schema.columns();
        self.group_expr
            .iter()
            .enumerate()
            .map(|(i, expr)| match self.derived_window_end {
                Some(derived) if derived.end == i => columns[i].to_string(),
                _ => expr.to_string(),
            })
            .collect()
    }

    /// The id naming the state of the distinct pairs of aggregate `index` (one of
    /// [`distinct_counts`](Self::distinct_counts)).
    pub fn distinct_state_id(&self, index: usize) -> String {
        format!("{}.distinct-{index}", self.operator_id)
    }

    /// What this operator keeps in state, as `name: type` lines: its group keys, its
    /// aggregates (each one's state follows from its function, argument and type) and how
    /// the state is laid out. A query resuming a checkpoint must keep exactly this (as in
    /// Spark, a stateful operation cannot change under its state).
    pub fn state_signature(&self) -> Vec<String> {
        let fields = self.schema.fields();
        let keys = self.group_expr.len();
        let mut lines: Vec<String> = fields[..keys]
            .iter()
            .map(|f| format!("key {}: {}", f.name(), f.data_type()))
            .collect();
        lines.extend(
            fields[keys..]
                .iter()
                .map(|f| format!("aggregate {}: {}", f.name(), f.data_type())),
        );
        let layout = [
            self.derived_window_end
                .map(|d| format!("window end from start + {} ms", d.size_ms)),
            self.hop_panes
                .map(|p| format!("panes of {} ms", p.slide_ms)),
            self.session_start
                .map(|i| format!("session start {}", fields[i].name())),
            self.event_time_key.then(|| "event-time key".to_string()),
        ];
        lines.extend(layout.into_iter().flatten().map(|l| format!("layout {l}")));
        lines.extend(
            self.state_ids()
                .into_iter()
                .skip(1)
                .map(|id| format!("state {id}")),
        );
        lines
    }

    /// The ids of all the state this operator keeps: its groups', then its distinct pairs'.
    pub fn state_ids(&self) -> Vec<String> {
        std::iter::once(self.operator_id.clone())
            .chain(
                self.distinct_counts()
                    .into_iter()
                    .map(|i| self.distinct_state_id(i)),
            )
            .collect()
    }
}

impl StreamingOperator for StreamingAggregateNode {
    fn operator_id(&self) -> &str {
        &self.operator_id
    }

    fn state_ids(&self) -> Vec<String> {
        StreamingAggregateNode::state_ids(self)
    }

    fn state_signature(&self) -> Vec<String> {
        StreamingAggregateNode::state_signature(self)
    }

    /// Spark's rules: `complete` and `update` always (but a session's start and end change
    /// as it grows, so not `update` for sessions); `append` needs each group closed by a
    /// watermark (an event-time window, or an event-time key), so it is emitted once.
    fn output_modes(&self) -> OutputModes {
        let closed = self.window_end.is_some() && self.watermarked;
        if self.session_start.is_some() && self.window_end.is_none() {
            let refused =
                Err("a session window must be grouped by both window_start and window_end".into());
            return OutputModes {
                append: refused.clone(),
                update: refused.clone(),
                complete: refused,
                summary: "none (group a session window by window_start and window_end)".into(),
            };
        }
        let append = if closed {
            Ok(())
        } else {
            Err(
                "output_mode 'append' emits each row once, so an aggregation needs an \
                 event-time window closed by a watermark (GROUP BY window_start, window_end \
                 FROM TUMBLE(source, ts, size) over a source declaring WATERMARK FOR ts, or a \
                 view passing ts through unchanged), or to group by ts itself; set output_mode = \
                 'update' (changed groups each batch) or 'complete' (the whole result each \
                 batch)"
                    .to_string(),
            )
        };
        let update = if self.session_start.is_some() {
            Err(
                "session windows support output_mode 'append' and 'complete', not 'update' (a \
                 session's start and end change as it grows and merges)"
                    .to_string(),
            )
        } else {
            Ok(())
        };
        let summary = match (closed, self.session_start.is_some(), self.event_time_key) {
            (true, true, _) => {
                "append (each session once, when the watermark passes its end), complete"
            }
            (_, false, true) => {
                "append (each group once, when the watermark reaches its event time), update, \
                 complete"
            }
            (true, false, false) => {
                "append (each window once, when the watermark passes its end), update, complete"
            }
            (false, true, _) => "complete",
            (false, false, false) => {
                "update, complete (append needs a window, or an event-time key, closed by a \
                 watermark)"
            }
        };
        OutputModes {
            append,
            update,
            complete: Ok(()),
            summary: summary.to_string(),
        }
    }

    fn describe(&self) -> String {
        let keys = self.key_names();
        let aggregates: Vec<String> = self.aggr_expr.iter().map(|e| e.to_string()).collect();
        let window = match (self.window_end, self.session_start, self.watermarked) {
            (None, _, _) => "no window: state grows with the keys".to_string(),
            (Some(key), _, _) if self.event_time_key => format!(
                "no window: a group closes when the watermark reaches its {}",
                keys[key]
            ),
            (Some(_), Some(_), true) => "session window, closed by the watermark".to_string(),
            (Some(_), None, true) => "window, closed by the watermark".to_string(),
            (Some(_), _, false) => {
                "window over a column without a watermark: never closed".to_string()
            }
        };
        format!(
            "{}: aggregation keyed by [{}] computing [{}]; {window}",
            self.operator_id,
            keys.join(", "),
            aggregates.join(", ")
        )
    }
}

/// The value `x` of `count(DISTINCT x)` (with any `FILTER`), or `None` for any other
/// aggregate.
fn distinct_value(aggregate: &Expr) -> Option<&Expr> {
    match unaliased(aggregate) {
        Expr::AggregateFunction(f)
            if f.func.name() == "count" && f.params.distinct && f.params.args.len() == 1 =>
        {
            f.params.args.first()
        }
        _ => None,
    }
}

/// The window end key computed from the start key (start + size), named and marked as the
/// end key is. The node groups by it instead of the input's `window_end` column, so the
/// optimizer prunes that column and the input no longer computes a second timestamp per row
/// (the aggregation does not compute it per row either: it adds the end to its output rows).
/// `None` when the start is not a timestamp whose unit divides the size.
fn end_from_start(
    group_expr: &[Expr],
    derived: DerivedWindowEnd,
    input_schema: &DFSchema,
) -> Result<Option<Expr>> {
    let start = unaliased(&group_expr[derived.start]);
    let DataType::Timestamp(unit, _) = start.get_type(input_schema)? else {
        return Ok(None);
    };
    let ms = derived.size_ms;
    let size = match unit {
        TimeUnit::Second if ms % 1000 == 0 => ScalarValue::DurationSecond(Some(ms / 1000)),
        TimeUnit::Second => return Ok(None),
        TimeUnit::Millisecond => ScalarValue::DurationMillisecond(Some(ms)),
        TimeUnit::Microsecond => ScalarValue::DurationMicrosecond(ms.checked_mul(1_000)),
        TimeUnit::Nanosecond => ScalarValue::DurationNanosecond(ms.checked_mul(1_000_000)),
    };
    if size.is_null() {
        return Ok(None);
    }
    let (qualifier, end) = group_expr[derived.end].to_field(input_schema)?;
    Ok(Some(
        (start.clone() + lit(size)).alias_qualified_with_metadata(
            qualifier,
            end.name(),
            Some(FieldMetadata::new_from_field(&end)),
        ),
    ))
}

/// `expr` without the aliases naming it.
pub(crate) fn unaliased(mut expr: &Expr) -> &Expr {
    while let Expr::Alias(alias) = expr {
        expr = &alias.expr;
    }
    expr
}

/// A window size in ms, when it is a whole number of them.
fn window_size_ms(nanos: i64) -> Option<i64> {
    (nanos > 0 && nanos % 1_000_000 == 0).then_some(nanos / 1_000_000)
}

/// Whether `plan` has a union: a union's output keeps a window column's metadata from a
/// branch that has it even when another branch computes the column otherwise.
fn has_union(plan: &LogicalPlan) -> bool {
    plan.exists(|node| Ok(matches!(node, LogicalPlan::Union(_))))
        .unwrap_or(true)
}

impl PartialOrd for StreamingAggregateNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (
            &self.input,
            &self.group_expr,
            &self.aggr_expr,
            &self.operator_id,
        )
            .partial_cmp(&(
                &other.input,
                &other.group_expr,
                &other.aggr_expr,
                &other.operator_id,
            ))
    }
}

impl UserDefinedLogicalNodeCore for StreamingAggregateNode {
    fn name(&self) -> &str {
        "StreamingAggregate"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        self.group_expr
            .iter()
            .chain(&self.aggr_expr)
            .cloned()
            .collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let keys = self.key_names();
        let aggregates = self
            .aggr_expr
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        write!(
            f,
            "StreamingAggregate: id={}, groupBy=[{}], aggr=[{}]",
            self.operator_id,
            keys.join(", "),
            aggregates.join(", ")
        )?;
        match self.window_end {
            Some(index) if self.event_time_key => {
                write!(f, ", closed by event time {}", keys[index])?
            }
            Some(index) => write!(f, ", window_end={}", keys[index])?,
            None => {}
        }
        if let Some(derived) = self.derived_window_end {
            write!(
                f,
                " (= {} + {} ms, not kept in state)",
                self.group_expr[derived.start], derived.size_ms
            )?;
        }
        if let Some(panes) = self.hop_panes {
            write!(
                f,
                ", by panes of {} ms, each in {} windows",
                panes.slide_ms, panes.windows
            )?;
        }
        Ok(())
    }

    /// The input columns the group keys and aggregates read (whatever the parent needs, all
    /// aggregates are kept in state), so the optimizer prunes the rest below the node.
    fn necessary_children_exprs(&self, _output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let schema = self.input.schema();
        let mut needed: Vec<usize> = self
            .group_expr
            .iter()
            .chain(&self.aggr_expr)
            .flat_map(|expr| expr.column_refs())
            .filter_map(|column| schema.index_of_column(column).ok())
            .collect();
        needed.sort_unstable();
        needed.dedup();
        Some(vec![needed])
    }

    fn with_exprs_and_inputs(
        &self,
        exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let input = inputs.swap_remove(0);
        let groups = self.group_expr.len();
        let (group_expr, aggr_expr) = (exprs[..groups].to_vec(), exprs[groups..].to_vec());
        let aggregate = Aggregate::try_new(Arc::new(input), group_expr, aggr_expr)?;
        let mut node = Self::try_new(&aggregate, self.operator_id.clone())?;
        node.window_end = self.window_end;
        node.watermarked = self.watermarked;
        node.event_time_key = self.event_time_key;
        node.session_start = self.session_start;
        node.derived_window_end = self.derived_window_end;
        node.hop_panes = self.hop_panes;
        Ok(node)
    }
}
