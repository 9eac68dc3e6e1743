//! [`CheckpointLock`]: one writer per checkpoint.
//!
//! A query holds its checkpoint's lock from before it touches anything (the sink's leftovers,
//! the logs, the state) until it ends, so a second query started on the same checkpoint is
//! refused at once, naming the holder, and can neither delete the first one's output nor
//! race it for log entries. On a local disk the lock is an OS file lock (`flock`) on
//! `<checkpoint>/writer.lock`: the kernel releases it when its process ends in any way,
//! SIGKILL included, so a crashed writer never leaves a stale lock; the file holds a line
//! naming the holder, for the refusal's message.
//!
//! A checkpoint in an object store has no file lock: there the lock is a lease object with
//! create-only and compare-and-swap puts, renewed while the query runs (see
//! [`WriterLease`]). A query checks it before each sink write and commit.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use weir_connectors::StoreLocation;

use super::lease::{LEASE_TIME, WriterLease};
use crate::error::{Result, WeirError};

/// The lock's file inside a local checkpoint directory.
const LOCK_FILE: &str = "writer.lock";

/// Held for as long as a query writes its checkpoint; dropping it releases a file lock (a
/// lease runs out instead, unless the query hands it back when it ends).
#[derive(Debug)]
pub struct CheckpointLock {
    held: Held,
}

#[derive(Debug)]
enum Held {
    /// The locked file of a local checkpoint.
    File(#[allow(dead_code, reason = "held for its lock")] File),
    /// The lease of an object-store checkpoint.
    Lease(WriterLease),
}

impl CheckpointLock {
    /// Takes the lock of checkpoint directory `dir` for query `query`, or refuses with the
    /// holder's name when another query (in this process or another) holds it.
    pub(crate) async fn acquire(dir: &StoreLocation, query: &str) -> Result<Self> {
        let Some(path) = dir.local_path().map(PathBuf::from) else {
            let lease = WriterLease::acquire(dir.clone(), query, LEASE_TIME).await?;
            return Ok(Self {
                held: Held::Lease(lease),
            });
        };
        let query = query.to_string();
        tokio::task::spawn_blocking(move || lock(&path, &query))
            .await
            .map_err(|e| WeirError::Internal(format!("locking the checkpoint: {e}")))?
            .map(|file| Self {
                held: Held::File(file),
            })
    }

    /// Fails if the lock was lost (a lease not renewed in time); a file lock cannot be.
    pub(crate) fn check(&self) -> Result<()> {
        match &self.held {
            Held::File(_) => Ok(()),
            Held::Lease(lease) => lease.check(),
        }
    }

    /// Lets go of the lock, so that the next query takes it at once.
    pub(crate) async fn release(self) {
        if let Held::Lease(lease) = self.held {
            lease.release().await;
        }
    }
}

fn lock(dir: &Path, query: &str) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let io_error = |e: std::io::Error| {
        WeirError::Checkpoint(format!(
            "cannot lock {}: {e}; check that the checkpoint directory is writable",
            path.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(io_error)?;
    let mut file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                "another query".to_string()
            } else {
                holder.to_string()
            };
            return Err(WeirError::Checkpoint(format!(
                "{} is in use by {holder}; only one query may write a checkpoint: stop that \
                 query first, or give this one another sink name or checkpoint",
                dir.display()
            )));
        }
        // A file system without locks (some network or FUSE mounts): run unlocked, as
        // before locks, and say so.
        Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            tracing::warn!(checkpoint = %dir.display(), error = %e, "the file system cannot lock the checkpoint; running without its writer lock");
            return Ok(file);
        }
        Err(TryLockError::Error(e)) => return Err(io_error(e)),
    }
    let started = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let holder = format!(
        "query '{query}' (process {}, started {started})",
        std::process::id()
    );
    file.set_len(0).map_err(io_error)?;
    file.rewind().map_err(io_error)?;
    file.write_all(holder.as_bytes()).map_err(io_error)?;
    Ok(file)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_writer_is_refused_naming_the_first_until_it_lets_go() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StoreLocation::parse(&tmp.path().join("ckpt").to_string_lossy(), true).unwrap();
        let first = CheckpointLock::acquire(&dir, "out").await.unwrap();
        let refused = CheckpointLock::acquire(&dir, "other")
            .await
            .unwrap_err()
            .to_string();
        let pid = std::process::id();
        assert!(
            refused.contains(&format!(
                "ckpt is in use by query 'out' (process {pid}, started "
            )) && refused.contains("only one query may write a checkpoint"),
            "{refused}"
        );
        drop(first);
        let _second = CheckpointLock::acquire(&dir, "other").await.unwrap();
    }
}
