//! How long a stream-stream join must keep each side's rows: Spark's state watermarks for a
//! join (`StreamingSymmetricHashJoinHelper.getStateWatermarkPredicates` and
//! `StreamingJoinHelper.getStateValueWatermark` in `sql/catalyst/.../analysis/`), solved once
//! at planning into a [`StateEviction`] per side.
//!
//! - **Key**: when a join key is an event time with a watermark on either side (a watermarked
//!   column, or the end of a window over one), both sides' rows are evicted once that key is
//!   at or before the watermark: no row that is not late can carry it any more.
//! - **Value**: otherwise, each conjunct of the join condition of the form
//!   `otherTime + c1 < thisTime + c2` (or `<=`, `>`, `>=`, and `BETWEEN` as its two
//!   comparisons), where `otherTime` is the other side's watermarked column, bounds this side's
//!   rows from below by the other side's watermark: rows with `thisTime <= watermark + c1 - c2`
//!   are evicted, one millisecond less for `<=` and `>=` (Spark's rule, inclusive of the bound).
//!   With several such conjuncts the smallest bound is used. A conjunct with other columns, a
//!   month or year interval, or the time columns on the wrong sides bounds nothing.
//!
//! So for `b.ts BETWEEN a.ts - INTERVAL '1' HOUR AND a.ts + INTERVAL '10' MINUTE`, `a`'s rows go
//! when `a.ts <= watermark - 10 min - 1 ms` and `b`'s when `b.ts <= watermark - 1 h - 1 ms`.

use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};

/// When rows of one side of a join can no longer match: those whose `column` is at or before
/// the watermark plus `offset_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct StateEviction {
    /// The side's event-time column (or window end) compared with the watermark.
    pub column: Column,
    /// Added to the watermark, in milliseconds (negative: kept longer).
    pub offset_ms: i64,
    /// Whether the column is a join key (both sides go at once) rather than a time bound.
    pub by_key: bool,
}

impl StateEviction {
    /// How EXPLAIN says it.
    pub fn describe(&self) -> String {
        let offset = match self.offset_ms {
            0 => String::new(),
            ms if ms < 0 => format!(" - {} ms", -ms),
            ms => format!(" + {ms} ms"),
        };
        format!("{} <= watermark{offset}", self.column.flat_name())
    }
}

/// A linear term of a time condition: a column or a constant, in milliseconds, with a sign.
#[derive(Debug)]
enum Term {
    Column(Column, bool),
    Constant(i64),
}

/// The value eviction of the side whose time column is `this`, from the conjuncts of `filter`
/// and the other side's watermarked time column `other` (see the module docs).
pub fn value_eviction(filter: &Expr, this: &Column, other: &Column) -> Option<StateEviction> {
    let mut bounds = Vec::new();
    for conjunct in conjuncts(filter) {
        let comparisons: Vec<(Expr, Operator, Expr)> = match conjunct {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                vec![((**left).clone(), *op, (**right).clone())]
            }
            Expr::Between(between) if !between.negated => vec![
                (
                    (*between.expr).clone(),
                    Operator::GtEq,
                    (*between.low).clone(),
                ),
                (
                    (*between.expr).clone(),
                    Operator::LtEq,
                    (*between.high).clone(),
                ),
            ],
            _ => continue,
        };
        for (l, op, r) in comparisons {
            let bound = match op {
                Operator::Lt => less_than(&l, &r, this, other),
                Operator::LtEq => less_than(&l, &r, this, other).map(|b| b - 1),
                Operator::Gt => less_than(&r, &l, this, other),
                Operator::GtEq => less_than(&r, &l, this, other).map(|b| b - 1),
                _ => None,
            };
            bounds.extend(bound);
        }
    }
    bounds.into_iter().min().map(|offset_ms| StateEviction {
        column: this.clone(),
        offset_ms,
        by_key: false,
    })
}

/// For `l < r`: when it reads `other + c < this`, the offset `c` from the watermark at and
/// before which `this` can no longer satisfy it.
fn less_than(l: &Expr, r: &Expr, this: &Column, other: &Column) -> Option<i64> {
    let mut terms = Vec::new();
    collect(l, false, &mut terms)?;
    collect(r, true, &mut terms)?;
    let (mut this_seen, mut other_seen, mut constant) = (false, false, 0i64);
    for term in terms {
        match term {
            // `this` must appear negated: `other + c - this < 0`.
            Term::Column(c, true) if &c == this && !this_seen => this_seen = true,
            Term::Column(c, false) if &c == other && !other_seen => other_seen = true,
            Term::Column(..) => return None,
            Term::Constant(ms) => constant = constant.checked_add(ms)?,
        }
    }
    (this_seen && other_seen).then_some(constant)
}

/// Splits `expr` into signed linear terms; `None` when it is not a sum of columns and
/// fixed intervals.
fn collect(expr: &Expr, negate: bool, terms: &mut Vec<Term>) -> Option<()> {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::Plus => {
                collect(left, negate, terms)?;
                collect(right, negate, terms)
            }
            Operator::Minus => {
                collect(left, negate, terms)?;
                collect(right, !negate, terms)
            }
            _ => None,
        },
        Expr::Negative(inner) => collect(inner, !negate, terms),
        // Only a cast that cannot truncate (to nanoseconds, the finest unit) keeps the value: a
        // cast to a date or a coarser unit would make the bound unsound.
        Expr::Cast(cast) if lossless(cast.field.data_type()) => collect(&cast.expr, negate, terms),
        Expr::TryCast(cast) if lossless(cast.field.data_type()) => {
            collect(&cast.expr, negate, terms)
        }
        Expr::Alias(alias) => collect(&alias.expr, negate, terms),
        Expr::Column(column) => {
            terms.push(Term::Column(column.clone(), negate));
            Some(())
        }
        Expr::Literal(value, _) => {
            let ms = interval_ms(value)?;
            terms.push(Term::Constant(if negate { ms.checked_neg()? } else { ms }));
            Some(())
        }
        _ => None,
    }
}

/// Whether a cast to `to` keeps every timestamp's value.
fn lossless(to: &datafusion::arrow::datatypes::DataType) -> bool {
    use datafusion::arrow::datatypes::{DataType, TimeUnit};
    matches!(to, DataType::Timestamp(TimeUnit::Nanosecond, _))
}

/// A fixed interval literal in milliseconds (a day is 24 hours, as in Spark); `None` for
/// months and years, whose length varies.
fn interval_ms(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::IntervalMonthDayNano(Some(i)) if i.months == 0 => i64::from(i.days)
            .checked_mul(86_400_000)?
            .checked_add(i.nanoseconds.div_euclid(1_000_000)),
        ScalarValue::IntervalDayTime(Some(i)) => i64::from(i.days)
            .checked_mul(86_400_000)?
            .checked_add(i64::from(i.milliseconds)),
        ScalarValue::DurationMillisecond(Some(ms)) => Some(*ms),
        ScalarValue::DurationSecond(Some(s)) => s.checked_mul(1_000),
        ScalarValue::DurationMicrosecond(Some(us)) => Some(us.div_euclid(1_000)),
        ScalarValue::DurationNanosecond(Some(ns)) => Some(ns.div_euclid(1_000_000)),
        _ => None,
    }
}

/// The conjuncts of `expr` (`a AND b AND c`).
pub(crate) fn conjuncts(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let mut all = conjuncts(left);
            all.extend(conjuncts(right));
            all
        }
        other => vec![other],
    }
}

#[cfg(test)]
mod tests {
    use datafusion::logical_expr::{cast, col, lit};

    use super::*;

    fn interval(ms: i64) -> Expr {
        lit(ScalarValue::new_interval_mdn(0, 0, ms * 1_000_000))
    }

    /// Spark's example (StreamingJoinHelper's docs and the structured streaming guide):
    /// `b.ts BETWEEN a.ts - 1 h AND a.ts + 10 min`.
    #[test]
    fn a_between_bound_keeps_each_side_as_long_as_spark_does() {
        let (a, b) = (Column::from("a.ts"), Column::from("b.ts"));
        let filter = col("b.ts").between(
            col("a.ts") - interval(3_600_000),
            col("a.ts") + interval(600_000),
        );
        let left = value_eviction(&filter, &a, &b).unwrap();
        assert_eq!(left.offset_ms, -600_001);
        let right = value_eviction(&filter, &b, &a).unwrap();
        assert_eq!(right.offset_ms, -3_600_001);
    }

    #[test]
    fn strict_bounds_keep_no_extra_millisecond_and_the_smallest_bound_wins() {
        let (a, b) = (Column::from("a.ts"), Column::from("b.ts"));
        // b.ts > a.ts - 5 s  and  b.ts > a.ts - 2 s  bound b from below ... and a?
        // `a.ts - 5 s < b.ts` reads `a + c < b`: it bounds b by a's watermark.
        let filter = (col("a.ts") - interval(5_000))
            .lt(col("b.ts"))
            .and((col("a.ts") - interval(2_000)).lt(col("b.ts")));
        assert_eq!(value_eviction(&filter, &b, &a).unwrap().offset_ms, -5_000);
        // Nothing bounds a from below.
        assert_eq!(value_eviction(&filter, &a, &b), None);
    }

    #[test]
    fn a_truncating_cast_bounds_nothing() {
        use datafusion::arrow::datatypes::{DataType, TimeUnit};
        let (a, b) = (Column::from("a.ts"), Column::from("b.ts"));
        let to_date = col("b.ts").gt_eq(cast(col("a.ts"), DataType::Date32));
        assert_eq!(value_eviction(&to_date, &b, &a), None);
        let to_nanos = col("b.ts").gt_eq(cast(
            col("a.ts"),
            DataType::Timestamp(TimeUnit::Nanosecond, None),
        ));
        assert_eq!(value_eviction(&to_nanos, &b, &a).unwrap().offset_ms, -1);
    }

    #[test]
    fn other_columns_and_month_intervals_bound_nothing() {
        let (a, b) = (Column::from("a.ts"), Column::from("b.ts"));
        let with_other = col("b.ts").gt_eq(col("a.ts") + col("a.lag"));
        assert_eq!(value_eviction(&with_other, &a, &b), None);
        let months = col("b.ts").gt_eq(col("a.ts") - lit(ScalarValue::new_interval_mdn(1, 0, 0)));
        assert_eq!(value_eviction(&months, &b, &a), None);
    }
}
