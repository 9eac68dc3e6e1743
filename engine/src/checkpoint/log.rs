//! [`Checkpoint`]: reading and writing the files of a query's checkpoint directory.

use bytes::Bytes;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use weir_connectors::{BatchId, SourceOffset, StorageOptions, StoreLocation};

use super::CheckpointLock;
use crate::error::{Result, WeirError};
use crate::event_time::EventTime;

/// Log entries kept (older offsets and commits are purged).
pub(super) const RETAINED_BATCHES: u64 = 100;
/// Old entries are purged every this many batches, with a listing and one bulk delete per log
/// on an object store (so up to `RETAINED_BATCHES + PURGE_EVERY - 1` are kept).
const PURGE_EVERY: u64 = 10;

/// What `metadata.json` records about the query owning a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryMetadata {
    /// The query (and sink) name.
    pub name: String,
    /// The query's SQL text.
    pub sql: String,
    /// Streaming sources read, in the order of `sources/<i>/` and of offsets entries.
    pub sources: Vec<String>,
    /// Output columns as `name: type`.
    pub output_columns: Vec<String>,
    /// How many partitions stateful operators split their state into, by key hash; fixed
    /// when the checkpoint is created.
    #[serde(default = "one_partition")]
    pub state_partitions: usize,
    /// What each stateful operator keeps in state (see `StreamingOperator::
    /// state_signature`); absent in checkpoints made before Weir recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stateful_operators: Option<Vec<OperatorSignature>>,
}

/// One stateful operator of a query, as its checkpoint records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSignature {
    /// The operator id (`aggregate-0`), naming its state directory.
    pub id: String,
    /// Its state's keys, values and layout, one `name: type` line each.
    pub state: Vec<String>,
}

fn one_partition() -> usize {
    1
}

/// The range one source contributes to a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRange {
    /// Source name.
    pub source: String,
    /// Exclusive start (`None`: the beginning of the source).
    pub start: Option<SourceOffset>,
    /// Inclusive end (`None`: nothing read yet).
    pub end: Option<SourceOffset>,
}

/// `offsets/<N>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetsEntry {
    /// The batch.
    pub batch_id: BatchId,
    /// One range per source, in metadata order.
    pub sources: Vec<SourceRange>,
    /// Wall-clock time the batch was planned, in ms since the epoch.
    pub batch_timestamp_ms: i64,
    /// The event-time watermark in force for the batch, in ms since the epoch: stateful
    /// operators evict and emit with it (Spark's `eventTimeWatermarkForEviction`).
    #[serde(default)]
    pub watermark_ms: Option<EventTime>,
    /// The watermark that was in force for the previous batch: input rows it closed are late
    /// (Spark's `eventTimeWatermarkForLateEvents`). Absent in entries written before Weir
    /// recorded it, which then filter with `watermark_ms`, as those versions did; see
    /// [`OffsetsEntry::late_watermark`].
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub late_watermark_ms: Option<Option<EventTime>>,
}

impl OffsetsEntry {
    /// The watermark that input rows are late against (see `late_watermark_ms`).
    pub fn late_watermark(&self) -> Option<EventTime> {
        self.late_watermark_ms.unwrap_or(self.watermark_ms)
    }
}

/// A field that is present, even as `null`, is `Some`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Option<EventTime>>, D::Error> {
    Option::<EventTime>::deserialize(deserializer).map(Some)
}

/// `commits/<N>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitEntry {
    /// The batch.
    pub batch_id: BatchId,
    /// Output rows the batch wrote.
    pub output_rows: u64,
    /// The watermark after the batch (in force for the next one).
    #[serde(default)]
    pub watermark_ms: Option<EventTime>,
    /// Each source's maximum event time seen so far, in source order.
    #[serde(default)]
    pub max_event_time_ms: Vec<Option<EventTime>>,
}

/// A query's checkpoint directory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub(super) dir: StoreLocation,
}

impl Checkpoint {
    /// Opens (creating if needed) the checkpoint at `location`: a local path, or an
    /// object-store URL reached with `storage`.
    pub fn open(location: &str, storage: &StorageOptions) -> Result<Self> {
        Ok(Self {
            dir: StoreLocation::open(location, storage, true)?,
        })
    }

    /// Takes the checkpoint's writer lock for query `query` (see [`CheckpointLock`]).
    pub async fn lock(&self, query: &str) -> Result<CheckpointLock> {
        CheckpointLock::acquire(&self.dir, query).await
    }

    /// Deletes the staging files of log writes a crash interrupted.
    pub async fn remove_interrupted_writes(&self) -> Result<()> {
        for dir in [
            self.dir.clone(),
            self.dir.child("offsets"),
            self.dir.child("commits"),
        ] {
            dir.remove_interrupted_writes().await?;
        }
        Ok(())
    }

    /// The directory of stateful operators' state.
    pub fn state_dir(&self) -> StoreLocation {
        self.dir.child("state")
    }

    /// The directory of source `index`'s own logs.
    pub fn source_dir(&self, index: usize) -> StoreLocation {
        self.dir.child("sources").child(&index.to_string())
    }

    /// Where the checkpoint is, for messages.
    pub fn describe(&self) -> String {
        self.dir.describe("")
    }

    /// Reads `metadata.json`, if the checkpoint has one.
    pub async fn metadata(&self) -> Result<Option<QueryMetadata>> {
        read_json(&self.dir, "metadata.json").await
    }

    /// Writes `metadata.json` for a new checkpoint.
    pub async fn write_metadata(&self, metadata: &QueryMetadata) -> Result<()> {
        write_json(&self.dir, "metadata.json", metadata).await
    }

    /// The newest `offsets/<N>.json`.
    pub async fn latest_offsets(&self) -> Result<Option<OffsetsEntry>> {
        let dir = self.dir.child("offsets");
        match newest(&dir).await? {
            Some(n) => read_json(&dir, &entry_name(n)).await,
            None => Ok(None),
        }
    }

    /// The offsets of batch `batch`.
    pub async fn offsets(&self, batch: BatchId) -> Result<Option<OffsetsEntry>> {
        read_json(&self.dir.child("offsets"), &entry_name(batch)).await
    }

    /// The newest `commits/<N>.json`.
    pub async fn latest_commit(&self) -> Result<Option<CommitEntry>> {
        let dir = self.dir.child("commits");
        match newest(&dir).await? {
            Some(n) => read_json(&dir, &entry_name(n)).await,
            None => Ok(None),
        }
    }

    /// Writes `offsets/<N>.json` before batch N runs.
    pub async fn write_offsets(&self, entry: &OffsetsEntry) -> Result<()> {
        write_json(
            &self.dir.child("offsets"),
            &entry_name(entry.batch_id),
            entry,
        )
        .await
    }

    /// Writes `commits/<N>.json` after batch N's output is durable, then purges old entries.
    pub async fn write_commit(&self, entry: &CommitEntry) -> Result<()> {
        write_json(
            &self.dir.child("commits"),
            &entry_name(entry.batch_id),
            entry,
        )
        .await?;
        let batch = entry.batch_id.0;
        if batch >= RETAINED_BATCHES && batch.is_multiple_of(PURGE_EVERY) {
            // Everything older, also what an interrupted purge left.
            let last = batch - RETAINED_BATCHES;
            for log in ["offsets", "commits"] {
                let dir = self.dir.child(log);
                let names: Vec<String> = batch_ids(&dir)
                    .await?
                    .into_iter()
                    .filter(|b| *b <= last)
                    .map(|b| entry_name(BatchId(b)))
                    .collect();
                dir.delete_all(&names).await?;
            }
        }
        Ok(())
    }
}

pub(super) fn entry_name(batch: BatchId) -> String {
    format!("{}.json", batch.0)
}

async fn newest(dir: &StoreLocation) -> Result<Option<BatchId>> {
    Ok(batch_ids(dir).await?.last().copied().map(BatchId))
}

/// The batch ids of a log directory's entries (`<N>.json`).
pub(super) async fn batch_ids(dir: &StoreLocation) -> Result<std::collections::BTreeSet<u64>> {
    Ok(dir
        .list()
        .await?
        .iter()
        .filter_map(|f| f.name.strip_suffix(".json")?.parse().ok())
        .collect())
}

pub(super) async fn read_json<T: DeserializeOwned>(
    dir: &StoreLocation,
    name: &str,
) -> Result<Option<T>> {
    let Some(bytes) = dir.get(name).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        WeirError::Checkpoint(format!(
            "{} is damaged ({e}); restore the checkpoint from a backup, or start the query \
             with a new checkpoint (and a new output location)",
            dir.describe(name)
        ))
    })
}

async fn write_json<T: Serialize>(dir: &StoreLocation, name: &str, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| WeirError::Internal(format!("encoding {name}: {e}")))?;
    if !dir.put_if_absent(name, Bytes::from(bytes)).await? {
        return Err(WeirError::Checkpoint(format!(
            "{} already exists: another query is writing to this checkpoint; stop it or use \
             another checkpoint",
            dir.describe(name)
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_offsets_entry_without_a_late_watermark_filters_with_the_watermark_in_force() {
        let old = r#"{"batch_id": 3, "sources": [], "batch_timestamp_ms": 5, "watermark_ms": 7}"#;
        let old: OffsetsEntry = serde_json::from_str(old).unwrap();
        assert_eq!(
            (old.late_watermark_ms, old.late_watermark()),
            (None, Some(EventTime::from_ms(7)))
        );
        let first = r#"{"batch_id": 0, "sources": [], "batch_timestamp_ms": 5,
            "watermark_ms": 7, "late_watermark_ms": null}"#;
        let first: OffsetsEntry = serde_json::from_str(first).unwrap();
        assert_eq!(first.late_watermark(), None);
        let entry = OffsetsEntry {
            late_watermark_ms: Some(Some(EventTime::from_ms(4))),
            ..first
        };
        let text = serde_json::to_string(&entry).unwrap();
        let back: OffsetsEntry = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (back.late_watermark(), back.watermark_ms),
            (Some(EventTime::from_ms(4)), Some(EventTime::from_ms(7)))
        );
    }

    #[tokio::test]
    async fn offsets_and_commits_round_trip_and_damage_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let checkpoint =
            Checkpoint::open(tmp.path().to_str().unwrap(), &StorageOptions::default()).unwrap();
        assert_eq!(checkpoint.latest_offsets().await.unwrap(), None);
        for n in 0..12 {
            let entry = OffsetsEntry {
                batch_id: BatchId(n),
                sources: vec![SourceRange {
                    source: "s".into(),
                    start: None,
                    end: Some(SourceOffset::from_count(n)),
                }],
                batch_timestamp_ms: 5,
                watermark_ms: Some(EventTime::from_ms(1)),
                late_watermark_ms: Some(None),
            };
            checkpoint.write_offsets(&entry).await.unwrap();
        }
        assert_eq!(
            checkpoint.latest_offsets().await.unwrap().unwrap().batch_id,
            BatchId(11)
        );
        let again = OffsetsEntry {
            batch_id: BatchId(3),
            sources: vec![],
            batch_timestamp_ms: 0,
            watermark_ms: None,
            late_watermark_ms: Some(None),
        };
        let err = checkpoint
            .write_offsets(&again)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("another query is writing to this checkpoint"),
            "{err}"
        );

        std::fs::write(tmp.path().join("commits-damaged"), b"").unwrap();
        std::fs::create_dir_all(tmp.path().join("commits")).unwrap();
        std::fs::write(tmp.path().join("commits/7.json"), b"{\"batch_id\": 7,").unwrap();
        let err = checkpoint.latest_commit().await.unwrap_err().to_string();
        assert!(err.contains("commits/7.json is damaged"), "{err}");
    }

    #[tokio::test]
    async fn old_entries_are_purged_ten_batches_at_a_time_keeping_the_last_hundred() {
        let checkpoint = Checkpoint {
            dir: StoreLocation::in_memory("memory://checkpoint"),
        };
        for n in 0..=120 {
            let offsets = OffsetsEntry {
                batch_id: BatchId(n),
                sources: vec![],
                batch_timestamp_ms: 0,
                watermark_ms: None,
                late_watermark_ms: Some(None),
            };
            checkpoint.write_offsets(&offsets).await.unwrap();
            let commit = CommitEntry {
                batch_id: BatchId(n),
                output_rows: 0,
                watermark_ms: None,
                max_event_time_ms: vec![],
            };
            checkpoint.write_commit(&commit).await.unwrap();
            let kept = batch_ids(&checkpoint.dir.child("commits")).await.unwrap();
            let oldest = *kept.first().unwrap();
            assert!(
                kept.len() as u64 >= (n + 1).min(RETAINED_BATCHES)
                    && (kept.len() as u64) < RETAINED_BATCHES + PURGE_EVERY
                    && kept.len() as u64 == n + 1 - oldest,
                "after batch {n}: {oldest}..={n}"
            );
        }
        let offsets = batch_ids(&checkpoint.dir.child("offsets")).await.unwrap();
        assert_eq!(offsets, (21..=120).collect());
    }
}
