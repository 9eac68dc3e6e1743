//! [`Endpoint`]: one topic on one Kafka cluster, and the blocking librdkafka calls both the
//! source and the sink make on it: metadata and watermark look-ups with a timeout, retried
//! with backoff; and [`fetch_ranges`], which reads exact offset ranges with an assigned
//! (group-less) consumer.
//!
//! Everything here blocks: callers run it on tokio's blocking pool (see [`blocking`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer as _};

use super::logs::KafkaLogs;

/// A consumer whose librdkafka logs go through [`KafkaLogs`].
pub(crate) type Consumer = BaseConsumer<KafkaLogs>;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaRespErr;

use super::offsets::Watermarks;
use crate::error::{ConnectorError, Result};
use crate::options::ConnectorOptions;

/// Attempts of a metadata or watermark call before giving up.
const ATTEMPTS: u32 = 3;
/// Wait before the second attempt; doubled before each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How long one poll waits for a record before the reader checks positions and time-outs.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Default of option `timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// librdkafka wants its socket timeout at least 1 s above the fetch wait (500 ms).
const MIN_SOCKET_TIMEOUT: Duration = Duration::from_secs(2);

/// A failure talking to Kafka, with what was being done and what to check.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct KafkaFailure(pub String);

/// One topic on one cluster, and the timeout of each request to it.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    /// The bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// How long one metadata, watermark or transaction call may take.
    pub timeout: Duration,
}

impl Endpoint {
    /// Reads `brokers`, `topic` and `timeout`.
    pub fn from_options(options: &ConnectorOptions) -> Result<Self> {
        let brokers = options.required("brokers")?.trim();
        if brokers.is_empty() || brokers.split(',').any(|b| b.trim().is_empty()) {
            return Err(options.bad_value(
                "brokers",
                brokers,
                "a list such as 'host1:9092,host2:9092'",
            ));
        }
        let topic = options.required("topic")?.trim();
        if topic.is_empty() {
            return Err(options.bad_value("topic", topic, "a topic name"));
        }
        Ok(Self {
            brokers: brokers.to_string(),
            topic: topic.to_string(),
            timeout: options.duration("timeout")?.unwrap_or(DEFAULT_TIMEOUT),
        })
    }

    /// How errors name the topic: `kafka topic 'orders' on brokers 'host:9092'`.
    pub fn describe(&self) -> String {
        format!("kafka topic '{}' on brokers '{}'", self.topic, self.brokers)
    }

    /// An external-system error while doing `action`.
    pub fn io(&self, action: &str, cause: impl std::fmt::Display) -> ConnectorError {
        ConnectorError::io(self.describe(), KafkaFailure(format!("{action}: {cause}")))
    }

    /// The configuration every client of this endpoint starts from.
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", client_id)
            .set(
                "socket.timeout.ms",
                millis(self.timeout.max(MIN_SOCKET_TIMEOUT)),
            );
        config
    }

    /// A consumer that reads only what it is assigned, only committed records, and never
    /// joins a group or commits offsets: positions live in Weir's checkpoint. (librdkafka
    /// needs a `group.id` to assign partitions; assigning does not join the group.)
    pub fn consumer(&self, client_id: &str) -> Result<Consumer> {
        self.client_config(client_id)
            .set("group.id", client_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "error")
            .set("allow.auto.create.topics", "false")
            .create_with_context(KafkaLogs)
            .map_err(|e| self.io("creating a kafka consumer", e))
    }

    /// Runs `call` up to [`ATTEMPTS`] times with exponential backoff; the final error names
    /// the brokers and the topic and says what to check.
    pub fn retry<T>(&self, action: &str, mut call: impl FnMut() -> KafkaResult<T>) -> Result<T> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            match call() {
                Ok(value) => return Ok(value),
                Err(e) if attempt < ATTEMPTS => {
                    // The first failure is news; the retries after it are chatter.
                    if attempt == 1 {
                        tracing::warn!(topic = %self.topic, brokers = %self.brokers, error = %e, "{action} failed; retrying up to {} more times", ATTEMPTS - 1);
                    } else {
                        tracing::debug!(topic = %self.topic, attempt, error = %e, "{action} failed; retrying");
                    }
                    std::thread::sleep(backoff);
                    backoff *= 2;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(self.io(
                        &format!(
                            "{action} failed {ATTEMPTS} times, each with a timeout of {}",
                            humantime::format_duration(self.timeout)
                        ),
                        format!(
                            "{e}; check that the brokers are running and reachable from this \
                             machine and that option 'brokers' lists them"
                        ),
                    ));
                }
            }
        }
    }

    /// The partition ids of the topic; a clear error when it does not exist.
    pub fn partitions(&self, consumer: &Consumer) -> Result<Vec<i32>> {
        let metadata = self.retry("fetching the topic's metadata", || {
            let metadata = consumer.fetch_metadata(Some(&self.topic), self.timeout)?;
            // A broker that is still starting answers with a retriable topic error.
            match metadata.topics().first().and_then(|t| t.error()) {
                Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) => Err(
                    KafkaError::MetadataFetch(RDKafkaErrorCode::LeaderNotAvailable),
                ),
                _ => Ok(metadata),
            }
        })?;
        let topic = metadata.topics().iter().find(|t| t.name() == self.topic);
        match topic {
            Some(topic) if topic.error().is_none() && !topic.partitions().is_empty() => {
                let mut ids: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
                ids.sort_unstable();
                Ok(ids)
            }
            Some(topic)
                if topic.error().is_some_and(|e| {
                    e != RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
                }) =>
            {
                Err(self.io(
                    "fetching the topic's metadata",
                    format!("the broker answered {:?}", topic.error()),
                ))
            }
            _ => Err(ConnectorError::Config(format!(
                "kafka topic '{}' does not exist on brokers '{}': create it first (Weir does \
                 not create topics) or correct option 'topic'",
                self.topic, self.brokers
            ))),
        }
    }

    /// The low and high watermarks of each of `partitions` (the high one is the last stable
    /// offset for a `read_committed` consumer).
    pub fn watermarks(
        &self,
        consumer: &Consumer,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, Watermarks>> {
        partitions
            .iter()
            .map(|p| {
                let (low, high) = self
                    .retry(&format!("fetching the offsets of partition {p}"), || {
                        consumer.fetch_watermarks(&self.topic, *p, self.timeout)
                    })?;
                Ok((*p, Watermarks { low, high }))
            })
            .collect()
    }
}

/// What to do when a range starts before the partition's first stored offset (records were
/// deleted by retention before they were read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DataLoss {
    /// Stop with an error naming the partition and the lost offsets.
    Fail,
    /// Log a warning and read from the first stored offset.
    Skip,
}

/// Reads, in each partition, the records with offsets in `[from, to)` of `ranges`, calling
/// `on_message` for each in offset order per partition (partitions interleave).
///
/// A partition is done when a record at or past `to - 1` arrived, or when the consumer's
/// position reached `to` (the last offsets of a range can be transaction markers or records of
/// aborted transactions, which a `read_committed` consumer skips). Fails when no partition
/// makes progress for `poll_timeout`.
pub(super) fn fetch_ranges(
    endpoint: &Endpoint,
    consumer: &Consumer,
    ranges: &BTreeMap<i32, (i64, i64)>,
    poll_timeout: Duration,
    data_loss: DataLoss,
    mut on_message: impl FnMut(&BorrowedMessage<'_>) -> Result<()>,
) -> Result<()> {
    // The next offset expected in each unfinished partition, and where it ends.
    let mut pending: BTreeMap<i32, (i64, i64)> = ranges
        .iter()
        .filter(|(_, (from, to))| from < to)
        .map(|(p, range)| (*p, *range))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    assign(endpoint, consumer, &pending)?;
    let mut last_progress = Instant::now();
    while !pending.is_empty() {
        match consumer.poll(POLL_INTERVAL) {
            Some(Ok(message)) => {
                let partition = message.partition();
                let Some((next, to)) = pending.get_mut(&partition) else {
                    continue;
                };
                let offset = message.offset();
                if offset < *to && offset >= *next {
                    on_message(&message)?;
                }
                *next = (*next).max(offset + 1);
                if *next >= *to {
                    pending.remove(&partition);
                }
                last_progress = Instant::now();
            }
            Some(Err(e)) if is_out_of_range(&e) => {
                skip_lost_records(endpoint, consumer, &mut pending, data_loss)?;
                last_progress = Instant::now();
            }
            Some(Err(e)) => {
                // librdkafka reconnects by itself; these are reported, not fatal.
                tracing::warn!(topic = %endpoint.topic, error = %e, "kafka consumer error");
            }
            None => {
                if advance_to_positions(endpoint, consumer, &mut pending)? {
                    last_progress = Instant::now();
                }
            }
        }
        if !pending.is_empty() && last_progress.elapsed() > poll_timeout {
            let stuck: Vec<String> = pending
                .iter()
                .map(|(p, (next, to))| format!("partition {p} at offset {next} of {to}"))
                .collect();
            return Err(endpoint.io(
                &format!(
                    "reading records: no progress for {}",
                    humantime::format_duration(poll_timeout)
                ),
                format!(
                    "still waiting for {}; check that the brokers are up (or raise option \
                     'poll_timeout')",
                    stuck.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Reads whatever follows `from` in each partition until no record has arrived for `idle`,
/// calling `on_message` for each. For a broker that reports a partition's end short of its
/// last records (tansu 0.6 answers the first offset of the last written batch, plus one).
pub(super) fn fetch_past(
    endpoint: &Endpoint,
    consumer: &Consumer,
    from: &BTreeMap<i32, i64>,
    idle: Duration,
    mut on_message: impl FnMut(&BorrowedMessage<'_>) -> Result<()>,
) -> Result<()> {
    let open: BTreeMap<i32, (i64, i64)> = from.iter().map(|(p, o)| (*p, (*o, i64::MAX))).collect();
    if open.is_empty() {
        return Ok(());
    }
    assign(endpoint, consumer, &open)?;
    let mut last_record = Instant::now();
    while last_record.elapsed() < idle {
        match consumer.poll(POLL_INTERVAL) {
            Some(Ok(message)) => {
                if from
                    .get(&message.partition())
                    .is_some_and(|o| message.offset() >= *o)
                {
                    on_message(&message)?;
                }
                last_record = Instant::now();
            }
            Some(Err(e)) => {
                tracing::debug!(topic = %endpoint.topic, error = %e, "reading past the reported end");
            }
            None => {}
        }
    }
    Ok(())
}

fn assign(
    endpoint: &Endpoint,
    consumer: &Consumer,
    pending: &BTreeMap<i32, (i64, i64)>,
) -> Result<()> {
    let mut assignment = TopicPartitionList::with_capacity(pending.len());
    for (partition, (next, _)) in pending {
        assignment
            .add_partition_offset(&endpoint.topic, *partition, Offset::Offset(*next))
            .map_err(|e| endpoint.io("assigning partitions", e))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| endpoint.io("assigning partitions", e))
}

fn is_out_of_range(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange)
    )
}

/// After an out-of-range error: finds the partitions whose next offset was deleted, then fails
/// or moves them to their first stored offset.
fn skip_lost_records(
    endpoint: &Endpoint,
    consumer: &Consumer,
    pending: &mut BTreeMap<i32, (i64, i64)>,
    data_loss: DataLoss,
) -> Result<()> {
    let partitions: Vec<i32> = pending.keys().copied().collect();
    let marks = endpoint.watermarks(consumer, &partitions)?;
    for (partition, (next, to)) in pending.iter_mut() {
        let Some(low) = marks.get(partition).map(|m| m.low) else {
            continue;
        };
        if *next >= low {
            continue;
        }
        if data_loss == DataLoss::Fail {
            return Err(ConnectorError::Io {
                location: endpoint.describe(),
                source: Box::new(KafkaFailure(format!(
                    "offsets {next}..{} of partition {partition} were deleted (by retention) \
                     before Weir read them; set fail_on_data_loss = 'false' to go on without \
                     them",
                    low.min(*to)
                ))),
            });
        }
        tracing::warn!(topic = %endpoint.topic, partition, from = *next, to = low, "skipping records deleted before they were read");
        *next = low;
    }
    pending.retain(|_, (next, to)| next < to);
    if pending.is_empty() {
        return Ok(());
    }
    assign(endpoint, consumer, pending)
}

/// Marks done the partitions whose consumer position reached their end; true if any moved.
fn advance_to_positions(
    endpoint: &Endpoint,
    consumer: &Consumer,
    pending: &mut BTreeMap<i32, (i64, i64)>,
) -> Result<bool> {
    let positions = consumer
        .position()
        .map_err(|e| endpoint.io("reading the consumer's positions", e))?;
    let mut moved = false;
    for element in positions.elements_for_topic(&endpoint.topic) {
        let (Some((next, _)), Offset::Offset(position)) =
            (pending.get_mut(&element.partition()), element.offset())
        else {
            continue;
        };
        if position > *next {
            *next = position;
            moved = true;
        }
    }
    pending.retain(|_, (next, to)| next < to);
    Ok(moved)
}

/// A duration in whole milliseconds, as librdkafka options take them.
pub(super) fn millis(duration: Duration) -> String {
    duration.as_millis().max(1).to_string()
}

/// Runs blocking librdkafka work on tokio's blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ConnectorError::Internal(format!("a kafka client task failed: {e}")))?
}
