//! [`QueryState`] and [`OperatorState`], and their snapshot files.
//!
//! ```text
//! state/<operator id>/<partition>/<N>.snapshot    Arrow IPC file: the state after batch N
//! ```
//! One partition (`0`) per operator for now. Snapshots of the last 10 batches are kept.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use bytes::Bytes;
use weir_connectors::{BatchId, StoreLocation};

use crate::error::{Result, WeirError};

/// Snapshots kept per operator.
const RETAINED_VERSIONS: u64 = 10;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The state of one operator.
#[derive(Debug, Default)]
pub struct OperatorState {
    /// The state after the last committed batch.
    committed: Mutex<Vec<RecordBatch>>,
    /// The state computed by the batch in flight, with its schema.
    staged: Mutex<Option<(SchemaRef, Vec<RecordBatch>)>>,
}

impl OperatorState {
    /// The state after the last committed batch.
    pub fn committed(&self) -> Vec<RecordBatch> {
        lock(&self.committed).clone()
    }

    /// Records the state computed by the batch in flight.
    pub fn stage(&self, schema: SchemaRef, state: Vec<RecordBatch>) {
        *lock(&self.staged) = Some((schema, state));
    }

    /// Rows and bytes of the committed state.
    pub fn size(&self) -> (u64, u64) {
        let committed = lock(&self.committed);
        let rows = committed.iter().map(|b| b.num_rows() as u64).sum();
        let bytes = committed
            .iter()
            .map(|b| b.get_array_memory_size() as u64)
            .sum();
        (rows, bytes)
    }
}

/// The states of every stateful operator of one query, and where they are checkpointed.
#[derive(Debug)]
pub struct QueryState {
    dir: StoreLocation,
    operators: Mutex<BTreeMap<String, Arc<OperatorState>>>,
}

impl QueryState {
    /// The state of a query whose checkpoint keeps state under `dir`.
    pub fn new(dir: StoreLocation) -> Self {
        Self {
            dir,
            operators: Mutex::new(BTreeMap::new()),
        }
    }

    /// The state of operator `id`, created empty on first use.
    pub fn operator(&self, id: &str) -> Arc<OperatorState> {
        Arc::clone(lock(&self.operators).entry(id.to_string()).or_default())
    }

    fn snapshot_dir(&self, id: &str) -> StoreLocation {
        self.dir.child(id).child("0")
    }

    /// Loads the committed state of each operator in `ids` as of `version` (nothing to load
    /// before the first commit).
    pub async fn load(&self, ids: &[String], version: Option<BatchId>) -> Result<()> {
        for id in ids {
            let operator = self.operator(id);
            let Some(version) = version else { continue };
            let dir = self.snapshot_dir(id);
            dir.remove_interrupted_writes().await?;
            let name = format!("{}.snapshot", version.0);
            let bytes = dir.get(&name).await?.ok_or_else(|| {
                WeirError::Checkpoint(format!(
                    "{} is missing: the state of operator '{id}' after committed batch {version} \
                     is gone (was the query changed to add a stateful operator? then use a new \
                     checkpoint)",
                    dir.describe(&name)
                ))
            })?;
            let damaged = |e: &dyn std::fmt::Display| {
                WeirError::Checkpoint(format!("{} is damaged: {e}", dir.describe(&name)))
            };
            let reader = FileReader::try_new(Cursor::new(bytes), None).map_err(|e| damaged(&e))?;
            let batches = reader
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| damaged(&e))?;
            *lock(&operator.committed) = batches;
        }
        Ok(())
    }

    /// Writes each operator's staged state durably as version `batch`.
    pub async fn persist(&self, batch: BatchId) -> Result<()> {
        let operators: Vec<(String, Arc<OperatorState>)> = lock(&self.operators)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        for (id, operator) in operators {
            let Some((schema, state)) = lock(&operator.staged).clone() else {
                continue;
            };
            let bytes = tokio::task::spawn_blocking(move || encode(&schema, &state))
                .await
                .map_err(|e| WeirError::Internal(format!("state encoding task failed: {e}")))??;
            let dir = self.snapshot_dir(&id);
            dir.put(&format!("{}.snapshot", batch.0), bytes).await?;
            if let Some(old) = batch.0.checked_sub(RETAINED_VERSIONS) {
                dir.delete(&format!("{old}.snapshot")).await?;
            }
        }
        Ok(())
    }

    /// Makes each operator's staged state the committed one (after `commits/N` is written).
    pub fn promote(&self) {
        for operator in lock(&self.operators).values() {
            if let Some((_, state)) = lock(&operator.staged).take() {
                *lock(&operator.committed) = state;
            }
        }
    }
}

fn encode(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Bytes> {
    let failed = |e: arrow::error::ArrowError| {
        WeirError::Internal(format!("encoding a state snapshot: {e}"))
    };
    let mut buffer = Vec::new();
    let mut writer = FileWriter::try_new(&mut buffer, schema).map_err(failed)?;
    for batch in batches {
        writer.write(batch).map_err(failed)?;
    }
    writer.finish().map_err(failed)?;
    drop(writer);
    Ok(Bytes::from(buffer))
}
