//! [`WatermarkTracker`]: the event-time watermark of a query, with Spark's rules.
//!
//! After each batch, each source with a declared watermark contributes `max(event time seen)
//! - delay`; the query's watermark is the minimum over those sources (none until every one of
//! them has seen a row), never moves back, and takes effect from the next batch. The value in
//! force for batch N is recorded in `offsets/N`; the value after batch N, with each source's
//! maximum event time, in `commits/N`, from which a restart resumes.
//!
//! An event time must lie in [`EVENT_TIMES`] (the years 1678 to 2261): a row whose event time
//! is outside is a bad record of its source, under its `on_error`, before it can move the
//! watermark. Timestamps are nanoseconds in an `i64`, which ends in 1677 and 2262; the margin
//! of about 100 days at each end keeps a window's start and end arithmetic from overflowing,
//! so such a row cannot fail the query on every restart.

use std::time::Duration;

use arrow::array::{Array, BooleanArray, RecordBatch, TimestampMillisecondArray};
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, TimeUnit};

use crate::error::{Result, WeirError};
use crate::event_time::EventTime;

/// A watermark as people read it: a UTC time with milliseconds, `end of time` after the end
/// of input (`flush_on_end`), or empty when there is none yet.
pub(crate) fn watermark_text(watermark: Option<EventTime>) -> String {
    watermark.map_or(String::new(), |w| w.to_string())
}

/// The event times a query takes, in ms since the epoch: 1678-01-01 up to 2262-01-01.
pub(crate) const EVENT_TIMES: std::ops::Range<i64> = -9_214_560_000_000..9_214_646_400_000;

/// One watermarked source: its event-time column and delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatermarkSpec {
    pub column: String,
    pub delay: Duration,
}

/// Tracks the watermark of one query; sources are addressed by their index in the query.
#[derive(Debug, Clone)]
pub(crate) struct WatermarkTracker {
    specs: Vec<Option<WatermarkSpec>>,
    max_event: Vec<Option<EventTime>>,
    current: Option<EventTime>,
}

impl WatermarkTracker {
    /// A tracker for sources with these watermark declarations (`None`: no watermark).
    pub fn new(specs: Vec<Option<WatermarkSpec>>) -> Self {
        let max_event = vec![None; specs.len()];
        Self {
            specs,
            max_event,
            current: None,
        }
    }

    /// Resumes from a commit's record.
    pub fn restore(&mut self, watermark: Option<EventTime>, max_event: &[Option<EventTime>]) {
        self.current = watermark;
        if max_event.len() == self.max_event.len() {
            self.max_event = max_event.to_vec();
        }
    }

    /// The watermark in force for the next batch.
    pub fn current(&self) -> Option<EventTime> {
        self.current
    }

    /// Each source's maximum event time seen, for the commit record.
    pub fn max_event(&self) -> &[Option<EventTime>] {
        &self.max_event
    }

    /// Splits the rows of source `index` into those with an event time in [`EVENT_TIMES`]
    /// (or none), kept, and the event times (ms) of the others, which are dropped (`None` for
    /// a time too far out to have a value in milliseconds).
    pub fn outside_event_times(
        &self,
        index: usize,
        batches: Vec<RecordBatch>,
    ) -> Result<(Vec<RecordBatch>, Vec<Option<EventTime>>)> {
        let Some(spec) = &self.specs[index] else {
            return Ok((batches, Vec::new()));
        };
        let mut outside = Vec::new();
        let mut kept = Vec::with_capacity(batches.len());
        for batch in batches {
            let millis = event_millis(&batch, spec)?;
            // A time that is there but has no millisecond value is outside too.
            let given = batch
                .column_by_name(&spec.column)
                .map(|column| column.logical_nulls());
            let is_given = |row: usize| match &given {
                Some(Some(nulls)) => nulls.is_valid(row),
                _ => true,
            };
            let inside: BooleanArray = millis
                .iter()
                .enumerate()
                .map(|(row, t)| {
                    Some(match t {
                        Some(t) => EVENT_TIMES.contains(&t),
                        None => !is_given(row),
                    })
                })
                .collect();
            if inside.true_count() == batch.num_rows() {
                kept.push(batch);
                continue;
            }
            outside.extend(
                millis
                    .iter()
                    .zip(inside.iter())
                    .filter(|(_, inside)| *inside == Some(false))
                    .map(|(t, _)| t.map(EventTime::from_ms)),
            );
            let batch = filter_record_batch(&batch, &inside)
                .map_err(|e| WeirError::Internal(format!("dropping rows out of range: {e}")))?;
            kept.push(batch);
        }
        Ok((kept, outside))
    }

    /// Takes in the rows source `index` contributed to a batch.
    pub fn observe(&mut self, index: usize, batches: &[RecordBatch]) -> Result<()> {
        let Some(spec) = &self.specs[index] else {
            return Ok(());
        };
        for batch in batches {
            let millis = event_millis(batch, spec)?;
            if let Some(max) = arrow::compute::max(&millis) {
                let max = EventTime::from_ms(max);
                let seen = &mut self.max_event[index];
                *seen = Some(seen.map_or(max, |s| s.max(max)));
            }
        }
        Ok(())
    }

    /// Declares the end of the input (`flush_on_end`): the watermark moves to the end of
    /// time, closing every window; anything arriving later is late.
    pub fn end_of_input(&mut self) {
        self.current = Some(EventTime::END_OF_TIME);
    }

    /// Computes the watermark after a batch (it takes effect from the next one).
    pub fn advance(&mut self) -> Option<EventTime> {
        let mut candidate: Option<EventTime> = None;
        for (spec, max) in self.specs.iter().zip(&self.max_event) {
            let Some(spec) = spec else { continue };
            let Some(max) = max else { return self.current };
            let source_watermark = max.minus(spec.delay);
            candidate = Some(candidate.map_or(source_watermark, |c| c.min(source_watermark)));
        }
        if let Some(candidate) = candidate {
            self.current = Some(self.current.map_or(candidate, |c| c.max(candidate)));
        }
        self.current
    }
}

/// The event times of `batch` in ms.
fn event_millis(batch: &RecordBatch, spec: &WatermarkSpec) -> Result<TimestampMillisecondArray> {
    let column = batch.column_by_name(&spec.column).ok_or_else(|| {
        WeirError::Internal(format!(
            "watermark column '{}' missing from a batch",
            spec.column
        ))
    })?;
    let millis = cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None)).map_err(|e| {
        WeirError::Internal(format!("reading watermark column '{}': {e}", spec.column))
    })?;
    millis
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .cloned()
        .ok_or_else(|| {
            WeirError::Internal(format!(
                "watermark column '{}' is not a timestamp",
                spec.column
            ))
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use arrow::array::TimestampNanosecondArray;
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn rows(nanos: &[i64]) -> RecordBatch {
        let schema = Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        )]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(TimestampNanosecondArray::from(nanos.to_vec()))],
        )
        .unwrap()
    }

    fn spec(delay_ms: u64) -> Option<WatermarkSpec> {
        Some(WatermarkSpec {
            column: "ts".into(),
            delay: Duration::from_millis(delay_ms),
        })
    }

    #[test]
    fn max_minus_delay_monotonic_and_min_across_sources() {
        let mut tracker = WatermarkTracker::new(vec![spec(5_000), None, spec(1_000)]);
        tracker
            .observe(0, &[rows(&[20_000_000_000, 10_000_000_000])])
            .unwrap();
        // Source 2 has seen nothing: no watermark yet.
        assert_eq!(tracker.advance(), None);
        tracker.observe(2, &[rows(&[9_000_000_000])]).unwrap();
        assert_eq!(tracker.advance(), Some(EventTime::from_ms(8_000))); // min(20s - 5s, 9s - 1s)
        tracker.observe(2, &[rows(&[30_000_000_000])]).unwrap();
        assert_eq!(tracker.advance(), Some(EventTime::from_ms(15_000)));
        // Older rows never move it back.
        tracker.observe(0, &[rows(&[1_000_000_000])]).unwrap();
        assert_eq!(tracker.advance(), Some(EventTime::from_ms(15_000)));
        let mut restored = WatermarkTracker::new(vec![spec(5_000), None, spec(1_000)]);
        restored.restore(tracker.current(), tracker.max_event());
        assert_eq!(
            (restored.current(), restored.max_event()),
            (
                Some(EventTime::from_ms(15_000)),
                &[
                    Some(EventTime::from_ms(20_000)),
                    None,
                    Some(EventTime::from_ms(30_000))
                ][..]
            )
        );
    }

    #[test]
    fn times_out_of_range_or_beyond_milliseconds_are_split_off_and_nulls_kept() {
        let schema = Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Second, None),
            true,
        )]);
        let seconds = arrow::array::TimestampSecondArray::from(vec![
            Some(1_700_000_000),
            None,
            Some(i64::MAX / 10),
            Some(-9_300_000_000),
        ]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(seconds)]).unwrap();
        let tracker = WatermarkTracker::new(vec![spec(0)]);
        let (kept, outside) = tracker.outside_event_times(0, vec![batch]).unwrap();
        assert_eq!(kept[0].num_rows(), 2, "the time in range and the null");
        assert_eq!(
            outside,
            [None, Some(EventTime::from_ms(-9_300_000_000_000))]
        );
    }
}
