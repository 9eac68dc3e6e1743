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
    /// The index of the entry's first file, as its name says (absent in entries written
    /// before Weir recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    first: Option<u64>,
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
        let mut files: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (index, name) in entries {
            let damaged = |what: String| {
                ConnectorError::DamagedCheckpoint(format!(
                    "file log {} {what}",
                    dir.describe(&name)
                ))
            };
            if index != files.len() as u64 {
                return Err(damaged(match files.len() {
                    0 => format!("starts at file {index}, but the entries before it are missing"),
                    n => format!("starts at file {index}, but {n} files precede it"),
                }));
            }
            let bytes = dir.get(&name).await?.unwrap_or_default();
            let entry: LogEntry = serde_json::from_slice(&bytes)
                .map_err(|e| damaged(format!("cannot be read ({e})")))?;
            if entry.first.is_some_and(|first| first != index) || entry.files.is_empty() {
                return Err(damaged(
                    "is not the entry its name says (a stale or foreign copy)".to_string(),
                ));
            }
            // A file is handed out once: a name seen before means a copied entry.
            if let Some(again) = entry.files.iter().find(|f| !seen.insert(f.to_string())) {
                return Err(damaged(format!(
                    "lists {again} again, which an earlier entry handed out (a stale copy)"
                )));
            }
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
        let entry = LogEntry {
            first: Some(self.files.len() as u64),
            files: new.clone(),
        };
        let bytes = serde_json::to_vec(&entry)
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
