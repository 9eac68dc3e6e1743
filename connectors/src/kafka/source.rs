//! [`KafkaSource`]: one Kafka topic as a replayable source. Offsets are per-partition Kafka
//! offsets kept in Weir's offsets log (see [`TopicOffsets`]); the source never joins a consumer
//! group and never commits offsets to Kafka.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::Message;

use super::client::{Consumer, DataLoss, Endpoint, blocking, fetch_ranges};
use super::decode::{Fetched, SourceColumns, ValueFormat, decode};
use super::offsets::{TopicOffsets, Watermarks, next_end};
use crate::error::{ConnectorError, Result};
use crate::format::{BadRecord, BadRecords, CsvOptions, Format, OnError, write_dead_letters};
use crate::location::StoreLocation;
use crate::offset::SourceOffset;
use crate::options::ConnectorOptions;
use crate::source::{Source, SourceContext, SourceRead};

/// The file under the source's checkpoint directory holding where the query started.
const INITIAL_OFFSETS: &str = "initial-offsets.json";
/// Default of option `poll_timeout`.
const DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(120);

/// Where a new query starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartingOffsets {
    Earliest,
    Latest,
}

/// The validated options of a Kafka source.
#[derive(Debug, Clone)]
struct Settings {
    endpoint: Endpoint,
    format: ValueFormat,
    starting: StartingOffsets,
    max_records: Option<u64>,
    poll_timeout: Duration,
    data_loss: DataLoss,
    on_error: OnError,
}

impl Settings {
    fn from_options(options: &ConnectorOptions) -> Result<Self> {
        let endpoint = Endpoint::from_options(options)?;
        let format = match options.choice("format", &["json", "csv", "raw", "parquet"])? {
            Some("json") => ValueFormat::Decoded(Format::Json),
            Some("csv") => ValueFormat::Decoded(Format::Csv(CsvOptions {
                header: false,
                delimiter: delimiter(options)?,
            })),
            Some("raw") => ValueFormat::Raw,
            Some(_) => {
                return Err(ConnectorError::Config(format!(
                    "kafka source '{}' cannot read format 'parquet' (a kafka record holds one \
                     row): use json, csv or raw",
                    options.object()
                )));
            }
            None => {
                return Err(ConnectorError::Config(format!(
                    "option 'format' is required for kafka source '{}': json, csv or raw",
                    options.object()
                )));
            }
        };
        if !matches!(format, ValueFormat::Decoded(Format::Csv(_)))
            && options.get("delimiter").is_some()
        {
            return Err(ConnectorError::Config(format!(
                "option 'delimiter' of '{}' applies to format 'csv' only",
                options.object()
            )));
        }
        let starting = match options.choice("starting_offsets", &["earliest", "latest"])? {
            Some("earliest") => StartingOffsets::Earliest,
            _ => StartingOffsets::Latest,
        };
        let data_loss = match options.boolean("fail_on_data_loss")? {
            Some(false) => DataLoss::Skip,
            _ => DataLoss::Fail,
        };
        Ok(Self {
            endpoint,
            format,
            starting,
            max_records: options.positive("max_records_per_trigger")?,
            poll_timeout: options
                .duration("poll_timeout")?
                .unwrap_or(DEFAULT_POLL_TIMEOUT),
            data_loss,
            on_error: OnError::from_options(options)?,
        })
    }
}

fn delimiter(options: &ConnectorOptions) -> Result<u8> {
    match options.get("delimiter") {
        None => Ok(b','),
        Some("\\t") => Ok(b'\t'),
        Some(d) if d.len() == 1 => Ok(d.as_bytes()[0]),
        Some(d) => Err(options.bad_value("delimiter", d, "a single character")),
    }
}

/// A Kafka topic read with explicitly assigned partitions.
///
/// The first batch of a new query starts at `starting_offsets` (the earliest stored or the
/// latest offsets of every partition), which the source writes to its checkpoint directory
/// once, so that re-running that batch reads the same records. A partition missing from a
/// batch's start offset (the topic grew) is read from its earliest offset. Only committed
/// records are read (`isolation.level = read_committed`). Each batch reads at most
/// `max_records_per_trigger` records, shared fairly across the partitions.
pub struct KafkaSource {
    name: String,
    settings: Settings,
    columns: SourceColumns,
    schema: SchemaRef,
    dead_letters: Option<StoreLocation>,
    state: StoreLocation,
    consumer: Arc<Mutex<Consumer>>,
    initial: tokio::sync::Mutex<Option<TopicOffsets>>,
    /// Set by `prepare_available_now`: the end offsets no batch may go past.
    frozen: Mutex<Option<BTreeMap<i32, i64>>>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl KafkaSource {
    /// At `CREATE SOURCE`: checks the options and the declared columns, without contacting the
    /// brokers, and gives the source's schema.
    pub fn schema(declared: Option<SchemaRef>, options: &ConnectorOptions) -> Result<SchemaRef> {
        let settings = Settings::from_options(options)?;
        let schema = declared.ok_or_else(|| {
            ConnectorError::Config(format!(
                "kafka source '{}' needs its columns declared: CREATE SOURCE {} (col TYPE, ...) \
                 WITH (...)",
                options.object(),
                options.object()
            ))
        })?;
        SourceColumns::try_new(Arc::clone(&schema), settings.format, options.object())?;
        Ok(schema)
    }

    /// Opens the source for one query, checking that the topic exists.
    pub async fn open(
        schema: SchemaRef,
        options: &ConnectorOptions,
        context: SourceContext,
    ) -> Result<Self> {
        let settings = Settings::from_options(options)?;
        let columns = SourceColumns::try_new(
            Arc::clone(&schema),
            settings.format.clone(),
            options.object(),
        )?;
        let dead_letters = match &settings.on_error {
            OnError::DeadLetter(path) => Some(StoreLocation::parse(path, true)?),
            _ => None,
        };
        let endpoint = settings.endpoint.clone();
        let client_id = format!("weir-source-{}", options.object());
        let consumer = blocking(move || {
            let consumer = endpoint.consumer(&client_id)?;
            endpoint.partitions(&consumer)?;
            Ok(consumer)
        })
        .await?;
        Ok(Self {
            name: options.object().to_string(),
            settings,
            columns,
            schema,
            dead_letters,
            state: context.state,
            consumer: Arc::new(Mutex::new(consumer)),
            initial: tokio::sync::Mutex::new(None),
            frozen: Mutex::new(None),
        })
    }

    fn topic(&self) -> &str {
        &self.settings.endpoint.topic
    }

    /// The watermarks of every partition of the topic now.
    async fn available(&self) -> Result<BTreeMap<i32, Watermarks>> {
        let (endpoint, consumer) = (self.settings.endpoint.clone(), Arc::clone(&self.consumer));
        blocking(move || {
            let consumer = consumer.lock().unwrap_or_else(|p| p.into_inner());
            let partitions = endpoint.partitions(&consumer)?;
            endpoint.watermarks(&consumer, &partitions)
        })
        .await
    }

    /// Where the query started: read from the checkpoint, or chosen now by
    /// `starting_offsets` and written there (create-only, so a re-run agrees with the run).
    async fn initial(&self) -> Result<TopicOffsets> {
        let mut initial = self.initial.lock().await;
        if let Some(offsets) = &*initial {
            return Ok(offsets.clone());
        }
        let offsets = match self.load_initial().await? {
            Some(offsets) => offsets,
            None => {
                let available = self.available().await?;
                let chosen = TopicOffsets {
                    topic: self.topic().to_string(),
                    partitions: available
                        .iter()
                        .map(|(p, m)| match self.settings.starting {
                            StartingOffsets::Earliest => (*p, m.low),
                            StartingOffsets::Latest => (*p, m.high),
                        })
                        .collect(),
                };
                let bytes = serde_json::to_vec(&chosen).map_err(|e| {
                    ConnectorError::Internal(format!("encoding the initial kafka offsets: {e}"))
                })?;
                if self
                    .state
                    .put_if_absent(INITIAL_OFFSETS, Bytes::from(bytes))
                    .await?
                {
                    tracing::info!(source = %self.name, offsets = %chosen.to_source_offset(), "kafka source starts");
                    chosen
                } else {
                    self.load_initial().await?.ok_or_else(|| {
                        ConnectorError::Internal(format!(
                            "{} exists but cannot be read",
                            self.state.describe(INITIAL_OFFSETS)
                        ))
                    })?
                }
            }
        };
        *initial = Some(offsets.clone());
        Ok(offsets)
    }

    async fn load_initial(&self) -> Result<Option<TopicOffsets>> {
        let Some(bytes) = self.state.get(INITIAL_OFFSETS).await? else {
            return Ok(None);
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ConnectorError::Internal(format!(
                "{} is corrupt: {e}",
                self.state.describe(INITIAL_OFFSETS)
            ))
        })?;
        TopicOffsets::from_source_offset(&SourceOffset(value), self.topic()).map(Some)
    }

    async fn start_of(&self, start: Option<&SourceOffset>) -> Result<TopicOffsets> {
        match start {
            Some(offset) => TopicOffsets::from_source_offset(offset, self.topic()),
            None => self.initial().await,
        }
    }

    /// Reads and decodes `[from, to)` of each partition of `ranges` (a missing `from` is the
    /// partition's earliest offset).
    async fn fetch(
        &self,
        ranges: BTreeMap<i32, (Option<i64>, i64)>,
    ) -> Result<(
        Vec<arrow::array::RecordBatch>,
        Vec<(i32, i64, Vec<BadRecord>)>,
    )> {
        let settings = self.settings.clone();
        let columns = self.columns.clone();
        let consumer = Arc::clone(&self.consumer);
        blocking(move || {
            let consumer = consumer.lock().unwrap_or_else(|p| p.into_inner());
            let endpoint = &settings.endpoint;
            let new: Vec<i32> = ranges
                .iter()
                .filter(|(_, (from, _))| from.is_none())
                .map(|(p, _)| *p)
                .collect();
            let lows = endpoint.watermarks(&consumer, &new)?;
            let ranges: BTreeMap<i32, (i64, i64)> = ranges
                .into_iter()
                .map(|(p, (from, to))| {
                    (
                        p,
                        (
                            from.unwrap_or_else(|| lows.get(&p).map_or(to, |m| m.low)),
                            to,
                        ),
                    )
                })
                .collect();
            let mut fetched: BTreeMap<i32, Fetched> =
                ranges.keys().map(|p| (*p, Fetched::new(*p))).collect();
            fetch_ranges(
                endpoint,
                &consumer,
                &ranges,
                settings.poll_timeout,
                settings.data_loss,
                |message| {
                    if let Some(records) = fetched.get_mut(&message.partition()) {
                        records.push(
                            message.offset(),
                            message.timestamp().to_millis(),
                            message.key(),
                            message.payload(),
                        );
                    }
                    Ok(())
                },
            )?;
            let mut batches = Vec::new();
            let mut rejected = Vec::new();
            for (partition, records) in fetched {
                let mut bad = BadRecords::new(settings.on_error.clone());
                batches.extend(decode(&columns, &endpoint.topic, &records, &mut bad)?);
                let from = ranges.get(&partition).map_or(0, |r| r.0);
                if !bad.rejected().is_empty() {
                    rejected.push((partition, from, bad.take()));
                }
            }
            Ok((batches, rejected))
        })
        .await
    }
}

#[async_trait]
impl Source for KafkaSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn prepare_available_now(&self) -> Result<()> {
        let available = self.available().await?;
        let limit = available.iter().map(|(p, m)| (*p, m.high)).collect();
        *self.frozen.lock().unwrap_or_else(|p| p.into_inner()) = Some(limit);
        Ok(())
    }

    async fn latest_offset(&self, start: Option<&SourceOffset>) -> Result<Option<SourceOffset>> {
        let from = self.start_of(start).await?;
        let mut available = self.available().await?;
        if let Some(limit) = &*self.frozen.lock().unwrap_or_else(|p| p.into_inner()) {
            available.retain(|p, _| limit.contains_key(p));
            for (p, marks) in available.iter_mut() {
                marks.high = marks.high.min(limit[p]);
            }
        }
        Ok(
            match next_end(&from.partitions, &available, self.settings.max_records) {
                Some(end) => Some(
                    TopicOffsets {
                        topic: self.topic().to_string(),
                        partitions: end,
                    }
                    .to_source_offset(),
                ),
                None => start.cloned(),
            },
        )
    }

    async fn read(&self, start: Option<&SourceOffset>, end: &SourceOffset) -> Result<SourceRead> {
        let from = self.start_of(start).await?;
        let end = TopicOffsets::from_source_offset(end, self.topic())?;
        let ranges: BTreeMap<i32, (Option<i64>, i64)> = end
            .partitions
            .iter()
            .map(|(p, to)| (*p, (from.partitions.get(p).copied(), *to)))
            .collect();
        let (batches, rejected) = self.fetch(ranges).await?;
        let mut bad_records = 0;
        for (partition, from, records) in rejected {
            bad_records += records.len() as u64;
            if let Some(dir) = &self.dead_letters {
                write_dead_letters(
                    dir,
                    &format!("{}-{partition}-{from}", self.topic()),
                    &records,
                )
                .await?;
            }
        }
        Ok(SourceRead {
            batches,
            bad_records,
            bad_files: 0,
        })
    }

    async fn commit(&self, _end: &SourceOffset) -> Result<()> {
        Ok(())
    }
}
