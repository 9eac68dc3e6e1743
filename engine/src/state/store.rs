//! [`QueryState`] and [`OperatorState`], and their files.
//!
//! ```text
//! state/<operator id>/<partition>/<N>.delta      Arrow IPC: what batch N changed (written
//!                                                before commits/N)
//! state/<operator id>/<partition>/<N>.snapshot   Arrow IPC: the whole state after batch N,
//!                                                every 10th batch, written in the background
//! state/<operator id>.<part>/<partition>/…      the same for a part of the operator's state
//!                                                (the pairs of its `count(DISTINCT)`
//!                                                aggregate i: `<id>.distinct-<i>`)
//! ```
//! Beside its tables an operator may keep structures built from them (indexes, numberings),
//! registered by name as [`StatePart`]s so that the state's size counts them.
//! An operator's state is split into the query's state partitions by a hash of the group key
//! (the operator decides which key columns; see `StreamingAggregateExec`), and each batch
//! works on the partitions in parallel; each partition has its own files, and all of a
//! batch's deltas are encoded and written at once. A delta has the state's columns plus a
//! boolean `__weir_delete` (upsert or remove the row's group). The number of key columns is
//! kept in the files' schema metadata, and so, in a delta whose delete rows remove every key
//! with a prefix of theirs (a pair set's closed groups), is the prefix's length
//! (`weir.delete_prefix`; see `delta.rs`). Loading version N reads the newest snapshot at or
//! before N and replays the deltas after it. A snapshot is only an optimization: when its
//! background write is lost in a crash, the previous snapshot and the deltas since rebuild the
//! same state. The two newest snapshots and the deltas after the older of them are kept. A
//! query that stops waits for the snapshot writes still running ([`QueryState::finish_snapshots`]).

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use bytes::Bytes;
use weir_connectors::{BatchId, StoreLocation};

use super::delta::{Delta, delta_schema, replay};
use crate::error::{Result, WeirError};

/// A snapshot every this many batches.
const SNAPSHOT_INTERVAL: u64 = 10;
/// Schema metadata key: how many leading columns identify a group.
const KEYS_METADATA: &str = "weir.state_keys";
/// Delta schema metadata key, when a delete row removes every key with its leading columns:
/// how many (see `delta.rs`).
const DELETE_PREFIX_METADATA: &str = "weir.delete_prefix";
/// The most record batches a state partition is kept in before they are concatenated: few
/// enough that per-batch work stays small, many enough that the state is copied only once
/// every several micro-batches.
const MAX_STATE_BATCHES: usize = 16;

/// `state` as it is, or, once it is split into more than [`MAX_STATE_BATCHES`] batches (each
/// batch's merge leaves one or two more), concatenated into one.
pub(crate) fn compact(
    schema: &SchemaRef,
    state: Vec<RecordBatch>,
) -> std::result::Result<Vec<RecordBatch>, ArrowError> {
    if state.len() <= MAX_STATE_BATCHES {
        return Ok(state);
    }
    Ok(vec![concat_batches(schema, &state)?])
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a batch in flight computed for one state partition.
#[derive(Debug, Clone)]
pub struct StagedPartition {
    /// The partition's whole state after the batch.
    pub state: Vec<RecordBatch>,
    /// What the batch changed (maybe nothing): the state's columns plus `__weir_delete`.
    pub delta: RecordBatch,
}

/// State computed by the batch in flight.
#[derive(Debug, Clone)]
struct Staged {
    schema: SchemaRef,
    keys: usize,
    /// How many leading key columns the deltas' delete rows match.
    delete_prefix: usize,
    partitions: Vec<StagedPartition>,
}

/// The state of one operator, split into the query's state partitions by key hash.
#[derive(Debug)]
pub struct OperatorState {
    /// The state after the last committed batch, per partition.
    committed: Mutex<Vec<Vec<RecordBatch>>>,
    /// The state computed by the batch in flight.
    staged: Mutex<Option<Staged>>,
    /// Counts the changes of `committed` (loads and promotions).
    generation: AtomicU64,
}

impl OperatorState {
    fn new(partitions: usize) -> Self {
        Self {
            committed: Mutex::new(vec![Vec::new(); partitions]),
            staged: Mutex::new(None),
            generation: AtomicU64::new(0),
        }
    }

    /// Changes each time the committed state does: whoever keeps something derived from the
    /// committed state (a part's tables, such as a `count(DISTINCT)`'s pairs) tells by it whether that is current.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The number of state partitions.
    pub fn partitions(&self) -> usize {
        lock(&self.committed).len()
    }

    /// The state of each partition after the last committed batch.
    pub fn committed(&self) -> Vec<Vec<RecordBatch>> {
        lock(&self.committed).clone()
    }

    /// Records what the batch in flight computed for each partition; the state's first
    /// `keys` columns identify a group.
    pub fn stage(&self, schema: SchemaRef, keys: usize, partitions: Vec<StagedPartition>) {
        self.stage_deleting_by_prefix(schema, keys, keys, partitions);
    }

    /// As [`stage`](Self::stage), but a delete row of the deltas removes every key whose
    /// first `delete_prefix` columns are the row's (see `delta.rs`).
    pub fn stage_deleting_by_prefix(
        &self,
        schema: SchemaRef,
        keys: usize,
        delete_prefix: usize,
        partitions: Vec<StagedPartition>,
    ) {
        *lock(&self.staged) = Some(Staged {
            schema,
            keys,
            delete_prefix: delete_prefix.min(keys),
            partitions,
        });
    }

    /// Rows and bytes of the committed state.
    pub fn size(&self) -> (u64, u64) {
        let committed = lock(&self.committed);
        let batches = || committed.iter().flatten();
        let rows = batches().map(|b| b.num_rows() as u64).sum();
        let bytes = batches().map(|b| b.get_array_memory_size() as u64).sum();
        (rows, bytes)
    }
}

/// A structure an operator keeps beside its state tables (built from them, or holding them),
/// registered with [`QueryState::part`].
pub trait StatePart: std::any::Any + Send + Sync + std::fmt::Debug {
    /// Rows and bytes it holds.
    fn size(&self) -> (u64, u64);

    /// The ids of the state tables it holds: its size stands for theirs.
    fn tables(&self) -> &[String] {
        &[]
    }
}

/// A registered [`StatePart`], as itself and for downcasting.
#[derive(Debug, Clone)]
struct Part {
    part: Arc<dyn StatePart>,
    any: Arc<dyn std::any::Any + Send + Sync>,
}

/// The states of every stateful operator of one query, and where they are checkpointed.
#[derive(Debug)]
pub struct QueryState {
    dir: StoreLocation,
    partitions: usize,
    operators: Mutex<BTreeMap<String, Arc<OperatorState>>>,
    /// The operators' parts, by name (`<operator id>.<what>`).
    parts: Mutex<BTreeMap<String, Part>>,
    /// The snapshot writes started in the background and maybe not finished yet.
    snapshot_writes: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl QueryState {
    /// The state of a query whose checkpoint keeps state under `dir`, in `partitions` parts.
    pub fn new(dir: StoreLocation, partitions: usize) -> Self {
        Self {
            dir,
            partitions: partitions.max(1),
            operators: Mutex::new(BTreeMap::new()),
            parts: Mutex::new(BTreeMap::new()),
            snapshot_writes: Mutex::new(Vec::new()),
        }
    }

    /// The state of operator `id`, created empty on first use.
    pub fn operator(&self, id: &str) -> Arc<OperatorState> {
        Arc::clone(
            lock(&self.operators)
                .entry(id.to_string())
                .or_insert_with(|| Arc::new(OperatorState::new(self.partitions))),
        )
    }

    /// The part `name` (`<operator id>.<what>`), made by `make` on first use.
    pub fn part<T: StatePart>(
        &self,
        name: &str,
        make: impl FnOnce() -> Result<T>,
    ) -> Result<Arc<T>> {
        let mut parts = lock(&self.parts);
        let found = match parts.get(name) {
            Some(found) => found.clone(),
            None => {
                let made = Arc::new(make()?);
                let part = Part {
                    part: Arc::clone(&made) as Arc<dyn StatePart>,
                    any: made,
                };
                parts.insert(name.to_string(), part.clone());
                part
            }
        };
        found
            .any
            .downcast::<T>()
            .map_err(|_| WeirError::Internal(format!("state part '{name}' is of another type")))
    }

    /// Rows and bytes of the committed state of operator `id`: its tables and its parts'
    /// (ids and names `<id>.<part>`), each table counted once.
    pub fn size_of(&self, id: &str) -> (u64, u64) {
        let prefix = format!("{id}.");
        let ours = |k: &str| k == id || k.starts_with(&prefix);
        let parts: Vec<Arc<dyn StatePart>> = lock(&self.parts)
            .iter()
            .filter(|(name, _)| ours(name))
            .map(|(_, p)| Arc::clone(&p.part))
            .collect();
        let in_parts = |k: &str| parts.iter().any(|p| p.tables().iter().any(|m| m == k));
        let operators: Vec<Arc<OperatorState>> = lock(&self.operators)
            .iter()
            .filter(|(k, _)| ours(k) && !in_parts(k))
            .map(|(_, v)| Arc::clone(v))
            .collect();
        operators
            .iter()
            .map(|state| state.size())
            .chain(parts.iter().map(|part| part.size()))
            .fold((0, 0), |(rows, bytes), (r, b)| (rows + r, bytes + b))
    }

    fn partition_dir(&self, id: &str, partition: usize) -> StoreLocation {
        self.dir.child(id).child(&partition.to_string())
    }

    /// Loads the committed state of each operator in `ids` as of `version` (nothing to load
    /// before the first commit).
    pub async fn load(&self, ids: &[String], version: Option<BatchId>) -> Result<()> {
        for id in ids {
            let operator = self.operator(id);
            let Some(version) = version else { continue };
            let mut state = Vec::with_capacity(self.partitions);
            for partition in 0..self.partitions {
                state.push(load_partition(&self.partition_dir(id, partition), id, version).await?);
            }
            *lock(&operator.committed) = state;
            operator.generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Writes each operator's staged deltas, durably, as version `batch`; every 10th batch
    /// also starts writing a snapshot in the background.
    pub async fn persist(&self, batch: BatchId) -> Result<()> {
        let operators: Vec<(String, Arc<OperatorState>)> = lock(&self.operators)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect();
        let mut staged = Vec::with_capacity(operators.len());
        for (id, operator) in operators {
            let Some(operator_staged) = lock(&operator.staged).clone() else {
                continue;
            };
            if operator_staged.partitions.len() != self.partitions {
                return Err(WeirError::Internal(format!(
                    "operator '{id}' staged {} state partitions, the query has {}",
                    operator_staged.partitions.len(),
                    self.partitions
                )));
            }
            staged.push((id, operator_staged));
        }
        // Every partition gets a delta for every batch (maybe empty), so replay never
        // mistakes a quiet partition for a missing file. All the operators' deltas are
        // encoded and written at once, on all cores.
        let writes = staged.iter().flat_map(|(id, operator)| {
            operator
                .partitions
                .iter()
                .enumerate()
                .map(move |(partition, part)| {
                    let dir = self.partition_dir(id, partition);
                    let (schema, keys) = (Arc::clone(&operator.schema), operator.keys);
                    let delete_prefix = operator.delete_prefix;
                    let delta = part.delta.clone();
                    async move {
                        let bytes = tokio::task::spawn_blocking(move || {
                            encode_delta(&schema, keys, delete_prefix, delta)
                        })
                        .await
                        .map_err(|e| {
                            WeirError::Internal(format!("state delta task failed: {e}"))
                        })??;
                        dir.put(&format!("{}.delta", batch.0), bytes).await?;
                        Ok::<_, WeirError>(())
                    }
                })
        });
        futures::future::try_join_all(writes).await?;
        if batch.0.is_multiple_of(SNAPSHOT_INTERVAL) {
            let mut running = lock(&self.snapshot_writes);
            running.retain(|write| !write.is_finished());
            for (id, operator) in staged {
                for (partition, part) in operator.partitions.into_iter().enumerate() {
                    running.push(tokio::spawn(write_snapshot(
                        self.partition_dir(&id, partition),
                        batch,
                        Arc::clone(&operator.schema),
                        operator.keys,
                        part.state,
                    )));
                }
            }
        }
        Ok(())
    }

    /// Waits for the snapshot writes still running in the background, so that a query that
    /// stops leaves its snapshots written (and the files they make stale removed).
    pub async fn finish_snapshots(&self) {
        let running = std::mem::take(&mut *lock(&self.snapshot_writes));
        for write in running {
            if let Err(e) = write.await {
                tracing::warn!("a state snapshot write ended abnormally: {e}");
            }
        }
    }

    /// Makes each operator's staged state the committed one (after `commits/N` is written).
    pub fn promote(&self) {
        for operator in lock(&self.operators).values() {
            if let Some(staged) = lock(&operator.staged).take() {
                *lock(&operator.committed) =
                    staged.partitions.into_iter().map(|p| p.state).collect();
                operator.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

/// The state of one partition of operator `id` as of `version`: the newest snapshot at or
/// before it, with the deltas after it replayed.
async fn load_partition(
    dir: &StoreLocation,
    id: &str,
    version: BatchId,
) -> Result<Vec<RecordBatch>> {
    dir.remove_interrupted_writes().await?;
    let mut snapshots = Vec::new();
    let mut deltas = Vec::new();
    for file in dir.list().await? {
        if let Some(v) = file
            .name
            .strip_suffix(".snapshot")
            .and_then(|v| v.parse::<u64>().ok())
        {
            snapshots.push(v);
        } else if let Some(v) = file
            .name
            .strip_suffix(".delta")
            .and_then(|v| v.parse::<u64>().ok())
        {
            deltas.push(v);
        }
    }
    let base = snapshots.into_iter().filter(|v| *v <= version.0).max();
    if base.is_none() && !deltas.contains(&0) {
        return Err(WeirError::Checkpoint(format!(
            "{} holds no state for operator '{id}' as of committed batch {version} (was the query \
             changed to add a stateful operator, or its state partitions? then use a new checkpoint)",
            dir.describe("")
        )));
    }
    let (mut schema, mut keys, base_rows) = match base {
        Some(v) => {
            let snapshot = read(dir, &format!("{v}.snapshot")).await?;
            (Some(snapshot.schema), snapshot.keys, snapshot.batches)
        }
        None => (None, 0, Vec::new()),
    };
    let mut replayed = Vec::new();
    for v in base.map_or(0, |b| b + 1)..=version.0 {
        let delta = read(dir, &format!("{v}.delta")).await?;
        if schema.is_none() {
            let fields = delta.schema.fields();
            schema = Some(Arc::new(Schema::new(fields[..fields.len() - 1].to_vec())));
            keys = delta.keys;
        }
        replayed.extend(delta.batches.into_iter().map(|rows| Delta {
            rows,
            delete_prefix: delta.delete_prefix,
        }));
    }
    match schema {
        Some(schema) => replay(&schema, keys, base_rows, replayed),
        None => Ok(Vec::new()),
    }
}

/// Encodes `delta`, a batch's change to one partition of an operator whose state has
/// `schema` and `keys` key columns, of which a delete row matches the first `delete_prefix`.
fn encode_delta(
    schema: &SchemaRef,
    keys: usize,
    delete_prefix: usize,
    delta: RecordBatch,
) -> Result<Bytes> {
    let mut metadata = HashMap::new();
    if delete_prefix < keys {
        metadata.insert(
            DELETE_PREFIX_METADATA.to_string(),
            delete_prefix.to_string(),
        );
    }
    encode(&delta_schema(schema), keys, metadata, &[delta])
}

/// Writes the snapshot of `batch`, then drops files no load can need any more. Failures are
/// logged: the deltas still hold everything.
async fn write_snapshot(
    dir: StoreLocation,
    batch: BatchId,
    schema: SchemaRef,
    keys: usize,
    state: Vec<RecordBatch>,
) {
    let result = async {
        let bytes =
            tokio::task::spawn_blocking(move || encode(&schema, keys, HashMap::new(), &state))
                .await
                .map_err(|e| WeirError::Internal(format!("state snapshot task failed: {e}")))??;
        dir.put(&format!("{}.snapshot", batch.0), bytes).await?;
        let mut snapshots: Vec<u64> = dir
            .list()
            .await?
            .iter()
            .filter_map(|f| f.name.strip_suffix(".snapshot")?.parse().ok())
            .collect();
        snapshots.sort_unstable();
        if snapshots.len() > 2 {
            let oldest_kept = snapshots[snapshots.len() - 2];
            for file in dir.list().await? {
                let (version, snapshot) = match (
                    file.name.strip_suffix(".snapshot"),
                    file.name.strip_suffix(".delta"),
                ) {
                    (Some(v), _) => (v.parse::<u64>().ok(), true),
                    (_, Some(v)) => (v.parse::<u64>().ok(), false),
                    _ => (None, false),
                };
                let stale = version.is_some_and(|v| {
                    if snapshot {
                        v < oldest_kept
                    } else {
                        v <= oldest_kept
                    }
                });
                if stale {
                    dir.delete(&file.name).await?;
                }
            }
        }
        Ok::<_, WeirError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(batch = %batch, error = %e, "writing a state snapshot failed; restarts replay deltas instead");
    }
}

/// A state file read back.
struct StateFile {
    /// The schema, without metadata.
    schema: SchemaRef,
    keys: usize,
    /// How many leading key columns a delete row matches (a delta's; all the keys unless the
    /// file says otherwise).
    delete_prefix: usize,
    batches: Vec<RecordBatch>,
}

async fn read(dir: &StoreLocation, name: &str) -> Result<StateFile> {
    let bytes = dir.get(name).await?.ok_or_else(|| {
        WeirError::Checkpoint(format!(
            "{} is missing: the operator's state cannot be rebuilt",
            dir.describe(name)
        ))
    })?;
    let damaged = |e: &dyn std::fmt::Display| {
        WeirError::Checkpoint(format!("{} is damaged: {e}", dir.describe(name)))
    };
    let reader = FileReader::try_new(Cursor::new(bytes), None).map_err(|e| damaged(&e))?;
    let schema = reader.schema();
    let keys = schema
        .metadata()
        .get(KEYS_METADATA)
        .and_then(|k| k.parse().ok())
        .ok_or_else(|| damaged(&"no key count"))?;
    let delete_prefix = match schema.metadata().get(DELETE_PREFIX_METADATA) {
        None => keys,
        Some(prefix) => prefix
            .parse::<usize>()
            .ok()
            .filter(|p| *p <= keys)
            .ok_or_else(|| damaged(&format!("a bad delete prefix '{prefix}'")))?,
    };
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| damaged(&e))?;
    let plain = Arc::new(Schema::new(schema.fields().clone()));
    let batches = batches
        .into_iter()
        .map(|b| RecordBatch::try_new(Arc::clone(&plain), b.columns().to_vec()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| damaged(&e))?;
    Ok(StateFile {
        schema: plain,
        keys,
        delete_prefix,
        batches,
    })
}

/// The Arrow IPC file of `batches`, with the key count and `metadata` in its schema.
fn encode(
    schema: &SchemaRef,
    keys: usize,
    mut metadata: HashMap<String, String>,
    batches: &[RecordBatch],
) -> Result<Bytes> {
    let failed = |e: arrow::error::ArrowError| WeirError::Internal(format!("encoding state: {e}"));
    metadata.insert(KEYS_METADATA.to_string(), keys.to_string());
    let schema = Arc::new(Schema::new(schema.fields().clone()).with_metadata(metadata));
    // Sized up front, so the encoding is not copied as the buffer grows.
    let size: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    let mut buffer = Vec::with_capacity(size + 4096);
    let mut writer = FileWriter::try_new(&mut buffer, &schema).map_err(failed)?;
    for batch in batches {
        let batch = batch
            .clone()
            .with_schema(Arc::clone(&schema))
            .map_err(failed)?;
        writer.write(&batch).map_err(failed)?;
    }
    writer.finish().map_err(failed)?;
    drop(writer);
    Ok(Bytes::from(buffer))
}
