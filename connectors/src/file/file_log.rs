//! [`FileLog`]: the files a [`FileSource`](super::FileSource) has handed out, in order, kept in
//! the query's checkpoint so that a batch re-run after a crash reads the very same files.
//!
//! Each discovery appends one entry `files-<first index>.json` holding the newly found file
//! names, written create-only (a second writer on the same checkpoint is detected). The offset
//! of the source is the number of files in the log.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{ConnectorError, Result};
use crate::location::StoreLocation;

#[derive(Debug, Serialize, Deserialize)]
struct LogEntry {
    files: Vec<String>,
}

/// The log of discovered files.
#[derive(Debug)]
pub(super) struct FileLog {
    dir: StoreLocation,
    files: Vec<String>,
}

impl FileLog {
    /// Loads the log from `dir`, checking that its entries are contiguous.
    pub(super) async fn load(dir: StoreLocation) -> Result<Self> {
        dir.remove_interrupted_writes().await?;
        let mut entries: Vec<(u64, String)> = dir
            .list()
            .await?
            .into_iter()
            .filter_map(|meta| {
                let index = meta
                    .name
                    .strip_prefix("files-")?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()?;
                Some((index, meta.name))
            })
            .collect();
        entries.sort();
        let mut files = Vec::new();
        for (index, name) in entries {
            if index != files.len() as u64 {
                return Err(ConnectorError::Internal(format!(
                    "file log {} starts at file {index} but {} files precede it; the \
                     checkpoint is damaged",
                    dir.describe(&name),
                    files.len()
                )));
            }
            let bytes = dir.get(&name).await?.unwrap_or_default();
            let entry: LogEntry = serde_json::from_slice(&bytes).map_err(|e| {
                ConnectorError::Internal(format!(
                    "file log {} is corrupt: {e}",
                    dir.describe(&name)
                ))
            })?;
            files.extend(entry.files);
        }
        Ok(Self { dir, files })
    }

    /// The files in the log, in hand-out order.
    pub(super) fn files(&self) -> &[String] {
        &self.files
    }

    /// Appends `new` files durably.
    pub(super) async fn append(&mut self, new: Vec<String>) -> Result<()> {
        if new.is_empty() {
            return Ok(());
        }
        let name = format!("files-{:012}.json", self.files.len());
        let bytes = serde_json::to_vec(&LogEntry { files: new.clone() })
            .map_err(|e| ConnectorError::Internal(format!("encoding file log entry: {e}")))?;
        if !self.dir.put_if_absent(&name, Bytes::from(bytes)).await? {
            return Err(ConnectorError::Config(format!(
                "file log entry {} already exists: another query is using the same checkpoint",
                self.dir.describe(&name)
            )));
        }
        self.files.extend(new);
        Ok(())
    }
}
