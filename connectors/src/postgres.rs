//! The `postgres` sink: each batch's rows upserted into a PostgreSQL table, exactly once.
//!
//! A batch is one database transaction. It locks this sink's row in the progress table
//! `weir_sink_progress (sink, target, batch_id)`, returns at once if that row already holds
//! the batch (its earlier attempt committed, then Weir crashed before its own commit log
//! entry), and otherwise writes the rows and moves the progress row to the batch before
//! committing. Rows and progress commit together or not at all, so a batch lands exactly
//! once whatever the moment of a crash.
//!
//! Rows travel as one JSON array per record batch (Arrow's JSON writer) and are spread into
//! columns by `json_populate_recordset`, so a batch is a handful of statements whatever its
//! size. With `key`, a row whose key is already in the table replaces it (`INSERT ... ON
//! CONFLICT (key) DO UPDATE`): the natural target for `update` and `complete` mode. Without a
//! key (append mode only) rows are inserted. A missing table is created from the query's
//! columns, with the key as its primary key.

use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use async_trait::async_trait;
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::{Client, NoTls};

use crate::error::{ConnectorError, Result};
use crate::offset::BatchId;
use crate::options::{ConnectorOptions, OptionSpec};
use crate::sink::{OutputMode, Sink, SinkOpen};

/// Options of the `postgres` sink.
pub const POSTGRES_SINK_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "url",
        help: "the database, as postgres://user[:password]@host[:port]/database; required",
    },
    OptionSpec {
        key: "table",
        help: "the target table, optionally schema-qualified (schema.table); created if missing; required",
    },
    OptionSpec {
        key: "key",
        help: "comma-separated key columns: rows with an existing key replace it; required in update and complete mode",
    },
    OptionSpec {
        key: "retry_timeout",
        help: "how long connecting and failed writes are retried with exponential backoff (default '30 seconds')",
    },
];

/// The table recording the last batch each sink committed.
const PROGRESS_TABLE: &str = "weir_sink_progress";

/// Upserts each batch into a PostgreSQL table in one transaction with its batch id.
pub struct PostgresSink {
    name: String,
    url: String,
    /// The quoted, possibly schema-qualified target table.
    table: String,
    /// The table as the user wrote it, for messages and the progress row.
    target: String,
    key: Vec<String>,
    retry_timeout: Duration,
    client: Mutex<Option<Client>>,
    schema: std::sync::Mutex<Option<SchemaRef>>,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("endpoint", &self.endpoint())
            .field("table", &self.target)
            .field("key", &self.key)
            .finish()
    }
}

/// Double-quotes an identifier for SQL.
fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

impl PostgresSink {
    /// The sink described by `options`; connects only when the query starts.
    pub fn new(options: &ConnectorOptions) -> Result<Self> {
        let url = options.required("url")?.to_string();
        url.parse::<tokio_postgres::Config>().map_err(|e| {
            options.bad_value("url", &redact(&url), &format!("a postgres:// URL ({e})"))
        })?;
        let target = options.required("table")?.trim().to_string();
        let table = target.split('.').map(quote).collect::<Vec<_>>().join(".");
        let key: Vec<String> = options
            .get("key")
            .map(|k| {
                k.split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            name: options.object().to_string(),
            url,
            table,
            target,
            key,
            retry_timeout: options
                .duration("retry_timeout")?
                .unwrap_or(Duration::from_secs(30)),
            client: Mutex::new(None),
            schema: std::sync::Mutex::new(None),
        })
    }

    /// `host:port/database`, for messages (never the password).
    fn endpoint(&self) -> String {
        match self.url.parse::<tokio_postgres::Config>() {
            Ok(config) => {
                let host = config
                    .get_hosts()
                    .first()
                    .map(|h| match h {
                        tokio_postgres::config::Host::Tcp(name) => name.clone(),
                        tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                    })
                    .unwrap_or_else(|| "localhost".to_string());
                let port = config.get_ports().first().copied().unwrap_or(5432);
                format!("{host}:{port}/{}", config.get_dbname().unwrap_or_default())
            }
            Err(_) => redact(&self.url),
        }
    }

    fn failed(&self, doing: &str, e: tokio_postgres::Error) -> ConnectorError {
        ConnectorError::io(format!("postgres {} ({doing})", self.endpoint()), e)
    }

    /// The live client, connecting first if there is none (a refused connection counts as a
    /// failed attempt of `retry`).
    async fn connected(&self, retry: &mut Retry) -> Result<MutexGuard<'_, Option<Client>>> {
        loop {
            let mut guard = self.client.lock().await;
            if guard.as_ref().is_some_and(|c| !c.is_closed()) {
                return Ok(guard);
            }
            match tokio_postgres::connect(&self.url, NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::warn!(error = %e, "postgres connection ended");
                        }
                    });
                    *guard = Some(client);
                    return Ok(guard);
                }
                Err(e) => {
                    *guard = None;
                    drop(guard);
                    retry.failed(self, "connecting", e).await?;
                }
            }
        }
    }

    fn columns(&self) -> Result<SchemaRef> {
        self.schema
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| ConnectorError::Internal("postgres sink written before open".into()))
    }

    /// The SQL that writes one JSON array of rows (`$1`).
    fn upsert_sql(&self, schema: &SchemaRef) -> String {
        let columns: Vec<String> = schema.fields().iter().map(|f| quote(f.name())).collect();
        let list = columns.join(", ");
        let mut sql = format!(
            "INSERT INTO {table} ({list}) SELECT {list} FROM json_populate_recordset(NULL::{table}, $1::text::json)",
            table = self.table
        );
        if !self.key.is_empty() {
            let keys: Vec<String> = self.key.iter().map(|k| quote(k)).collect();
            let updates: Vec<String> = columns
                .iter()
                .filter(|c| !keys.contains(c))
                .map(|c| format!("{c} = EXCLUDED.{c}"))
                .collect();
            sql.push_str(&format!(" ON CONFLICT ({})", keys.join(", ")));
            if updates.is_empty() {
                sql.push_str(" DO NOTHING");
            } else {
                sql.push_str(&format!(" DO UPDATE SET {}", updates.join(", ")));
            }
        }
        sql
    }

    /// `CREATE TABLE IF NOT EXISTS` for the query's columns.
    fn create_table_sql(&self, schema: &SchemaRef) -> Result<String> {
        let mut columns = Vec::new();
        for field in schema.fields() {
            let Some(sql_type) = sql_type(field.data_type()) else {
                return Err(ConnectorError::Config(format!(
                    "sink '{}': column '{}' has type {}, which the postgres sink cannot store; \
                     cast it in the query (to VARCHAR, BIGINT, DOUBLE, TIMESTAMP, ...)",
                    self.name,
                    field.name(),
                    field.data_type()
                )));
            };
            let not_null = if self.key.iter().any(|k| k == field.name()) {
                " NOT NULL"
            } else {
                ""
            };
            columns.push(format!("{} {sql_type}{not_null}", quote(field.name())));
        }
        if !self.key.is_empty() {
            let keys: Vec<String> = self.key.iter().map(|k| quote(k)).collect();
            columns.push(format!("PRIMARY KEY ({})", keys.join(", ")));
        }
        Ok(format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.table,
            columns.join(", ")
        ))
    }
}

/// Creates the progress table and the target table if missing; returns the last batch this
/// sink wrote to the target and the target's column names.
async fn prepare(
    client: &mut Client,
    create_table: &str,
    sink: &str,
    target: &str,
) -> std::result::Result<(Option<i64>, Vec<String>), tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (sink TEXT NOT NULL, target TEXT NOT \
             NULL, batch_id BIGINT NOT NULL, PRIMARY KEY (sink, target))"
        ))
        .await?;
    client.batch_execute(create_table).await?;
    let written = client
        .query_opt(
            &format!("SELECT batch_id FROM {PROGRESS_TABLE} WHERE sink = $1 AND target = $2"),
            &[&sink, &target],
        )
        .await?
        .map(|r| r.get::<_, i64>(0));
    let (schema_name, table_name) = match target.rsplit_once('.') {
        Some((s, t)) => (Some(s), t),
        None => (None, target),
    };
    let columns = client
        .query(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = $1 \
             AND table_schema = coalesce($2, current_schema())",
            &[&table_name, &schema_name],
        )
        .await?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    Ok((written, columns))
}

/// Writes one batch in one transaction with its progress row; returns `true`, writing
/// nothing, if the progress row shows the batch was written before.
async fn write_batch(
    client: &mut Client,
    upsert: &str,
    payloads: &[String],
    sink: &str,
    target: &str,
    batch: i64,
) -> std::result::Result<bool, tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    transaction
        .execute(
            &format!(
                "INSERT INTO {PROGRESS_TABLE} (sink, target, batch_id) VALUES ($1, $2, -1) ON \
                 CONFLICT (sink, target) DO NOTHING"
            ),
            &[&sink, &target],
        )
        .await?;
    let done: i64 = transaction
        .query_one(
            &format!(
                "SELECT batch_id FROM {PROGRESS_TABLE} WHERE sink = $1 AND target = $2 FOR UPDATE"
            ),
            &[&sink, &target],
        )
        .await?
        .get(0);
    if done >= batch {
        return Ok(true);
    }
    let statement = transaction.prepare(upsert).await?;
    for payload in payloads {
        transaction.execute(&statement, &[payload]).await?;
    }
    transaction
        .execute(
            &format!("UPDATE {PROGRESS_TABLE} SET batch_id = $3 WHERE sink = $1 AND target = $2"),
            &[&sink, &target, &batch],
        )
        .await?;
    transaction.commit().await?;
    Ok(false)
}

/// Exponential backoff from 100 ms to 5 s, for up to the sink's retry timeout.
struct Retry {
    started: std::time::Instant,
    backoff: Duration,
    /// Failed attempts so far: the first is logged at warn, the rest at debug.
    failures: u32,
}

impl Retry {
    fn new() -> Self {
        Self {
            started: std::time::Instant::now(),
            backoff: Duration::from_millis(100),
            failures: 0,
        }
    }

    /// After a failure while `doing`: waits and returns `Ok` if it is worth another attempt
    /// (a lost or refused connection, within the retry timeout), or returns the error.
    async fn failed(
        &mut self,
        sink: &PostgresSink,
        doing: &str,
        error: tokio_postgres::Error,
    ) -> Result<()> {
        // A database answer (bad SQL, a constraint) will not change by retrying.
        let connection_failure = error.is_closed()
            || std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>());
        let elapsed = self.started.elapsed();
        if !connection_failure {
            return Err(sink.failed(doing, error));
        }
        if elapsed + self.backoff > sink.retry_timeout {
            return Err(ConnectorError::Config(format!(
                "{}; gave up after retrying for {elapsed:.1?}: check that the database is \
                 running and reachable, then restart the query (it resumes exactly once)",
                sink.failed(doing, error)
            )));
        }
        self.failures += 1;
        if self.failures == 1 {
            tracing::warn!(sink = %sink.name, endpoint = %sink.endpoint(), error = %error,
                "postgres unavailable; retrying for up to {}",
                humantime::format_duration(sink.retry_timeout));
        } else {
            tracing::debug!(sink = %sink.name, attempt = self.failures, error = %error, "postgres still unavailable, retrying in {:?}", self.backoff);
        }
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
        Ok(())
    }
}

/// The PostgreSQL type for an Arrow type, where the JSON transfer keeps values exact.
fn sql_type(data_type: &DataType) -> Option<String> {
    Some(match data_type {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "SMALLINT".into(),
        DataType::Int32 | DataType::UInt16 => "INTEGER".into(),
        DataType::Int64 | DataType::UInt32 => "BIGINT".into(),
        DataType::UInt64 => "NUMERIC(20, 0)".into(),
        DataType::Float32 => "REAL".into(),
        DataType::Float64 => "DOUBLE PRECISION".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("NUMERIC({p}, {s})"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "TEXT".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(unit, tz) => {
            let precision = match unit {
                TimeUnit::Second => 0,
                TimeUnit::Millisecond => 3,
                TimeUnit::Microsecond | TimeUnit::Nanosecond => 6,
            };
            match tz {
                Some(_) => format!("TIMESTAMPTZ({precision})"),
                None => format!("TIMESTAMP({precision})"),
            }
        }
        _ => return None,
    })
}

/// `url` with its password replaced, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Encodes `batch` as a JSON array of objects (nulls left out, so they arrive as NULL).
fn to_json(batch: &RecordBatch) -> Result<String> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    writer
        .write(batch)
        .and_then(|()| writer.finish())
        .map_err(|e| ConnectorError::arrow("encoding rows for postgres", e))?;
    String::from_utf8(writer.into_inner())
        .map_err(|e| ConnectorError::Internal(format!("JSON writer produced bad UTF-8: {e}")))
}

#[async_trait]
impl Sink for PostgresSink {
    async fn open(&self, open: SinkOpen) -> Result<()> {
        if open.output_mode != OutputMode::Append && self.key.is_empty() {
            return Err(ConnectorError::Config(format!(
                "sink '{}': {:?} mode re-emits rows that change, so the postgres sink needs \
                 option 'key' (the columns identifying a row, e.g. the GROUP BY columns) to \
                 replace them",
                self.name, open.output_mode
            )));
        }
        if let Some(missing) = self
            .key
            .iter()
            .find(|k| open.schema.field_with_name(k).is_err())
        {
            return Err(ConnectorError::Config(format!(
                "sink '{}': key column '{missing}' is not an output column of the query",
                self.name
            )));
        }
        let create_table = self.create_table_sql(&open.schema)?;
        *self.schema.lock().unwrap_or_else(|p| p.into_inner()) = Some(open.schema.clone());
        let mut retry = Retry::new();
        let (written, present) = loop {
            let mut guard = self.connected(&mut retry).await?;
            let Some(client) = guard.as_mut() else {
                continue;
            };
            match prepare(client, &create_table, &self.name, &self.target).await {
                Ok(found) => break found,
                Err(e) => {
                    *guard = None;
                    drop(guard);
                    retry.failed(self, "preparing the tables", e).await?;
                }
            }
        };
        let missing: Vec<&str> = open
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|c| !present.iter().any(|p| p == c))
            .collect();
        if !missing.is_empty() {
            return Err(ConnectorError::Config(format!(
                "sink '{}': table {} has no column(s) {}; add them, or write to a new table \
                 (which the sink creates)",
                self.name,
                self.target,
                missing.join(", ")
            )));
        }
        let last_committed = open.last_committed.map(|b| b.0 as i64);
        match written {
            Some(batch) if open.new_query => Err(ConnectorError::Config(format!(
                "sink '{}': {} already holds output of an earlier query of this sink (batch \
                 {batch}, in {PROGRESS_TABLE}) but this query's checkpoint is new; resume \
                 with its checkpoint, or delete its row from {PROGRESS_TABLE} to start over",
                self.name, self.target
            ))),
            Some(batch) if last_committed.is_none_or(|c| batch > c + 1) => {
                Err(ConnectorError::Config(format!(
                    "sink '{}': {} holds batch {batch}, newer than the checkpoint's last \
                     commit ({last_committed:?}) allows; was the checkpoint replaced by an \
                     older copy?",
                    self.name, self.target
                )))
            }
            _ => Ok(()),
        }
    }

    async fn write(&self, batch_id: BatchId, batches: Vec<RecordBatch>) -> Result<()> {
        let schema = self.columns()?;
        let payloads: Vec<String> = batches
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(to_json)
            .collect::<Result<_>>()?;
        let upsert = self.upsert_sql(&schema);
        let mut retry = Retry::new();
        let skipped = loop {
            let mut guard = self.connected(&mut retry).await?;
            let Some(client) = guard.as_mut() else {
                continue;
            };
            let batch = batch_id.0 as i64;
            match write_batch(client, &upsert, &payloads, &self.name, &self.target, batch).await {
                Ok(skipped) => break skipped,
                Err(e) => {
                    *guard = None;
                    drop(guard);
                    retry.failed(self, "writing a batch", e).await?;
                }
            }
        };
        if skipped {
            tracing::info!(sink = %self.name, batch = batch_id.0, table = %self.target, "batch already in the database; not written again");
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sink(pairs: &[(&str, &str)]) -> Result<PostgresSink> {
        PostgresSink::new(&ConnectorOptions::new(
            "counts",
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    }

    #[test]
    fn upserts_replace_every_non_key_column() {
        let sink = sink(&[
            ("url", "postgres://u:secret@db:5433/app"),
            ("table", "public.Counts"),
            ("key", "auction, window_start"),
        ])
        .unwrap();
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("auction", DataType::Int64, false),
            arrow::datatypes::Field::new(
                "window_start",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ),
            arrow::datatypes::Field::new("bids", DataType::Int64, false),
        ]));
        assert_eq!(
            sink.upsert_sql(&schema),
            "INSERT INTO \"public\".\"Counts\" (\"auction\", \"window_start\", \"bids\") SELECT \
             \"auction\", \"window_start\", \"bids\" FROM json_populate_recordset(NULL::\"public\".\"Counts\", \
             $1::text::json) ON CONFLICT (\"auction\", \"window_start\") DO UPDATE SET \"bids\" = EXCLUDED.\"bids\""
        );
        assert_eq!(
            sink.create_table_sql(&schema).unwrap(),
            "CREATE TABLE IF NOT EXISTS \"public\".\"Counts\" (\"auction\" BIGINT NOT NULL, \
             \"window_start\" TIMESTAMP(3) NOT NULL, \"bids\" BIGINT, PRIMARY KEY (\"auction\", \"window_start\"))"
        );
        assert_eq!(sink.endpoint(), "db:5433/app");
        assert!(!format!("{sink:?}").contains("secret"));
    }

    #[test]
    fn bad_options_are_named() {
        let error = sink(&[("url", "mysql://x"), ("table", "t")]).unwrap_err();
        assert!(
            error.to_string().starts_with("option 'url' of 'counts' has the invalid value 'mysql://x': expected a postgres:// URL"),
            "{error}"
        );
        assert_eq!(redact("postgres://me:pw@h/db"), "postgres://me:***@h/db");
        assert_eq!(
            sink(&[("url", "postgres://h/db")]).unwrap_err().to_string(),
            "option 'table' is required for 'counts'"
        );
    }
}
