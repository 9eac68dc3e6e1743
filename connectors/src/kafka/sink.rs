//! [`KafkaSink`]: one record per output row, exactly once per batch: each batch is one Kafka
//! transaction (or, without transactions, written by an idempotent producer), and a restarted
//! query skips a batch the topic already holds whole and resumes one it holds part of. See
//! the module doc of [`kafka`](super) for the guarantees of each mode.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use rdkafka::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::client::{Endpoint, blocking, millis};
use super::encode::{OutRecord, SinkColumns, SinkFormat, assign_partitions, encode};
use super::tail::{LastWritten, Sequence, headers, last_written};
use crate::error::{ConnectorError, Result};
use crate::offset::BatchId;
use crate::options::ConnectorOptions;
use crate::sink::{OutputMode, Sink, SinkOpen};

/// How long the tail scan may wait for records before giving up.
const SCAN_POLL_TIMEOUT: Duration = Duration::from_secs(30);
/// Delivering a batch may take at least this long before it fails.
const MIN_DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a batch's records may take to be delivered (and its transaction committed).
fn delivery_timeout(endpoint: &Endpoint) -> Duration {
    endpoint.timeout.max(MIN_DELIVERY_TIMEOUT)
}

/// Whether the sink writes with Kafka transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transactions {
    /// Use them when the broker has them, else fall back (with a warning).
    Auto,
    /// Use them; fail when the broker has none.
    On,
    /// Write with an idempotent producer.
    Off,
}

/// The mode a sink runs in once open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Transactional,
    Idempotent,
}

/// Writes each output row as one record of a Kafka topic.
#[derive(Debug)]
pub struct KafkaSink {
    settings: Settings,
    open: tokio::sync::Mutex<Option<Opened>>,
}

/// The validated options of a Kafka sink.
#[derive(Debug, Clone)]
struct Settings {
    name: String,
    endpoint: Endpoint,
    format: SinkFormat,
    key: Option<String>,
    transactions: Transactions,
}

/// A sink's state between `open` and the end of the query.
struct Opened {
    columns: SinkColumns,
    producer: Arc<ThreadedProducer<Delivery>>,
    mode: Mode,
    partitions: i32,
    /// Batches up to this one are already in the topic (found on open).
    written_through: Option<BatchId>,
    /// What of a partly written batch is already in the topic (found on open).
    partial: Option<Partial>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("mode", &self.mode)
            .field("partitions", &self.partitions)
            .field("written_through", &self.written_through)
            .field("partial", &self.partial)
            .finish_non_exhaustive()
    }
}

/// The part of batch `batch` found in the topic: per partition, the next record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Partial {
    batch: BatchId,
    partitions: i32,
    next_seq: BTreeMap<i32, u64>,
}

/// Collects delivery failures reported by librdkafka.
#[derive(Debug, Default)]
struct Delivery {
    failures: Mutex<Vec<String>>,
}

impl ClientContext for Delivery {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        super::logs::log(level, facility, message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        super::logs::report(&error, reason);
    }
}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            use rdkafka::Message;
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if failures.len() < 5 {
                failures.push(format!("partition {}: {error}", message.partition()));
            }
        }
    }
}

impl KafkaSink {
    /// The sink described by `options` (checked now; the brokers are contacted on open).
    pub fn new(options: &ConnectorOptions) -> Result<Self> {
        let format = match options.choice("format", &["json", "raw", "csv", "parquet"])? {
            Some("json") => SinkFormat::Json,
            Some("raw") => SinkFormat::Raw,
            Some(other) => {
                return Err(ConnectorError::Config(format!(
                    "kafka sink '{}' cannot write format '{other}': use json or raw",
                    options.object()
                )));
            }
            None => {
                return Err(ConnectorError::Config(format!(
                    "option 'format' is required for kafka sink '{}': json or raw",
                    options.object()
                )));
            }
        };
        let transactions = match options.choice("transactions", &["auto", "true", "false"])? {
            None | Some("auto") => Transactions::Auto,
            Some("true") => Transactions::On,
            Some(_) => Transactions::Off,
        };
        Ok(Self {
            settings: Settings {
                name: options.object().to_string(),
                endpoint: Endpoint::from_options(options)?,
                format,
                key: options.get("key").map(|k| k.trim().to_string()),
                transactions,
            },
            open: tokio::sync::Mutex::new(None),
        })
    }
}

impl Settings {
    /// The transactional id: stable across restarts of the same query, distinct per topic.
    fn transactional_id(&self) -> String {
        format!("weir-{}-{}", self.name, self.endpoint.topic)
    }

    fn producer(&self, mode: Mode) -> Result<ThreadedProducer<Delivery>> {
        let delivery = delivery_timeout(&self.endpoint);
        let mut config = self
            .endpoint
            .client_config(&format!("weir-sink-{}", self.name));
        config
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", millis(delivery))
            .set("linger.ms", "5");
        match mode {
            Mode::Transactional => config.set("transactional.id", self.transactional_id()).set(
                "transaction.timeout.ms",
                millis(delivery + Duration::from_secs(30)),
            ),
            Mode::Idempotent => config.set("enable.gapless.guarantee", "true"),
        };
        config
            .create_with_context(Delivery::default())
            .map_err(|e| self.endpoint.io("creating a kafka producer", e))
    }

    /// Creates the producer; with transactions, `init_transactions` fences an older instance
    /// of this query and aborts its open transaction.
    fn start_producer(&self) -> Result<(ThreadedProducer<Delivery>, Mode)> {
        if self.transactions == Transactions::Off {
            return Ok((self.producer(Mode::Idempotent)?, Mode::Idempotent));
        }
        let producer = self.producer(Mode::Transactional)?;
        match producer.init_transactions(self.endpoint.timeout) {
            Ok(()) => Ok((producer, Mode::Transactional)),
            Err(e) if self.transactions == Transactions::Auto && lacks_transactions(&e) => {
                tracing::warn!(sink = %self.name, topic = %self.endpoint.topic, error = %e,
                    "the kafka broker does not support transactions; writing with an idempotent \
                     producer instead (readers may see a batch before it is complete)");
                drop(producer);
                Ok((self.producer(Mode::Idempotent)?, Mode::Idempotent))
            }
            Err(e) => Err(self.endpoint.io(
                &format!(
                    "starting transactions with transactional.id '{}'",
                    self.transactional_id()
                ),
                format!(
                    "{e}; a broker without transactions needs option transactions = 'false' (or \
                     'auto')"
                ),
            )),
        }
    }

    /// After a restart: what the query already wrote past its last committed batch.
    fn recover(
        &self,
        partitions: &[i32],
        last_committed: Option<BatchId>,
    ) -> Result<(Option<BatchId>, Option<Partial>)> {
        let consumer = self
            .endpoint
            .consumer(&format!("weir-sink-{}-scan", self.name))?;
        let found = last_written(
            &self.endpoint,
            &consumer,
            partitions,
            &self.name,
            SCAN_POLL_TIMEOUT,
        )?;
        Ok(recovery(&found, last_committed))
    }
}

/// Decides, from the newest record of the query in each partition, which batches are
/// already written (`written_through`) and what part of the pending batch is.
///
/// The batch after `last_committed` is whole in the topic when the records found account for
/// all of it (the sum over partitions of the last position found plus one equals the batch's
/// total); then it is skipped. Otherwise the records found are a prefix of each partition's
/// share (the producer is idempotent and gapless) and the write resumes after them. With
/// transactions, on a broker that hides aborted records, the read-back finds either the whole
/// batch or nothing of it.
fn recovery(
    found: &BTreeMap<i32, LastWritten>,
    last_committed: Option<BatchId>,
) -> (Option<BatchId>, Option<Partial>) {
    let pending = last_committed.map_or(0, |c| c.0 + 1);
    let Some(newest) = found.values().map(|w| w.batch).max() else {
        return (None, None);
    };
    if newest < pending {
        return (None, None);
    }
    let of_newest: Vec<(i32, Option<Sequence>)> = found
        .iter()
        .filter(|(_, w)| w.batch == newest)
        .map(|(p, w)| (*p, w.sequence))
        .collect();
    let sequences: Option<Vec<(i32, Sequence)>> =
        of_newest.iter().map(|(p, s)| s.map(|s| (*p, s))).collect();
    let Some(sequences) = sequences else {
        // Records that do not number themselves: only whole batches are written that way.
        return (Some(BatchId(newest)), None);
    };
    let found_records: u64 = sequences.iter().map(|(_, s)| s.seq + 1).sum();
    let total = sequences
        .iter()
        .map(|(_, s)| s.total)
        .max()
        .unwrap_or_default();
    if newest > pending || found_records >= total {
        return (Some(BatchId(newest)), None);
    }
    let partitions = sequences
        .iter()
        .map(|(_, s)| s.partitions)
        .max()
        .unwrap_or_default();
    (
        None,
        Some(Partial {
            batch: BatchId(newest),
            partitions,
            next_seq: sequences.iter().map(|(p, s)| (*p, s.seq + 1)).collect(),
        }),
    )
}

/// Whether `init_transactions` failed because the broker has no transactions.
fn lacks_transactions(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnsupportedFeature
                | RDKafkaErrorCode::UnsupportedVersion
                | RDKafkaErrorCode::NotImplemented
        )
    )
}

#[async_trait]
impl Sink for KafkaSink {
    async fn open(&self, open: SinkOpen) -> Result<()> {
        let settings = &self.settings;
        if open.output_mode != OutputMode::Append && settings.key.is_none() {
            return Err(ConnectorError::Config(format!(
                "kafka sink '{}' takes output_mode '{}' only with option 'key' (each row is then \
                 an upsert of its key, for a compacted topic); set 'key' to the grouping column, \
                 or use output_mode 'append'",
                settings.name,
                if open.output_mode == OutputMode::Update {
                    "update"
                } else {
                    "complete"
                }
            )));
        }
        let columns = SinkColumns::try_new(
            &open.schema,
            settings.format,
            settings.key.as_deref(),
            &settings.name,
        )?;
        let mut guard = self.open.lock().await;
        let previous = guard.take();
        let this = settings.clone();
        let (producer, mode, partitions, written_through, partial) = blocking(move || {
            // Close a producer of an earlier run first (it blocks), so its transactional id
            // is free.
            drop(previous);
            let probe = this
                .endpoint
                .consumer(&format!("weir-sink-{}-meta", this.name))?;
            let partitions = this.endpoint.partitions(&probe)?;
            drop(probe);
            let (producer, mode) = this.start_producer()?;
            let (written_through, partial) = if open.new_query {
                (None, None)
            } else {
                this.recover(&partitions, open.last_committed)?
            };
            Ok((
                producer,
                mode,
                partitions.len() as i32,
                written_through,
                partial,
            ))
        })
        .await?;
        tracing::info!(sink = %settings.name, topic = %settings.endpoint.topic, ?mode, ?written_through, ?partial, "kafka sink open");
        *guard = Some(Opened {
            columns,
            producer: Arc::new(producer),
            mode,
            partitions,
            written_through,
            partial,
        });
        Ok(())
    }

    async fn write(&self, batch_id: BatchId, batches: Vec<RecordBatch>) -> Result<()> {
        let settings = &self.settings;
        let mut guard = self.open.lock().await;
        let Some(opened) = guard.as_mut() else {
            return Err(ConnectorError::Internal(format!(
                "kafka sink '{}' was written before it was opened (or after a failed write)",
                settings.name
            )));
        };
        if opened.written_through.is_some_and(|w| batch_id <= w) {
            tracing::info!(sink = %settings.name, batch = %batch_id, "batch already in the kafka topic; not writing it again");
            return Ok(());
        }
        let records = encode(&opened.columns, &batches)?;
        if records.is_empty() {
            return Ok(());
        }
        let job = WriteJob {
            endpoint: settings.endpoint.clone(),
            query: settings.name.clone(),
            producer: Arc::clone(&opened.producer),
            batch: batch_id,
            partitions: opened.partitions,
            partial: opened.partial.take().filter(|p| p.batch == batch_id),
        };
        let transactional = opened.mode == Mode::Transactional;
        let result = blocking(move || job.run(records, transactional)).await;
        if result.is_err() {
            // A restart re-opens the sink, which reads back what this attempt left behind.
            // Closing the producer blocks while it purges what it still holds.
            let failed = guard.take();
            tokio::task::spawn_blocking(move || drop(failed));
        }
        result
    }
}

/// One batch's write, run on the blocking pool.
struct WriteJob {
    endpoint: Endpoint,
    query: String,
    producer: Arc<ThreadedProducer<Delivery>>,
    batch: BatchId,
    partitions: i32,
    partial: Option<Partial>,
}

impl WriteJob {
    /// Writes the batch's records not already in the topic, in one transaction if
    /// `transactional`.
    fn run(self, mut records: Vec<OutRecord>, transactional: bool) -> Result<()> {
        // A canonical order, so that a re-run places and numbers the records as the
        // interrupted attempt did (the engine gives the same rows, not always in the same
        // order).
        records.sort_unstable();
        let placed_with = self
            .partial
            .as_ref()
            .map_or(self.partitions, |p| p.partitions.max(1));
        let partitions = assign_partitions(&records, self.batch.0, placed_with);
        let mut counts: BTreeMap<i32, u64> = BTreeMap::new();
        for p in &partitions {
            *counts.entry(*p).or_default() += 1;
        }
        if transactional {
            self.producer
                .begin_transaction()
                .map_err(|e| self.failure("beginning a transaction", e))?;
        }
        let sent = self.send_all(&records, &partitions, &counts, placed_with);
        let done = sent.and_then(|()| {
            if transactional {
                self.producer
                    .commit_transaction(delivery_timeout(&self.endpoint))
                    .map_err(|e| self.failure("committing the transaction", e))
            } else {
                self.producer
                    .flush(delivery_timeout(&self.endpoint))
                    .map_err(|e| self.failure("flushing records", e))
            }
        });
        if let (Err(_), true) = (&done, transactional)
            && let Err(abort) = self.producer.abort_transaction(self.endpoint.timeout)
        {
            tracing::warn!(topic = %self.endpoint.topic, error = %abort, "aborting the kafka transaction failed");
        }
        done?;
        self.delivery_failures()
    }

    fn send_all(
        &self,
        records: &[OutRecord],
        partitions: &[i32],
        counts: &BTreeMap<i32, u64>,
        placed_with: i32,
    ) -> Result<()> {
        let total = records.len() as u64;
        let mut next: BTreeMap<i32, u64> = BTreeMap::new();
        let mut skipped = 0u64;
        for (record, partition) in records.iter().zip(partitions) {
            let seq = next.entry(*partition).or_default();
            let sequence = Sequence {
                seq: *seq,
                count: counts[partition],
                total,
                partitions: placed_with,
            };
            *seq += 1;
            let written = self
                .partial
                .as_ref()
                .and_then(|p| p.next_seq.get(partition))
                .is_some_and(|n| sequence.seq < *n);
            if written {
                skipped += 1;
                continue;
            }
            self.send(
                record,
                *partition,
                headers(&self.query, self.batch.0, sequence),
            )?;
        }
        if skipped > 0 {
            tracing::info!(topic = %self.endpoint.topic, batch = %self.batch, skipped, "resumed a partly written batch after the records already in the topic");
        }
        Ok(())
    }

    fn send(
        &self,
        record: &OutRecord,
        partition: i32,
        headers: rdkafka::message::OwnedHeaders,
    ) -> Result<()> {
        let mut out: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.endpoint.topic)
            .partition(partition)
            .headers(headers);
        if let Some(key) = &record.key {
            out = out.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            out = out.payload(value.as_slice());
        }
        loop {
            match self.producer.send(out) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The producer's thread drains the queue; wait for room.
                    out = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(self.failure("queueing a record", e)),
            }
        }
    }

    fn delivery_failures(&self) -> Result<()> {
        let failures = std::mem::take(
            &mut *self
                .producer
                .context()
                .failures
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        if failures.is_empty() {
            return Ok(());
        }
        Err(self.endpoint.io(
            &format!("writing batch {}", self.batch),
            format!("records were not delivered: {}", failures.join("; ")),
        ))
    }

    fn failure(&self, action: &str, error: KafkaError) -> ConnectorError {
        let fenced = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Fenced
                    | RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
            )
        );
        let hint = if fenced {
            "; another instance of this query (same sink name and topic) took over; stop one of them"
        } else {
            "; check that the brokers are up; restarting the query re-runs the batch without duplicates"
        };
        self.endpoint.io(
            &format!("{action} of batch {}", self.batch),
            format!("{error}{hint}"),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn last(batch: u64, seq: u64, total: u64) -> LastWritten {
        LastWritten {
            batch,
            sequence: Some(Sequence {
                seq,
                count: seq + 1,
                total,
                partitions: 3,
            }),
        }
    }

    #[test]
    fn recovery_skips_whole_batches_and_resumes_partial_ones() {
        // Nothing of the pending batch 5 in the topic.
        let found = BTreeMap::from([(0, last(4, 1, 3)), (1, last(4, 0, 3))]);
        assert_eq!(recovery(&found, Some(BatchId(4))), (None, None));
        // Batch 5 whole: 2 + 1 + 1 records of 4.
        let found = BTreeMap::from([(0, last(5, 1, 4)), (1, last(5, 0, 4)), (2, last(5, 0, 4))]);
        assert_eq!(recovery(&found, Some(BatchId(4))), (Some(BatchId(5)), None));
        // Batch 5 partly: partition 2 still holds batch 4's last record.
        let found = BTreeMap::from([(0, last(5, 1, 5)), (1, last(5, 0, 5)), (2, last(4, 7, 8))]);
        assert_eq!(
            recovery(&found, Some(BatchId(4))),
            (
                None,
                Some(Partial {
                    batch: BatchId(5),
                    partitions: 3,
                    next_seq: BTreeMap::from([(0, 2), (1, 1)]),
                })
            )
        );
        // Records without numbering are whole batches; a first batch counts from 0.
        let found = BTreeMap::from([(
            0,
            LastWritten {
                batch: 0,
                sequence: None,
            },
        )]);
        assert_eq!(recovery(&found, None), (Some(BatchId(0)), None));
        assert_eq!(recovery(&BTreeMap::new(), None), (None, None));
    }
}
