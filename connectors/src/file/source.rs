//! [`FileSource`]: a directory of json, csv or parquet files that keeps receiving new ones.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::Mutex;

use super::file_log::FileLog;
use crate::error::{ConnectorError, Result};
use crate::format::{BadRecord, BadRecords, Format, OnError, Rejected, write_dead_letters};
use crate::location::{StoreLocation, is_hidden};
use crate::offset::SourceOffset;
use crate::options::{ConnectorOptions, OptionSpec};
use crate::source::{Source, SourceContext, SourceRead};
use crate::storage::StorageOptions;

/// Options of the `files` source (besides the format's and `on_error`'s).
pub const FILE_SOURCE_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "path",
        help: "the directory to watch; required",
    },
    OptionSpec {
        key: "max_files_per_trigger",
        help: "at most this many new files per batch (default: all)",
    },
];

/// Files decoded at once.
const READ_PARALLELISM: usize = 4;

/// A directory that keeps receiving files.
///
/// New files are picked up in order of modification time, then name; names starting with `_`
/// or `.` are ignored (write a file under such a name, then rename it, so a half-written file
/// is never read). A file is read once: later changes to it are not seen. The files handed out
/// are logged in the checkpoint (the files log) before the batch that reads them is planned.
#[derive(Debug)]
pub struct FileSource {
    dir: StoreLocation,
    format: Format,
    schema: SchemaRef,
    on_error: OnError,
    dead_letters: Option<StoreLocation>,
    max_files_per_trigger: Option<u64>,
    state: Mutex<Discovered>,
}

#[derive(Debug)]
struct Discovered {
    log: FileLog,
    known: HashSet<String>,
    frozen: bool,
}

impl FileSource {
    /// Opens the source described by `options`, reading rows of `schema`.
    pub async fn open(
        schema: SchemaRef,
        options: &ConnectorOptions,
        context: SourceContext,
    ) -> Result<Self> {
        let storage = StorageOptions::from_options(options)?;
        let dir = StoreLocation::open(options.required("path")?, &storage, false)?;
        let format = Format::from_options(options)?;
        let on_error = OnError::from_options(options)?;
        let dead_letters = match &on_error {
            OnError::DeadLetter(path) => Some(StoreLocation::open(path, &storage, true)?),
            _ => None,
        };
        let log = FileLog::load(context.state).await?;
        let known = log.files().iter().cloned().collect();
        Ok(Self {
            dir,
            format,
            schema,
            on_error,
            dead_letters,
            max_files_per_trigger: options.positive("max_files_per_trigger")?,
            state: Mutex::new(Discovered {
                log,
                known,
                frozen: false,
            }),
        })
    }

    /// Reads the files of `(start, end]` as batches of `schema`.
    async fn read_as(
        &self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
        schema: SchemaRef,
    ) -> Result<SourceRead> {
        let (first, end) = (
            SourceOffset::count_or_zero(start)? as usize,
            end.as_count()? as usize,
        );
        let names: Vec<String> = {
            let state = self.state.lock().await;
            let files = state.log.files();
            if end > files.len() || first > end {
                return Err(ConnectorError::Internal(format!(
                    "batch range {first}..{end} is outside the {} logged files",
                    files.len()
                )));
            }
            files[first..end].to_vec()
        };
        let results: Vec<_> = futures::stream::iter(names)
            .map(|name| self.read_file(name, Arc::clone(&schema)))
            .buffered(READ_PARALLELISM)
            .try_collect()
            .await?;
        let mut read = SourceRead::default();
        for (batches, rejected) in results {
            read.batches.extend(batches);
            let rejected = Rejected::of(&rejected);
            read.bad_records += rejected.rows;
            read.bad_files += rejected.files;
        }
        Ok(read)
    }

    /// Lists the directory and logs the files not seen before, oldest first.
    async fn discover(&self, state: &mut Discovered) -> Result<()> {
        let mut new: Vec<_> = self
            .dir
            .list()
            .await?
            .into_iter()
            .filter(|f| !is_hidden(&f.name) && !state.known.contains(&f.name))
            .collect();
        new.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
        let names: Vec<String> = new.into_iter().map(|f| f.name).collect();
        state.known.extend(names.iter().cloned());
        state.log.append(names).await
    }

    /// Decodes file `name` into batches of `schema` (the source's, or some of its columns).
    async fn read_file(
        &self,
        name: String,
        schema: SchemaRef,
    ) -> Result<(Vec<arrow::array::RecordBatch>, Vec<BadRecord>)> {
        let location = self.dir.describe(&name);
        let bytes: Bytes = self.dir.get(&name).await?.ok_or_else(|| {
            ConnectorError::Config(format!(
                "{location} was listed by an earlier batch but is gone; a files source needs its \
                 files kept until the batches reading them are committed"
            ))
        })?;
        let format = self.format.clone();
        let policy = self.on_error.clone();
        let (batches, rejected) = tokio::task::spawn_blocking(move || {
            let mut bad = BadRecords::new(policy);
            let batches = format.decode(bytes, &schema, &location, &mut bad)?;
            Ok::<_, ConnectorError>((batches, bad.take()))
        })
        .await
        .map_err(|e| ConnectorError::Internal(format!("decoding task failed: {e}")))??;
        if let (Some(dead_letters), false) = (&self.dead_letters, rejected.is_empty()) {
            write_dead_letters(dead_letters, &name, &rejected).await?;
        }
        Ok((batches, rejected))
    }
}

#[async_trait]
impl Source for FileSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    async fn prepare_available_now(&self) -> Result<()> {
        let mut state = self.state.lock().await;
        self.discover(&mut state).await?;
        state.frozen = true;
        Ok(())
    }

    async fn latest_offset(&self, start: Option<&SourceOffset>) -> Result<Option<SourceOffset>> {
        let first = SourceOffset::count_or_zero(start)?;
        let mut state = self.state.lock().await;
        if !state.frozen {
            self.discover(&mut state).await?;
        }
        let available = state.log.files().len() as u64;
        let end = match self.max_files_per_trigger {
            Some(max) => available.min(first + max),
            None => available,
        };
        Ok(if end > first {
            Some(SourceOffset::from_count(end))
        } else {
            start.cloned()
        })
    }

    async fn read(&self, start: Option<&SourceOffset>, end: &SourceOffset) -> Result<SourceRead> {
        self.read_as(start, end, Arc::clone(&self.schema)).await
    }

    /// Parquet decodes only the columns asked for; json and csv records are parsed whole and
    /// the other columns dropped.
    async fn read_columns(
        &self,
        start: Option<&SourceOffset>,
        end: &SourceOffset,
        columns: &[usize],
    ) -> Result<SourceRead> {
        let projected = self
            .schema
            .project(columns)
            .map_err(|e| ConnectorError::arrow("choosing the columns to read", e))?;
        if self.format == Format::Parquet {
            return self.read_as(start, end, Arc::new(projected)).await;
        }
        let read = self.read_as(start, end, Arc::clone(&self.schema)).await?;
        read.project(columns)
    }

    async fn commit(&self, _end: &SourceOffset) -> Result<()> {
        Ok(())
    }
}
