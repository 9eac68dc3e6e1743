//! [`WindowFloor`]: the start of the window a row's time falls in, for `TUMBLE` and `HOP`:
//! DataFusion's `date_bin`, with a fast path for the fixed-size windows they use.
//!
//! `date_bin` takes any stride (months included) and origin, so for every row it scales the
//! time to nanoseconds, bins it with checked arithmetic and scales it back, each row through
//! an `Option` (an overflow gives a null). In Nexmark q7 that was about half of the
//! aggregation's CPU time. A window of a fixed number of the time column's units from an
//! origin in whole units needs only the floor of the row's offset from the origin, in the
//! column's own unit; and as a stream's rows mostly come in time order, most rows fall in
//! the window of the row before and need not even be divided.
//!
//! The fast path is taken for a batch only when it gives exactly what `date_bin` would:
//! a fixed stride and a timestamp origin in whole units of the column, and the times, stride
//! and origin close enough to zero (within a quarter of `i64`'s range, in nanoseconds) that
//! `date_bin`'s nanosecond arithmetic cannot overflow. Anything else (a month stride, a
//! scalar time, times near the ends of the range) goes to `date_bin` itself. Signature,
//! return type and ordering are `date_bin`'s.

use std::sync::Arc;

use datafusion::arrow::array::types::{
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::arrow::array::{Array, ArrayRef, ArrowPrimitiveType, AsArray, PrimitiveArray};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue};
use datafusion::functions::datetime::date_bin::DateBinFunc;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};

/// `date_bin(stride, time, origin)` with a fast path for fixed strides; see the module docs.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct WindowFloor {
    date_bin: DateBinFunc,
}

/// `window_floor(stride, time, origin)`: the start of the window of size `stride` aligned to
/// `origin` that holds `time`, as `date_bin` computes it.
pub(crate) fn window_floor(stride: Expr, time: Expr, origin: Expr) -> Expr {
    let udf = Arc::new(ScalarUDF::new_from_impl(WindowFloor::default()));
    udf.call(vec![stride, time, origin])
}

impl ScalarUDFImpl for WindowFloor {
    fn name(&self) -> &str {
        "window_floor"
    }

    fn signature(&self) -> &Signature {
        self.date_bin.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.date_bin.return_type(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let Some(floors) = fixed_stride_floors(&args.args) {
            return Ok(ColumnarValue::Array(floors));
        }
        self.date_bin.invoke_with_args(args)
    }

    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        self.date_bin.output_ordering(input)
    }
}

/// The floors of an array of times, when the fast path gives `date_bin`'s result exactly
/// (see the module docs); `None` otherwise.
fn fixed_stride_floors(args: &[ColumnarValue]) -> Option<ArrayRef> {
    let [
        ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(stride))),
        ColumnarValue::Array(times),
        ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(Some(origin_ns), _)),
    ] = args
    else {
        return None;
    };
    if stride.months != 0 {
        return None;
    }
    let stride_ns = i64::try_from(
        i128::from(stride.days) * 86_400_000_000_000 + i128::from(stride.nanoseconds),
    )
    .ok()?;
    let DataType::Timestamp(unit, _) = times.data_type() else {
        return None;
    };
    let unit_ns = match unit {
        TimeUnit::Second => 1_000_000_000,
        TimeUnit::Millisecond => 1_000_000,
        TimeUnit::Microsecond => 1_000,
        TimeUnit::Nanosecond => 1,
    };
    // Far from overflow in `date_bin`'s nanoseconds: with the scaled time, the origin and the
    // stride each within a quarter of `i64`'s range of zero, every step of its arithmetic
    // stays within three quarters of it, so it gives no null.
    let quarter = i64::MAX / 4;
    if stride_ns <= 0
        || stride_ns > quarter
        || origin_ns.abs() > quarter
        || stride_ns % unit_ns != 0
        || origin_ns % unit_ns != 0
    {
        return None;
    }
    let window = Window {
        stride: stride_ns / unit_ns,
        origin: origin_ns / unit_ns,
        limit: quarter / unit_ns,
    };
    match unit {
        TimeUnit::Second => window.floors(times.as_primitive::<TimestampSecondType>()),
        TimeUnit::Millisecond => window.floors(times.as_primitive::<TimestampMillisecondType>()),
        TimeUnit::Microsecond => window.floors(times.as_primitive::<TimestampMicrosecondType>()),
        TimeUnit::Nanosecond => window.floors(times.as_primitive::<TimestampNanosecondType>()),
    }
}

/// Fixed-size windows, in units of the time column.
struct Window {
    stride: i64,
    origin: i64,
    /// The largest time, either side of 0, the fast path takes.
    limit: i64,
}

impl Window {
    fn floors<T: ArrowPrimitiveType<Native = i64>>(
        &self,
        times: &PrimitiveArray<T>,
    ) -> Option<ArrayRef> {
        let (min, max) = (
            datafusion::arrow::compute::min(times),
            datafusion::arrow::compute::max(times),
        );
        if min.is_some_and(|t| t < -self.limit) || max.is_some_and(|t| t > self.limit) {
            return None;
        }
        let Self { stride, origin, .. } = *self;
        // The window of the row before, while rows stay in it. Null slots hold any value,
        // hence the wrapping arithmetic (their results are masked by the nulls).
        let mut start = i64::MIN;
        let floors: Vec<i64> = times
            .values()
            .iter()
            .map(|&t| {
                if (t.wrapping_sub(start) as u64) >= stride as u64 {
                    start = t.wrapping_sub(t.wrapping_sub(origin).rem_euclid(stride));
                }
                start
            })
            .collect();
        let floors = PrimitiveArray::<T>::new(floors.into(), times.nulls().cloned())
            .with_data_type(times.data_type().clone());
        Some(Arc::new(floors))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use datafusion::arrow::array::{RecordBatch, TimestampMillisecondArray, TimestampSecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::prelude::*;

    use super::*;

    /// `window_floor` and `date_bin` over `times`, as strings, through a DataFusion query.
    async fn both(times: ArrayRef, stride: &str, origin: &str) -> (Vec<String>, Vec<String>) {
        let schema = Schema::new(vec![Field::new("t", times.data_type().clone(), true)]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![times]).unwrap();
        let ctx = SessionContext::new();
        ctx.register_batch("times", batch).unwrap();
        let stride = lit(ScalarValue::IntervalMonthDayNano(Some(
            datafusion::arrow::datatypes::IntervalMonthDayNano::new(0, 0, stride.parse().unwrap()),
        )));
        let origin = lit(ScalarValue::TimestampNanosecond(
            Some(origin.parse().unwrap()),
            None,
        ));
        let frame = ctx.table("times").await.unwrap();
        let frame = frame
            .select(vec![
                window_floor(stride.clone(), col("t"), origin.clone()).alias("fast"),
                datafusion::functions::datetime::expr_fn::date_bin(stride, col("t"), origin)
                    .alias("date_bin"),
            ])
            .unwrap();
        let batches = frame.collect().await.unwrap();
        let column = |i: usize| -> Vec<String> {
            batches
                .iter()
                .flat_map(|b| {
                    let array = b.column(i);
                    (0..array.len())
                        .map(|r| {
                            format!(
                                "{} {}",
                                array.data_type(),
                                ScalarValue::try_from_array(array, r).unwrap()
                            )
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        (column(0), column(1))
    }

    /// Whether `fixed_stride_floors` computes `times` itself for `stride` and `origin` (ns).
    fn takes_fast_path(times: &ArrayRef, stride: &str, origin: &str) -> bool {
        let stride =
            datafusion::arrow::datatypes::IntervalMonthDayNano::new(0, 0, stride.parse().unwrap());
        fixed_stride_floors(&[
            ColumnarValue::Scalar(ScalarValue::IntervalMonthDayNano(Some(stride))),
            ColumnarValue::Array(Arc::clone(times)),
            ColumnarValue::Scalar(ScalarValue::TimestampNanosecond(
                Some(origin.parse().unwrap()),
                None,
            )),
        ])
        .is_some()
    }

    #[tokio::test]
    async fn windows_floor_as_date_bin_does_in_and_out_of_order_before_the_epoch_and_with_nulls() {
        let millis: Vec<Option<i64>> = vec![
            Some(12_345),
            Some(19_999),
            Some(20_000),
            None,
            Some(-1),
            Some(-10_000),
            Some(-10_001),
            Some(7_000),
            Some(59_999),
        ];
        for (stride, origin) in [
            ("10000000000", "0"),
            ("3000000000", "1000000000"),
            ("86400000000000", "-5000000000"),
        ] {
            let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(millis.clone()));
            assert!(
                takes_fast_path(&times, stride, origin),
                "the fast path takes these times"
            );
            let (fast, expected) = both(times, stride, origin).await;
            assert_eq!(fast, expected, "stride {stride} ns from {origin} ns");
        }
        // A time whose nanoseconds overflow: `date_bin` makes it null, so the batch goes there.
        let mut extreme = millis.clone();
        extreme.push(Some(i64::MAX / 4));
        let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(extreme));
        let (fast, expected) = both(times, "10000000000", "0").await;
        assert_eq!(fast, expected);
        assert!(fast[9].ends_with("NULL"), "{}", fast[9]);
        let seconds: ArrayRef = Arc::new(
            TimestampSecondArray::from(vec![Some(5), None, Some(-3), Some(3_600)])
                .with_timezone("+02:00"),
        );
        let (fast, expected) = both(seconds, "60000000000", "0").await;
        assert_eq!(fast, expected);
        // A stride beyond the fast path's bound (a third of `i64`'s nanoseconds) goes to
        // `date_bin`.
        let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(millis.clone()));
        let huge = (i64::MAX / 3).to_string();
        assert!(!takes_fast_path(&times, &huge, "0"));
        let (fast, expected) = both(times, &huge, "0").await;
        assert_eq!(fast, expected);
        // A stride that is not a whole number of the column's units goes to `date_bin`.
        let times: ArrayRef = Arc::new(TimestampMillisecondArray::from(millis));
        let (fast, expected) = both(times, "1500000", "0").await;
        assert_eq!(fast, expected);
    }
}
