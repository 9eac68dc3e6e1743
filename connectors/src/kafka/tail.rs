//! Reading back what a Kafka sink wrote: the headers every record of the sink carries, and
//! [`last_written`], which finds the newest record of one query in each partition by reading
//! the partition's tail backwards in growing windows (only committed records).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};

use super::client::{Consumer, DataLoss, Endpoint, fetch_past, fetch_ranges};
use crate::error::Result;

/// Header naming the sink (and query) that wrote the record.
pub(super) const QUERY_HEADER: &str = "weir.query";
/// Header holding the batch id that wrote the record.
pub(super) const BATCH_HEADER: &str = "weir.batch";
/// The record's position among its batch's records in its partition.
pub(super) const SEQ_HEADER: &str = "weir.seq";
/// How many records its batch writes to its partition.
pub(super) const COUNT_HEADER: &str = "weir.count";
/// How many records its batch writes in all.
pub(super) const TOTAL_HEADER: &str = "weir.total";
/// The partition count the batch's records were placed with.
pub(super) const PARTITIONS_HEADER: &str = "weir.partitions";

/// Records read per partition in the first window; each further window is 4 times larger.
const FIRST_WINDOW: i64 = 256;
/// How long the read-back waits for records past the end the broker reports.
const SETTLE: Duration = Duration::from_millis(300);

/// Where a record stands in its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sequence {
    /// Its position among the batch's records in its partition.
    pub seq: u64,
    /// The batch's records in its partition.
    pub count: u64,
    /// The batch's records in all partitions.
    pub total: u64,
    /// The partition count the batch was placed with.
    pub partitions: i32,
}

/// The newest record of a query in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LastWritten {
    /// Its batch.
    pub batch: u64,
    /// Its place in the batch (absent if written by something that does not number records).
    pub sequence: Option<Sequence>,
}

/// The headers of one record of `batch` written by `query`.
pub(super) fn headers(query: &str, batch: u64, sequence: Sequence) -> OwnedHeaders {
    let values = [
        (BATCH_HEADER, batch.to_string()),
        (SEQ_HEADER, sequence.seq.to_string()),
        (COUNT_HEADER, sequence.count.to_string()),
        (TOTAL_HEADER, sequence.total.to_string()),
        (PARTITIONS_HEADER, sequence.partitions.to_string()),
    ];
    let headers = OwnedHeaders::new_with_capacity(values.len() + 1).insert(Header {
        key: QUERY_HEADER,
        value: Some(query.as_bytes()),
    });
    values.iter().fold(headers, |headers, (key, value)| {
        headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        })
    })
}

fn header<'a>(message: &'a impl Message, key: &str) -> Option<&'a [u8]> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
}

fn number<T: std::str::FromStr>(message: &impl Message, key: &str) -> Option<T> {
    std::str::from_utf8(header(message, key)?)
        .ok()?
        .parse()
        .ok()
}

/// What `message` says about the query that wrote it, if `query` wrote it.
fn written_by(message: &impl Message, query: &str) -> Option<LastWritten> {
    if header(message, QUERY_HEADER)? != query.as_bytes() {
        return None;
    }
    let sequence = || {
        Some(Sequence {
            seq: number(message, SEQ_HEADER)?,
            count: number(message, COUNT_HEADER)?,
            total: number(message, TOTAL_HEADER)?,
            partitions: number(message, PARTITIONS_HEADER)?,
        })
    };
    Some(LastWritten {
        batch: number(message, BATCH_HEADER)?,
        sequence: sequence(),
    })
}

/// The newest record `query` wrote in each of `partitions` (absent: none found).
///
/// Reads the last [`FIRST_WINDOW`] records of every partition, and past the end the broker
/// reports until nothing more arrives for `SETTLE` (see [`fetch_past`]); then, for each
/// partition where the query's records were not found, windows 4 times larger further back.
pub(super) fn last_written(
    endpoint: &Endpoint,
    consumer: &Consumer,
    partitions: &[i32],
    query: &str,
    poll_timeout: Duration,
) -> Result<BTreeMap<i32, LastWritten>> {
    let marks = endpoint.watermarks(consumer, partitions)?;
    let mut found = BTreeMap::new();
    let keep = |found: &mut BTreeMap<i32, LastWritten>, message: &BorrowedMessage<'_>| {
        if let Some(written) = written_by(message, query) {
            found.insert(message.partition(), written);
        }
        Ok(())
    };
    let newest: BTreeMap<i32, (i64, i64)> = marks
        .iter()
        .map(|(p, m)| (*p, ((m.high - FIRST_WINDOW).max(m.low), m.high)))
        .collect();
    fetch_ranges(
        endpoint,
        consumer,
        &newest,
        poll_timeout,
        DataLoss::Skip,
        |m| keep(&mut found, m),
    )?;
    let ends: BTreeMap<i32, i64> = marks.iter().map(|(p, m)| (*p, m.high)).collect();
    fetch_past(endpoint, consumer, &ends, SETTLE, |m| keep(&mut found, m))?;
    for (partition, marks) in marks {
        let (mut high, mut window) = (newest[&partition].0, FIRST_WINDOW * 4);
        while !found.contains_key(&partition) && high > marks.low {
            let low = (high - window).max(marks.low);
            let range = BTreeMap::from([(partition, (low, high))]);
            fetch_ranges(
                endpoint,
                consumer,
                &range,
                poll_timeout,
                DataLoss::Skip,
                |m| keep(&mut found, m),
            )?;
            high = low;
            window = window.saturating_mul(4);
        }
    }
    Ok(found)
}
