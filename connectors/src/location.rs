//! [`StoreLocation`]: a directory in an object store (the local filesystem, S3, GCS or Azure),
//! used for source directories, sink directories, static tables and checkpoints alike.
//!
//! Every write is whole or nothing: a local put stages its bytes in a file whose name readers
//! skip (`.<name>.<pid>-<n>.staging`: a leading `.`, as Spark, Hive, pyarrow and DuckDB skip, and no
//! `.parquet` extension for globs) and renames it into place, an object-store put is atomic, and a file of [`MULTIPART_THRESHOLD`] bytes or more goes up
//! as a multipart upload, which appears only when it completes. Log entries use create-only
//! conditional puts ([`StoreLocation::put_if_absent`]); when the answer to one is lost (a
//! timeout after the store applied it, then a retry that finds the object), the object is read
//! back: if it holds the same bytes the put was ours and succeeded.

use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
    WriteMultipart,
};

use crate::error::{ConnectorError, Result};
use crate::storage::StorageOptions;

/// Files of at least this many bytes are written with a multipart upload.
pub const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// The size of each part of a multipart upload (S3's minimum is 5 MiB).
const MULTIPART_CHUNK: usize = 8 * 1024 * 1024;

/// A directory in an object store.
#[derive(Debug, Clone)]
pub struct StoreLocation {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    display: String,
    /// The directory on the local filesystem, for a local store.
    local_dir: Option<std::path::PathBuf>,
}

/// The version of an object as its store names it (an ETag, and a version id where the
/// store keeps versions), for [`StoreLocation::replace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    e_tag: Option<String>,
    version: Option<String>,
}

/// One file directly inside a [`StoreLocation`].
#[derive(Debug, Clone)]
pub struct FileMeta {
    /// The file name (no directory part).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub modified: chrono::DateTime<chrono::Utc>,
}

impl StoreLocation {
    /// The directory at `path` (a local path or URL), with object-store settings from the
    /// environment only; see [`StoreLocation::open`].
    pub fn parse(path: &str, create: bool) -> Result<Self> {
        Self::open(path, &StorageOptions::default(), create)
    }

    /// The directory at `path`: a local path, a `file://` URL, or an object-store URL
    /// (`s3://bucket/prefix`, `gs://…`, `az://…`) reached with `storage`. A local directory
    /// is created when `create` is set and must exist otherwise; object stores have no
    /// directories to create.
    pub fn open(path: &str, storage: &StorageOptions, create: bool) -> Result<Self> {
        let local = match path.split_once("://") {
            None => path,
            Some(("file", rest)) => rest,
            Some(_) => {
                let (store, prefix) = storage.open(path)?;
                return Ok(Self {
                    store,
                    prefix: Path::from(prefix),
                    display: path.trim_end_matches('/').to_string(),
                    local_dir: None,
                });
            }
        };
        if local.is_empty() {
            return Err(ConnectorError::Config(
                "an empty path was given".to_string(),
            ));
        }
        let absolute = std::path::absolute(local).map_err(|e| ConnectorError::io(path, e))?;
        if create {
            std::fs::create_dir_all(&absolute).map_err(|e| ConnectorError::io(path, e))?;
        } else if !absolute.is_dir() {
            return Err(ConnectorError::Config(format!(
                "directory '{}' does not exist; create it or fix the path",
                absolute.display()
            )));
        }
        let store =
            LocalFileSystem::new_with_prefix(&absolute).map_err(|e| ConnectorError::io(path, e))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: Path::default(),
            display: absolute.display().to_string(),
            local_dir: Some(absolute),
        })
    }

    /// A directory in a new, empty store held in this process's memory (named `display` in
    /// messages), for tests and scratch work.
    pub fn in_memory(display: &str) -> Self {
        Self {
            store: Arc::new(object_store::memory::InMemory::new()),
            prefix: Path::default(),
            display: display.to_string(),
            local_dir: None,
        }
    }

    /// The subdirectory `name` (created lazily by the first write).
    pub fn child(&self, name: &str) -> Self {
        Self {
            store: Arc::clone(&self.store),
            prefix: self.path(name),
            display: format!("{}/{name}", self.display),
            local_dir: self.local_dir.as_ref().map(|d| d.join(name)),
        }
    }

    /// Deletes what writes interrupted by a crash left in this directory: on a local
    /// filesystem, a put stages its bytes in `.<name>.<pid>-<n>.staging` (a create-only put, in
    /// `<name>#<n>`) and renames it, and a crash in between leaves the staging file, which
    /// listings hide. (Object-store puts leave nothing.)
    pub async fn remove_interrupted_writes(&self) -> Result<()> {
        let Some(dir) = &self.local_dir else {
            return Ok(());
        };
        let mut entries = match tokio::fs::read_dir(dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ConnectorError::io(&self.display, e)),
        };
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| ConnectorError::io(&self.display, e))?
        {
            let name = entry.file_name().to_string_lossy().to_string();
            let staging = is_staging_name(&name)
                || name
                    .rsplit_once('#')
                    .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if staging {
                tracing::info!(file = %self.describe(&name), "removing the staging file of an interrupted write");
                match tokio::fs::remove_file(entry.path()).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ConnectorError::io(self.describe(&name), e)),
                }
            }
        }
        Ok(())
    }

    fn path(&self, name: &str) -> Path {
        self.prefix.clone().join(name)
    }

    /// How to show a file of this directory in messages.
    pub fn describe(&self, name: &str) -> String {
        format!("{}/{name}", self.display)
    }

    /// The directory on the local filesystem, for a local store.
    pub fn local_path(&self) -> Option<&std::path::Path> {
        self.local_dir.as_deref()
    }

    /// Whether this directory is on the local filesystem.
    pub fn is_local(&self) -> bool {
        self.local_dir.is_some()
    }

    /// Writes `name` whole or not at all, replacing an existing file: staged and renamed on
    /// a local disk; on an object store one put, or for large files an upload in parts (see
    /// [`MULTIPART_THRESHOLD`]).
    pub async fn put(&self, name: &str, bytes: Bytes) -> Result<()> {
        if let Some(dir) = &self.local_dir {
            return self.put_local(dir, name, bytes).await;
        }
        let failed = |e| ConnectorError::io(self.describe(name), e);
        if bytes.len() < MULTIPART_THRESHOLD {
            self.store
                .put(&self.path(name), PutPayload::from(bytes))
                .await
                .map_err(failed)?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(&self.path(name))
            .await
            .map_err(failed)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_CHUNK);
        writer.put(bytes);
        writer.finish().await.map_err(failed)?;
        Ok(())
    }

    /// A local put: the bytes go to a staging file that readers skip, which is then renamed
    /// over `name` (a rename within a directory is atomic), so a reader listing the directory
    /// mid-write sees the old file or the new one, never part of one.
    async fn put_local(&self, dir: &std::path::Path, name: &str, bytes: Bytes) -> Result<()> {
        let failed = |e| ConnectorError::io(self.describe(name), e);
        let staging = dir.join(staging_name(name));
        let written = match tokio::fs::write(&staging, &bytes).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // The directory is created by its first write, as on object stores.
                tokio::fs::create_dir_all(dir).await.map_err(failed)?;
                tokio::fs::write(&staging, &bytes).await
            }
            other => other,
        };
        let renamed = match written {
            Ok(()) => tokio::fs::rename(&staging, dir.join(name)).await,
            Err(e) => Err(e),
        };
        if let Err(e) = renamed {
            let _ = tokio::fs::remove_file(&staging).await;
            return Err(failed(e));
        }
        Ok(())
    }

    /// Writes `name` whole or not at all if it does not exist yet; returns `false`, writing
    /// nothing, if another writer's file is there. A file already holding exactly `bytes`
    /// counts as written (see the module doc).
    pub async fn put_if_absent(&self, name: &str, bytes: Bytes) -> Result<bool> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.path(name), PutPayload::from(bytes.clone()), options)
            .await
        {
            Ok(_) => Ok(true),
            // Either another writer's, or ours: an earlier attempt whose answer was lost.
            Err(object_store::Error::AlreadyExists { .. }) => {
                Ok(self.get(name).await?.is_some_and(|found| found == bytes))
            }
            // An ambiguous failure: the store may have applied the put.
            Err(e) => match self.get(name).await {
                Ok(Some(found)) if found == bytes => Ok(true),
                _ => Err(ConnectorError::io(self.describe(name), e)),
            },
        }
    }

    /// Creates `name` if it does not exist yet, returning its version; `None`, writing
    /// nothing, if it exists. Unlike [`put_if_absent`](Self::put_if_absent) an ambiguous
    /// failure is an error: this is for objects whose writer must know it won (a lease).
    pub async fn create(&self, name: &str, bytes: Bytes) -> Result<Option<ObjectVersion>> {
        self.put_mode(name, bytes, PutMode::Create).await
    }

    /// Replaces `name` only if it is still at `version` (a compare-and-swap), returning the
    /// new version; `None`, writing nothing, if someone else changed or deleted it since.
    pub async fn replace(
        &self,
        name: &str,
        bytes: Bytes,
        version: &ObjectVersion,
    ) -> Result<Option<ObjectVersion>> {
        let mode = PutMode::Update(UpdateVersion {
            e_tag: version.e_tag.clone(),
            version: version.version.clone(),
        });
        self.put_mode(name, bytes, mode).await
    }

    async fn put_mode(
        &self,
        name: &str,
        bytes: Bytes,
        mode: PutMode,
    ) -> Result<Option<ObjectVersion>> {
        let updating = matches!(mode, PutMode::Update(_));
        let options = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.path(name), PutPayload::from(bytes), options)
            .await
        {
            Ok(done) => Ok(Some(ObjectVersion {
                e_tag: done.e_tag,
                version: done.version,
            })),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(None),
            // An update of an object deleted since is refused as not found; a create's "not
            // found" is a missing bucket: an error.
            Err(object_store::Error::NotFound { .. }) if updating => Ok(None),
            Err(e) => Err(ConnectorError::io(self.describe(name), e)),
        }
    }

    /// Reads `name` with its version, or `None` if it does not exist.
    pub async fn get_versioned(&self, name: &str) -> Result<Option<(Bytes, ObjectVersion)>> {
        let found = match self.store.get(&self.path(name)).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(ConnectorError::io(self.describe(name), e)),
        };
        let version = ObjectVersion {
            e_tag: found.meta.e_tag.clone(),
            version: found.meta.version.clone(),
        };
        let bytes = found
            .bytes()
            .await
            .map_err(|e| ConnectorError::io(self.describe(name), e))?;
        Ok(Some((bytes, version)))
    }

    /// Reads `name`, or `None` if it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<Bytes>> {
        match self.store.get(&self.path(name)).await {
            Ok(result) => Ok(Some(
                result
                    .bytes()
                    .await
                    .map_err(|e| ConnectorError::io(self.describe(name), e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(ConnectorError::io(self.describe(name), e)),
        }
    }

    /// Deletes `name`; a missing file is not an error.
    pub async fn delete(&self, name: &str) -> Result<()> {
        match self.store.delete(&self.path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ConnectorError::io(self.describe(name), e)),
        }
    }

    /// Deletes the files `names` (missing ones are no error): on an object store in bulk, one
    /// request per thousand files where the store has bulk deletes.
    pub async fn delete_all(&self, names: &[String]) -> Result<()> {
        let paths = names
            .iter()
            .map(|name| Ok(self.path(name)))
            .collect::<Vec<_>>();
        let mut deleted = self
            .store
            .delete_stream(futures::stream::iter(paths).boxed());
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(ConnectorError::io(&self.display, e)),
            }
        }
        Ok(())
    }

    /// The files directly in this directory (not in subdirectories), in no particular order.
    pub async fn list(&self) -> Result<Vec<FileMeta>> {
        let listing = match self.store.list_with_delimiter(Some(&self.prefix)).await {
            Ok(listing) => listing,
            Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(ConnectorError::io(&self.display, e)),
        };
        Ok(listing
            .objects
            .into_iter()
            .filter_map(|meta| self.file_meta(meta))
            .collect())
    }

    /// Streams every file below this directory, recursively (for cleanup and tests).
    pub async fn list_recursive(&self) -> Result<Vec<String>> {
        let metas: Vec<ObjectMeta> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(|e| ConnectorError::io(&self.display, e))?;
        Ok(metas.into_iter().map(|m| m.location.to_string()).collect())
    }

    fn file_meta(&self, meta: ObjectMeta) -> Option<FileMeta> {
        let name = meta.location.filename()?.to_string();
        Some(FileMeta {
            name,
            size: meta.size,
            modified: meta.last_modified,
        })
    }
}

/// A fresh staging name for a local write of `name`: hidden from readers and listings.
fn staging_name(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(".{name}.{}-{n}.staging", std::process::id())
}

/// Whether `name` is a staging file of [`StoreLocation::put`].
fn is_staging_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".staging")
}

/// Whether a file name is hidden from readers: names starting with `_` or `.`, the convention
/// Spark, Hive, DuckDB and pyarrow share for metadata and in-progress files.
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('_') || name.starts_with('.')
}
