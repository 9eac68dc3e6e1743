//! [`ConnectorRegistry`]: turns `connector = '...'` and its options into sources, tables and
//! sinks, validating every option first. It also owns the in-memory streams and outputs of
//! the `memory` connector, which live as long as the registry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::blackhole::BlackholeSink;
use crate::console::{CONSOLE_SINK_OPTIONS, ConsoleSink};
use crate::custom::{SinkFactory, SourceFactory};
use crate::error::{ConnectorError, Result};
use crate::file::{
    FILE_SOURCE_OPTIONS, FILE_TABLE_OPTIONS, FileSource, PARQUET_SINK_OPTIONS, ParquetSink,
    read_table, table_schema,
};
use crate::format::bad_records::ON_ERROR_OPTIONS;
use crate::format::{FORMAT_OPTIONS, Format, OnError};
use crate::kafka::{KAFKA_SINK_OPTIONS, KAFKA_SOURCE_OPTIONS, KafkaSink, KafkaSource};
use crate::location::StoreLocation;
use crate::memory::{MEMORY_SOURCE_OPTIONS, MemoryOutput, MemorySink, MemorySource, MemoryStream};
use crate::nexmark::{NEXMARK_OPTIONS, NexmarkSource};
use crate::options::{ConnectorOptions, OptionSpec};
use crate::postgres::{POSTGRES_SINK_OPTIONS, PostgresSink};
use crate::postgres_table::{POSTGRES_TABLE_OPTIONS, read_postgres_table};
use crate::sink::Sink;
use crate::source::{Source, SourceContext};
use crate::storage::{STORAGE_OPTIONS, StorageOptions};
use crate::webhook::{WEBHOOK_SINK_OPTIONS, WebhookSink};

/// The `connector` key every object has.
pub const CONNECTOR_OPTION: &[OptionSpec] = &[OptionSpec {
    key: "connector",
    help: "which connector; required",
}];

/// Connectors that can be sources.
pub const SOURCE_CONNECTORS: &[&str] = &["files", "kafka", "nexmark", "memory"];
/// Connectors that can be static tables.
pub const TABLE_CONNECTORS: &[&str] = &["files", "postgres"];

/// Options of every static table.
pub const TABLE_OPTIONS: &[OptionSpec] = &[OptionSpec {
    key: "refresh",
    help: "read the table again when a batch plans and it is older than this (for example '1 minute'); default: read when created and when a query starts",
}];
/// Connectors that can be sinks.
pub const SINK_CONNECTORS: &[&str] = &[
    "parquet",
    "kafka",
    "postgres",
    "console",
    "webhook",
    "memory",
    "blackhole",
];

/// Builds sources, tables and sinks from their options.
#[derive(Debug, Default)]
pub struct ConnectorRegistry {
    memory_streams: Mutex<HashMap<String, Arc<MemoryStream>>>,
    /// When each paced generator source (`events_per_second`) was created: its stream has
    /// been producing events since then.
    paced_since: Mutex<HashMap<String, std::time::Instant>>,
    memory_outputs: Mutex<HashMap<String, Arc<MemoryOutput>>>,
    custom_sources: Mutex<HashMap<String, Arc<dyn SourceFactory>>>,
    custom_sinks: Mutex<HashMap<String, Arc<dyn SinkFactory>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn connector<'a>(options: &'a ConnectorOptions, valid: &[String], role: &str) -> Result<&'a str> {
    let Some(name) = options.get("connector") else {
        return Err(ConnectorError::Config(format!(
            "option 'connector' is required for {role} '{}': one of {}",
            options.object(),
            valid.join(", ")
        )));
    };
    valid
        .iter()
        .find(|v| *v == name)
        .map(|_| name)
        .ok_or_else(|| {
            ConnectorError::Config(format!(
                "unknown {role} connector '{name}' for '{}'; valid connectors are: {}",
                options.object(),
                valid.join(", ")
            ))
        })
}

impl ConnectorRegistry {
    /// A registry with the built-in connectors.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `factory` the source connector `name` (replacing a custom one of that name).
    /// Fails for the name of a built-in connector.
    pub fn register_source(&self, name: &str, factory: Arc<dyn SourceFactory>) -> Result<()> {
        if SOURCE_CONNECTORS.contains(&name) {
            return Err(ConnectorError::Config(format!(
                "'{name}' is a built-in source connector; register yours under another name"
            )));
        }
        lock(&self.custom_sources).insert(name.to_string(), factory);
        Ok(())
    }

    /// Makes `factory` the sink connector `name` (replacing a custom one of that name).
    /// Fails for the name of a built-in connector.
    pub fn register_sink(&self, name: &str, factory: Arc<dyn SinkFactory>) -> Result<()> {
        if SINK_CONNECTORS.contains(&name) {
            return Err(ConnectorError::Config(format!(
                "'{name}' is a built-in sink connector; register yours under another name"
            )));
        }
        lock(&self.custom_sinks).insert(name.to_string(), factory);
        Ok(())
    }

    /// Source connector names: built-in, then custom (sorted).
    fn source_connectors(&self) -> Vec<String> {
        let mut custom: Vec<String> = lock(&self.custom_sources).keys().cloned().collect();
        custom.sort();
        SOURCE_CONNECTORS
            .iter()
            .map(|s| s.to_string())
            .chain(custom)
            .collect()
    }

    /// Sink connector names: built-in, then custom (sorted).
    fn sink_connectors(&self) -> Vec<String> {
        let mut custom: Vec<String> = lock(&self.custom_sinks).keys().cloned().collect();
        custom.sort();
        SINK_CONNECTORS
            .iter()
            .map(|s| s.to_string())
            .chain(custom)
            .collect()
    }

    fn custom_source(&self, name: &str) -> Option<Arc<dyn SourceFactory>> {
        lock(&self.custom_sources).get(name).cloned()
    }

    fn custom_sink(&self, name: &str) -> Option<Arc<dyn SinkFactory>> {
        lock(&self.custom_sinks).get(name).cloned()
    }

    /// Validates the options of `CREATE SOURCE` and resolves the source's schema: the declared
    /// one, the connector's own (nexmark), or inferred from the files (parquet).
    pub async fn create_source(
        &self,
        declared: Option<SchemaRef>,
        options: &ConnectorOptions,
    ) -> Result<SchemaRef> {
        let name = connector(options, &self.source_connectors(), "source")?;
        if let Some(factory) = self.custom_source(name) {
            options.check_keys(&[CONNECTOR_OPTION, factory.options()])?;
            return factory.schema(declared, options).await;
        }
        match name {
            "files" => {
                options.check_keys(&[
                    CONNECTOR_OPTION,
                    FILE_SOURCE_OPTIONS,
                    FORMAT_OPTIONS,
                    ON_ERROR_OPTIONS,
                    STORAGE_OPTIONS,
                ])?;
                let format = Format::from_options(options)?;
                OnError::from_options(options)?;
                options.positive("max_files_per_trigger")?;
                StoreLocation::open(
                    options.required("path")?,
                    &StorageOptions::from_options(options)?,
                    false,
                )?;
                match (declared, &format) {
                    (Some(schema), _) => Ok(schema),
                    (None, Format::Parquet) => table_schema(None, options).await.map_err(|e| match e {
                        ConnectorError::Config(msg) => ConnectorError::Config(format!(
                            "{msg} (a parquet source infers its columns from the files already in its directory)"
                        )),
                        other => other,
                    }),
                    (None, _) => Err(ConnectorError::Config(format!(
                        "source '{}' needs its columns declared: CREATE SOURCE {} (col TYPE, ...) WITH (...); \
                         only parquet sources infer them",
                        options.object(),
                        options.object()
                    ))),
                }
            }
            "kafka" => {
                options.check_keys(&[CONNECTOR_OPTION, KAFKA_SOURCE_OPTIONS, ON_ERROR_OPTIONS])?;
                KafkaSource::schema(declared, options)
            }
            "nexmark" => {
                options.check_keys(&[CONNECTOR_OPTION, NEXMARK_OPTIONS])?;
                if NexmarkSource::new(options)?.is_paced() {
                    // Kept from the first creation: a failed or repeated CREATE does not
                    // reset the stream's clock (DROP SOURCE does).
                    lock(&self.paced_since)
                        .entry(options.object().to_string())
                        .or_insert_with(std::time::Instant::now);
                }
                let schema = crate::nexmark::schema(NexmarkSource::kind(options)?);
                if declared.is_some_and(|d| d != schema) {
                    return Err(ConnectorError::Config(format!(
                        "nexmark source '{}' has fixed columns; leave out the column list (a \
                         WATERMARK clause alone is fine)",
                        options.object()
                    )));
                }
                Ok(schema)
            }
            _ => {
                options.check_keys(&[CONNECTOR_OPTION, MEMORY_SOURCE_OPTIONS])?;
                options.positive("max_records_per_trigger")?;
                let schema = declared.ok_or_else(|| {
                    ConnectorError::Config(format!(
                        "memory source '{}' needs its columns declared",
                        options.object()
                    ))
                })?;
                lock(&self.memory_streams).insert(
                    options.object().to_string(),
                    Arc::new(MemoryStream::new(Arc::clone(&schema))),
                );
                Ok(schema)
            }
        }
    }

    /// Opens a source created with [`create_source`](Self::create_source) for one query.
    pub async fn open_source(
        &self,
        schema: SchemaRef,
        options: &ConnectorOptions,
        context: SourceContext,
    ) -> Result<Arc<dyn Source>> {
        let name = connector(options, &self.source_connectors(), "source")?;
        if let Some(factory) = self.custom_source(name) {
            return factory.open(schema, options, context).await;
        }
        Ok(match name {
            "files" => Arc::new(FileSource::open(schema, options, context).await?),
            "kafka" => Arc::new(KafkaSource::open(schema, options, context).await?),
            "nexmark" => {
                let since = lock(&self.paced_since).get(options.object()).copied();
                Arc::new(NexmarkSource::new(options)?.producing_since(since))
            }
            _ => {
                let stream = self.memory_stream(options.object()).ok_or_else(|| {
                    ConnectorError::Internal(format!(
                        "memory source '{}' has no stream",
                        options.object()
                    ))
                })?;
                Arc::new(MemorySource::new(
                    stream,
                    options.positive("max_records_per_trigger")?,
                ))
            }
        })
    }

    /// Forgets what a dropped source kept in the registry.
    pub fn drop_source(&self, name: &str) {
        lock(&self.memory_streams).remove(name);
        lock(&self.paced_since).remove(name);
    }

    /// Validates the options of `CREATE TABLE` and reads the table whole.
    pub async fn create_table(
        &self,
        declared: Option<SchemaRef>,
        options: &ConnectorOptions,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let tables: Vec<String> = TABLE_CONNECTORS.iter().map(|s| s.to_string()).collect();
        if connector(options, &tables, "table")? == "postgres" {
            options.check_keys(&[CONNECTOR_OPTION, POSTGRES_TABLE_OPTIONS, TABLE_OPTIONS])?;
            return read_postgres_table(declared, options).await;
        }
        options.check_keys(&[
            CONNECTOR_OPTION,
            FILE_TABLE_OPTIONS,
            FORMAT_OPTIONS,
            ON_ERROR_OPTIONS,
            STORAGE_OPTIONS,
            TABLE_OPTIONS,
        ])?;
        let schema = table_schema(declared, options).await?;
        let batches = read_table(&schema, options).await?;
        Ok((schema, batches))
    }

    /// Validates the options of `CREATE SINK` and builds the sink; `query_options` are the
    /// keys the engine reads itself (checkpoint, trigger, output mode); the storage keys of
    /// [`STORAGE_OPTIONS`] are valid for every sink.
    pub fn create_sink(
        &self,
        options: &ConnectorOptions,
        query_options: &[OptionSpec],
    ) -> Result<Arc<dyn Sink>> {
        let name = connector(options, &self.sink_connectors(), "sink")?;
        // Every sink may keep its checkpoint in an object store.
        let query_options = &[query_options, STORAGE_OPTIONS].concat();
        if let Some(factory) = self.custom_sink(name) {
            options.check_keys(&[CONNECTOR_OPTION, factory.options(), query_options])?;
            return factory.create(options);
        }
        Ok(match name {
            "parquet" => {
                options.check_keys(&[CONNECTOR_OPTION, PARQUET_SINK_OPTIONS, query_options])?;
                Arc::new(ParquetSink::new(options)?)
            }
            "kafka" => {
                options.check_keys(&[CONNECTOR_OPTION, KAFKA_SINK_OPTIONS, query_options])?;
                Arc::new(KafkaSink::new(options)?)
            }
            "postgres" => {
                options.check_keys(&[CONNECTOR_OPTION, POSTGRES_SINK_OPTIONS, query_options])?;
                Arc::new(PostgresSink::new(options)?)
            }
            "console" => {
                options.check_keys(&[CONNECTOR_OPTION, CONSOLE_SINK_OPTIONS, query_options])?;
                Arc::new(ConsoleSink::new(options)?)
            }
            "webhook" => {
                options.check_keys(&[CONNECTOR_OPTION, WEBHOOK_SINK_OPTIONS, query_options])?;
                Arc::new(WebhookSink::new(options)?)
            }
            "memory" => {
                options.check_keys(&[CONNECTOR_OPTION, query_options])?;
                let output = Arc::clone(
                    lock(&self.memory_outputs)
                        .entry(options.object().to_string())
                        .or_default(),
                );
                Arc::new(MemorySink::new(output))
            }
            _ => {
                options.check_keys(&[CONNECTOR_OPTION, query_options])?;
                Arc::new(BlackholeSink::default())
            }
        })
    }

    /// The stream of `memory` source `name`.
    pub fn memory_stream(&self, name: &str) -> Option<Arc<MemoryStream>> {
        lock(&self.memory_streams).get(name).cloned()
    }

    /// The output of `memory` sink `name`.
    pub fn memory_output(&self, name: &str) -> Option<Arc<MemoryOutput>> {
        lock(&self.memory_outputs).get(name).cloned()
    }

    /// Forgets the output of a dropped `memory` sink.
    pub fn drop_sink(&self, name: &str) {
        lock(&self.memory_outputs).remove(name);
    }
}
