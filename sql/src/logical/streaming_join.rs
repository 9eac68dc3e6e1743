//! [`StreamingJoinNode`]: a join of two streams, computed incrementally (Spark's
//! `StreamingSymmetricHashJoinExec`).
//!
//! Each side's rows are kept in state; each batch joins its new rows with the other side's
//! state and with each other, so every matching pair is emitted once, in the batch where its
//! later row arrives. Rows are evicted from state when the watermark shows that no future row
//! can match them ([`StateEviction`], Spark's rules, in `join_bounds.rs`).
//!
//! What Spark allows (`UnsupportedOperationChecker`, stream-stream joins), and Weir with it:
//! - only `append` output: a join's rows never change;
//! - inner joins with any condition holding an equality of the two sides; without an
//!   eviction on a side, that side's state grows without bound (EXPLAIN says so);
//! - left outer and left semi joins need the left side's rows evicted (a watermarked join
//!   key, or a watermark on the right with a time bound on the left), since a left row's
//!   null-padded row (or, for semi, its absence) is only known when no match can come; right
//!   outer mirrors it; full outer needs both; left anti joins are refused.
//!
//! A null-padded row is emitted exactly once, when its row is evicted unmatched.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use datafusion::common::{Column, DFSchema, DFSchemaRef, ExprSchema, JoinType, Result};
use datafusion::logical_expr::utils::{expr_to_columns, find_valid_equijoin_key_pair};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Join, LogicalPlan, Operator, UserDefinedLogicalNodeCore, build_join_schema,
};

use super::join_bounds::{StateEviction, conjuncts, value_eviction};
use super::operator::{OutputModes, StreamingOperator};
use crate::error::SqlError;
use crate::planner::watermarked_columns;
use crate::window::WindowColumn;

/// A join of two streams; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamingJoinNode {
    /// The left input.
    pub left: LogicalPlan,
    /// The right input.
    pub right: LogicalPlan,
    /// Equality keys: `(left expression, right expression)`.
    pub on: Vec<(Expr, Expr)>,
    /// The rest of the condition, over both sides' columns.
    pub filter: Option<Expr>,
    /// Inner, left/right/full outer, or left semi.
    pub join_type: JoinType,
    /// The output schema (DataFusion's for the same join).
    pub schema: DFSchemaRef,
    /// Stable id, `join-<n>`.
    pub operator_id: String,
    /// The left side's watermarked event-time column: its late rows are dropped.
    pub left_time: Option<Column>,
    /// The right side's watermarked event-time column.
    pub right_time: Option<Column>,
    /// When left rows leave state.
    pub left_eviction: Option<StateEviction>,
    /// When right rows leave state.
    pub right_eviction: Option<StateEviction>,
}

impl StreamingJoinNode {
    /// The streaming join of `join`, whose both inputs read streams. Refuses (with the reason
    /// and what would work) the joins Spark refuses.
    pub fn try_new(join: &Join, operator_id: String) -> Result<Self> {
        let left = (*join.left).clone();
        let right = (*join.right).clone();
        let (mut on, mut rest) = (join.on.clone(), Vec::new());
        if let Some(filter) = &join.filter {
            for conjunct in conjuncts(filter) {
                match equi_pair(conjunct, left.schema(), right.schema())? {
                    Some(pair) => on.push(pair),
                    None => rest.push(conjunct.clone()),
                }
            }
        }
        let filter = rest.into_iter().reduce(Expr::and);
        let mut node = Self {
            schema: Arc::new(build_join_schema(
                left.schema(),
                right.schema(),
                &join.join_type,
            )?),
            left,
            right,
            on,
            filter,
            join_type: join.join_type,
            operator_id,
            left_time: None,
            right_time: None,
            left_eviction: None,
            right_eviction: None,
        };
        node.find_evictions();
        node.check().map_err(|e| {
            datafusion::error::DataFusionError::External(Box::new(SqlError::NotIncremental(e)))
        })?;
        Ok(node)
    }

    /// Finds each side's watermarked time column and when its rows can be evicted.
    fn find_evictions(&mut self) {
        self.left_time = watermarked(&self.left);
        self.right_time = watermarked(&self.right);
        // A watermarked event time (or window end) among the keys evicts both sides.
        for (l, r) in &self.on {
            let (Expr::Column(lc), Expr::Column(rc)) = (l, r) else {
                continue;
            };
            let timestamps = is_timestamp(&self.left, lc) && is_timestamp(&self.right, rc);
            if timestamps
                && (closes_by_watermark(&self.left, lc) || closes_by_watermark(&self.right, rc))
            {
                let by_key = |column: &Column| StateEviction {
                    column: column.clone(),
                    offset_ms: 0,
                    by_key: true,
                };
                self.left_eviction = Some(by_key(lc));
                self.right_eviction = Some(by_key(rc));
                return;
            }
        }
        let Some(filter) = &self.filter else { return };
        if let (Some(l), Some(r)) = (&self.left_time, &self.right_time) {
            self.left_eviction = value_eviction(filter, l, r);
            self.right_eviction = value_eviction(filter, r, l);
        }
    }

    /// Spark's rules for stream-stream joins; the refusal text on failure.
    fn check(&self) -> std::result::Result<(), String> {
        if self.on.is_empty() {
            return Err(
                "a join of two streams needs an equality between the two sides (for example \
                 ON a.id = b.id): without one, every row would have to be kept and compared \
                 with every future row"
                    .to_string(),
            );
        }
        let needs = |side: &str, other: &str| {
            format!(
                "a {} join of two streams needs the {side} side's rows to be evicted once no \
                 match can come (that is when its null-padded or unmatched rows are known): \
                 join on an event-time column with a watermark (or a window of one), or give \
                 the {other} side a watermark and bound the {side} side's time by it, for \
                 example ON ... AND r.ts BETWEEN l.ts - INTERVAL '1' MINUTE AND l.ts + \
                 INTERVAL '1' MINUTE",
                join_words(self.join_type)
            )
        };
        match self.join_type {
            JoinType::Inner => Ok(()),
            JoinType::Left | JoinType::LeftSemi if self.left_eviction.is_none() => {
                Err(needs("left", "right"))
            }
            JoinType::Right if self.right_eviction.is_none() => Err(needs("right", "left")),
            JoinType::Full if self.left_eviction.is_none() => Err(needs("left", "right")),
            JoinType::Full if self.right_eviction.is_none() => Err(needs("right", "left")),
            JoinType::Left | JoinType::LeftSemi | JoinType::Right | JoinType::Full => Ok(()),
            other => Err(format!(
                "a {} join of two streams is not supported (as in Spark): use an inner, \
                 outer or left semi join",
                join_words(other)
            )),
        }
    }

    /// The state ids of the two sides' rows.
    pub fn side_state_ids(&self) -> [String; 2] {
        [
            format!("{}.left", self.operator_id),
            format!("{}.right", self.operator_id),
        ]
    }

    /// The sides whose state grows without bound (no eviction).
    pub fn unbounded_sides(&self) -> Vec<&'static str> {
        let mut sides = Vec::new();
        if self.left_eviction.is_none() {
            sides.push("left");
        }
        if self.right_eviction.is_none() {
            sides.push("right");
        }
        sides
    }

    fn side_signature(side: &str, plan: &LogicalPlan) -> Vec<String> {
        plan.schema()
            .fields()
            .iter()
            .map(|f| format!("{side}.{}: {}", f.name(), f.data_type()))
            .collect()
    }
}

/// How SQL names a join type.
fn join_words(join_type: JoinType) -> &'static str {
    match join_type {
        JoinType::Inner => "inner",
        JoinType::Left => "left outer",
        JoinType::Right => "right outer",
        JoinType::Full => "full outer",
        JoinType::LeftSemi => "left semi",
        JoinType::LeftAnti => "left anti",
        JoinType::RightSemi => "right semi",
        JoinType::RightAnti => "right anti",
        JoinType::LeftMark | JoinType::RightMark => "mark (EXISTS or IN subquery)",
    }
}

/// `conjunct` as an equality of a left and a right expression, if it is one.
fn equi_pair(conjunct: &Expr, left: &DFSchema, right: &DFSchema) -> Result<Option<(Expr, Expr)>> {
    let Expr::BinaryExpr(BinaryExpr {
        left: l,
        op: Operator::Eq,
        right: r,
    }) = conjunct
    else {
        return Ok(None);
    };
    find_valid_equijoin_key_pair(l, r, left, right)
}

/// The first watermarked event-time column of `plan`'s output, qualified.
/// The side's event time with a watermark: its watermarked column, or else the end of a
/// window over one (an append-mode windowed aggregation's output, whose window ends the
/// watermark has just passed: Nexmark q7's maximum joined back to its bids).
fn watermarked(plan: &LogicalPlan) -> Option<Column> {
    if let Some(name) = watermarked_columns(plan).into_iter().next() {
        let (qualifier, field) = plan
            .schema()
            .qualified_field_with_unqualified_name(&name)
            .ok()?;
        return Some(Column::new(qualifier.cloned(), field.name()));
    }
    plan.schema()
        .iter()
        .find(|(_, field)| WindowColumn::of(field).end_watermarked == Some(true))
        .map(|(qualifier, field)| Column::new(qualifier.cloned(), field.name()))
}

/// Whether `column` of `plan` is a timestamp (only those are compared with the watermark).
fn is_timestamp(plan: &LogicalPlan, column: &Column) -> bool {
    plan.schema().field_from_column(column).is_ok_and(|f| {
        matches!(
            f.data_type(),
            datafusion::arrow::datatypes::DataType::Timestamp(..)
        )
    })
}

/// Whether `column` of `plan` is closed by the watermark: a watermarked event time, or the
/// end of a window over one.
fn closes_by_watermark(plan: &LogicalPlan, column: &Column) -> bool {
    if watermarked(plan).as_ref() == Some(column)
        || watermarked_columns(plan).contains(&column.name)
    {
        return true;
    }
    plan.schema()
        .field_from_column(column)
        .is_ok_and(|f| WindowColumn::of(f).end_watermarked == Some(true))
}

impl StreamingOperator for StreamingJoinNode {
    fn operator_id(&self) -> &str {
        &self.operator_id
    }

    fn state_ids(&self) -> Vec<String> {
        self.side_state_ids().to_vec()
    }

    fn state_signature(&self) -> Vec<String> {
        let mut signature = vec![format!("join: {}", self.join_type)];
        signature.extend(Self::side_signature("left", &self.left));
        signature.extend(Self::side_signature("right", &self.right));
        signature
    }

    /// Spark's `produceOutputWatermark` for a join: the minimum of the input watermark and
    /// the two sides' state watermarks (the input watermark plus each side's eviction offset).
    fn output_watermark_delay_ms(&self) -> i64 {
        [&self.left_eviction, &self.right_eviction]
            .into_iter()
            .flatten()
            .map(|eviction| -eviction.offset_ms)
            .fold(0, i64::max)
    }

    fn output_modes(&self) -> OutputModes {
        let refused = Err(format!(
            "a join of two streams emits in output_mode 'append' only (as in Spark): its rows \
             never change once emitted; set output_mode = 'append' ({})",
            self.operator_id
        ));
        OutputModes {
            append: Ok(()),
            update: refused.clone(),
            complete: refused,
            summary: "append (each joined row once; null-padded rows when the watermark \
                      shows no match can come)"
                .to_string(),
        }
    }

    fn state_warning(&self) -> Option<String> {
        let sides = self.unbounded_sides();
        if sides.is_empty() {
            return None;
        }
        Some(format!(
            "{} keeps every row of its {} side{} in state forever (no watermark bound evicts \
             them), so its state grows with its input; bound the join by event time (for \
             example r.ts BETWEEN l.ts - INTERVAL '1' HOUR AND l.ts) over sources with a \
             watermark",
            self.operator_id,
            sides.join(" and "),
            if sides.len() > 1 { "s" } else { "" }
        ))
    }

    fn describe(&self) -> String {
        let eviction = |e: &Option<StateEviction>| match e {
            Some(e) => format!("until {}", e.describe()),
            None => "forever (no watermark bound: state grows without limit)".to_string(),
        };
        let mut line = format!(
            "{}: {} join on {}; keeps left rows {}",
            self.operator_id,
            join_words(self.join_type),
            self.on
                .iter()
                .map(|(l, r)| format!("{l} = {r}"))
                .collect::<Vec<_>>()
                .join(" AND "),
            eviction(&self.left_eviction),
        );
        line.push_str(&format!(", right rows {}", eviction(&self.right_eviction)));
        line
    }
}

impl PartialOrd for StreamingJoinNode {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (&self.left, &self.right, &self.on, &self.operator_id).partial_cmp(&(
            &other.left,
            &other.right,
            &other.on,
            &other.operator_id,
        ))
    }
}

impl UserDefinedLogicalNodeCore for StreamingJoinNode {
    fn name(&self) -> &str {
        "StreamingJoin"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.left, &self.right]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        self.on
            .iter()
            .flat_map(|(l, r)| [l.clone(), r.clone()])
            .chain(self.filter.clone())
            .collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "StreamingJoin: {}", self.describe())?;
        if let Some(filter) = &self.filter {
            write!(f, ", filter={filter}")?;
        }
        Ok(())
    }

    /// Each side's columns the output, the condition and the event times need.
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let left_width = self.left.schema().fields().len();
        let mut needed = [Vec::new(), Vec::new()];
        for &i in output_columns {
            if i < left_width {
                needed[0].push(i);
            } else if self.join_type != JoinType::LeftSemi {
                needed[1].push(i - left_width);
            }
        }
        let mut columns = std::collections::HashSet::new();
        for expr in self.expressions() {
            expr_to_columns(&expr, &mut columns).ok()?;
        }
        columns.extend(self.left_time.clone());
        columns.extend(self.right_time.clone());
        for eviction in [&self.left_eviction, &self.right_eviction]
            .into_iter()
            .flatten()
        {
            columns.insert(eviction.column.clone());
        }
        for column in columns {
            if let Ok(i) = self.left.schema().index_of_column(&column) {
                needed[0].push(i);
            } else if let Ok(i) = self.right.schema().index_of_column(&column) {
                needed[1].push(i);
            }
        }
        for side in &mut needed {
            side.sort_unstable();
            side.dedup();
        }
        Some(needed.to_vec())
    }

    fn with_exprs_and_inputs(
        &self,
        exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let right = inputs.pop().unwrap_or_else(|| self.right.clone());
        let left = inputs.pop().unwrap_or_else(|| self.left.clone());
        let pairs = self.on.len();
        let on = exprs[..2 * pairs]
            .chunks(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        let filter = exprs.get(2 * pairs).cloned();
        Ok(Self {
            schema: Arc::new(build_join_schema(
                left.schema(),
                right.schema(),
                &self.join_type,
            )?),
            left,
            right,
            on,
            filter,
            ..self.clone()
        })
    }
}
