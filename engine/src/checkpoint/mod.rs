//! The checkpoint of one continuous query: its metadata and the offsets and commits logs.
//!
//! ```text
//! writer.lock        held by the query writing the checkpoint (local disks; see `lock`)
//! writer.lease       the same in an object store (see `lease`)
//! metadata.json      query name, SQL, sources, output columns; written once at creation
//! offsets/<N>.json   the source ranges of batch N, written BEFORE batch N runs
//! commits/<N>.json   written AFTER batch N's output is durable in the sink
//! sources/<i>/       logs of source i (e.g. the files a directory source handed out)
//! ```
//!
//! # Ordering rule
//! `offsets/N` is durable before batch N reads anything, and `commits/N` is written only after
//! the sink's write of batch N returned. So on restart, if the newest `offsets/N` has no
//! `commits/N`, batch N is re-run with exactly the offsets recorded (the sink's write is
//! idempotent per batch id); otherwise the query continues with batch N + 1 from the ends of
//! batch N's ranges. Log entries are written create-only: finding one already there means a
//! second query is writing the same checkpoint, which is refused; the second query is refused
//! before that, at start, by the checkpoint's [`CheckpointLock`].

mod compatibility;
mod lease;
mod lock;
mod log;
mod verify;

pub(crate) use compatibility::check_resume;
pub use lock::CheckpointLock;
pub use log::{
    Checkpoint, CommitEntry, OffsetsEntry, OperatorSignature, QueryMetadata, SourceRange,
};
