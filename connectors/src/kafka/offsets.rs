//! [`TopicOffsets`]: the position of a Kafka source, as written to Weir's offsets log, and how a
//! batch's end offsets are chosen from what each partition has available.
//!
//! An offset is `{"topic": "orders", "partitions": {"0": 17, "1": 4}}`: for each partition,
//! the next Kafka offset to read. A batch reads, in each partition, the records from its start
//! offset (inclusive) to its end offset (exclusive).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ConnectorError, Result};
use crate::offset::SourceOffset;

/// Per partition, the next offset to read in one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct TopicOffsets {
    /// The topic the offsets belong to.
    pub topic: String,
    /// Partition id to the next offset to read.
    pub partitions: BTreeMap<i32, i64>,
}

impl TopicOffsets {
    /// Reads an offset written by [`TopicOffsets::to_source_offset`], checking that it belongs
    /// to `topic` (a checkpoint reused after the `topic` option changed is refused).
    pub fn from_source_offset(offset: &SourceOffset, topic: &str) -> Result<Self> {
        let offsets: TopicOffsets = serde_json::from_value(offset.0.clone()).map_err(|e| {
            ConnectorError::Internal(format!(
                "kafka source offset {offset} is not a topic offset: {e}"
            ))
        })?;
        if offsets.topic != topic {
            return Err(ConnectorError::Config(format!(
                "the checkpoint holds offsets of kafka topic '{}' but the source now reads topic \
                 '{topic}'; use a new checkpoint for the new topic",
                offsets.topic
            )));
        }
        Ok(offsets)
    }

    /// The offset as Weir stores it.
    pub fn to_source_offset(&self) -> SourceOffset {
        SourceOffset(serde_json::json!({
            "topic": self.topic,
            "partitions": self
                .partitions
                .iter()
                .map(|(p, o)| (p.to_string(), serde_json::Value::from(*o)))
                .collect::<serde_json::Map<_, _>>(),
        }))
    }
}

/// What one partition has: its first available offset and its end (the high watermark, or
/// the last stable offset under `read_committed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Watermarks {
    /// The first offset still stored.
    pub low: i64,
    /// One past the last readable offset.
    pub high: i64,
}

/// The end offsets of the next batch starting at `start`, given each partition's
/// `available` watermarks and an optional limit on the records in the batch.
///
/// A partition missing from `start` is new (the topic grew) and starts at its low watermark.
/// A partition missing from `available` (deleted) keeps its start offset. An end never goes
/// below its start. Returns `None` when no partition has anything to read.
pub(super) fn next_end(
    start: &BTreeMap<i32, i64>,
    available: &BTreeMap<i32, Watermarks>,
    max_records: Option<u64>,
) -> Option<BTreeMap<i32, i64>> {
    let mut from: BTreeMap<i32, i64> = start.clone();
    for (partition, marks) in available {
        from.entry(*partition).or_insert(marks.low);
    }
    let backlog: BTreeMap<i32, u64> = from
        .iter()
        .map(|(p, first)| {
            let high = available.get(p).map_or(*first, |m| m.high);
            (*p, u64::try_from(high - first).unwrap_or(0))
        })
        .collect();
    let take = match max_records {
        Some(limit) => fair_split(&backlog, limit),
        None => backlog,
    };
    if take.values().all(|n| *n == 0) {
        return None;
    }
    Some(
        from.into_iter()
            .map(|(p, first)| (p, first + take.get(&p).map_or(0, |n| *n as i64)))
            .collect(),
    )
}

/// Splits `limit` records across partitions fairly: every partition gets an equal share,
/// and what a partition with a smaller backlog leaves over goes to the others (max-min
/// fairness). Deterministic, and takes `min(limit, total backlog)` records in all.
pub(super) fn fair_split(backlog: &BTreeMap<i32, u64>, limit: u64) -> BTreeMap<i32, u64> {
    let mut by_size: Vec<(i32, u64)> = backlog.iter().map(|(p, n)| (*p, *n)).collect();
    by_size.sort_by_key(|(p, n)| (*n, *p));
    let mut left = limit;
    let mut take = BTreeMap::new();
    let count = by_size.len() as u64;
    for (i, (partition, size)) in by_size.iter().enumerate() {
        let share = left / (count - i as u64);
        let n = (*size).min(share);
        take.insert(*partition, n);
        left -= n;
    }
    // Integer division leaves up to `count - 1` records; hand them out in partition order.
    for (partition, n) in take.iter_mut() {
        if left == 0 {
            break;
        }
        if *n < backlog[partition] {
            *n += 1;
            left -= 1;
        }
    }
    take
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn map<T: Copy>(pairs: &[(i32, T)]) -> BTreeMap<i32, T> {
        pairs.iter().copied().collect()
    }

    fn marks(pairs: &[(i32, i64, i64)]) -> BTreeMap<i32, Watermarks> {
        pairs
            .iter()
            .map(|(p, low, high)| {
                (
                    *p,
                    Watermarks {
                        low: *low,
                        high: *high,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn offsets_round_trip_as_json_and_refuse_another_topic() {
        let offsets = TopicOffsets {
            topic: "orders".into(),
            partitions: map(&[(0, 17), (1, 4)]),
        };
        let stored = offsets.to_source_offset();
        assert_eq!(
            stored.0.to_string(),
            r#"{"partitions":{"0":17,"1":4},"topic":"orders"}"#
        );
        assert_eq!(
            TopicOffsets::from_source_offset(&stored, "orders").unwrap(),
            offsets
        );
        let err = TopicOffsets::from_source_offset(&stored, "payments").unwrap_err();
        assert!(
            err.to_string().contains(
                "offsets of kafka topic 'orders' but the source now reads topic 'payments'"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_end_covers_everything_available_and_picks_up_new_partitions_at_their_start() {
        let start = map(&[(0, 10), (1, 4)]);
        let available = marks(&[(0, 0, 15), (1, 0, 4), (2, 3, 8)]);
        assert_eq!(
            next_end(&start, &available, None),
            Some(map(&[(0, 15), (1, 4), (2, 8)]))
        );
        // Nothing new: no batch.
        assert_eq!(
            next_end(
                &map(&[(0, 15), (1, 4)]),
                &marks(&[(0, 0, 15), (1, 0, 4)]),
                None
            ),
            None
        );
        // A watermark behind the start (a deleted partition, or a smaller last stable offset)
        // never moves the end backwards.
        assert_eq!(
            next_end(
                &map(&[(0, 15), (1, 9)]),
                &marks(&[(0, 0, 16), (1, 0, 2)]),
                None
            ),
            Some(map(&[(0, 16), (1, 9)]))
        );
    }

    #[test]
    fn a_limit_is_shared_fairly_and_unused_shares_go_to_the_busy_partitions() {
        let backlog = map(&[(0, 100u64), (1, 2), (2, 100)]);
        assert_eq!(fair_split(&backlog, 10), map(&[(0, 4u64), (1, 2), (2, 4)]));
        assert_eq!(fair_split(&backlog, 11), map(&[(0, 4u64), (1, 2), (2, 5)]));
        // A limit smaller than the number of partitions still makes progress.
        assert_eq!(fair_split(&backlog, 1), map(&[(0, 0u64), (1, 0), (2, 1)]));
        assert_eq!(fair_split(&backlog, 500), backlog);
        let end = next_end(
            &map(&[(0, 0), (1, 0)]),
            &marks(&[(0, 0, 5), (1, 0, 5)]),
            Some(3),
        );
        assert_eq!(end, Some(map(&[(0, 1), (1, 2)])));
    }
}
