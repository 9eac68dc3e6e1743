//! [`Checkpoint::verify`]: the whole log is checked when a query starts, before any output
//! or state is touched, so a damaged checkpoint is refused rather than replayed wrongly (or
//! used to delete output that a later fix of the file would have needed).
//!
//! What is checked: `metadata.json` is there when batches are; the offsets and commits logs
//! are contiguous over the retained batches (older entries are what a purge cut short by a
//! crash left); each of their newest entries ([`CHECKED_ENTRIES`] of each) is for the batch
//! its name says; the newest commit has its offsets and at most one planned batch follows it;
//! and each checked offsets entry starts each source where the entry before it ended.

use std::collections::BTreeSet;

use weir_connectors::{BatchId, StoreLocation};

use super::log::{RETAINED_BATCHES, batch_ids, entry_name, read_json};
use super::{Checkpoint, CommitEntry, OffsetsEntry};
use crate::error::{Result, WeirError};

/// How many of the newest entries of each log are read and checked.
const CHECKED_ENTRIES: usize = 3;

impl Checkpoint {
    /// Checks the checkpoint's logs (see the module docs); `has_metadata` tells whether
    /// `metadata.json` was found.
    pub async fn verify(&self, has_metadata: bool) -> Result<()> {
        let offsets_dir = self.dir.child("offsets");
        let commits_dir = self.dir.child("commits");
        let (mut offsets, mut commits) = (
            batch_ids(&offsets_dir).await?,
            batch_ids(&commits_dir).await?,
        );
        // Entries older than the retained ones are left over from a purge a crash cut short.
        // The window ends at the newest commit's next batch (a stray far-future entry must
        // not hide the real ones), or without commits at the newest offsets.
        let newest = match commits.last() {
            Some(&committed) => committed + 1,
            None => offsets.last().copied().unwrap_or_default(),
        };
        let retained = |id: &u64| *id >= newest.saturating_sub(RETAINED_BATCHES);
        offsets.retain(retained);
        commits.retain(retained);
        let damaged = |what: String| {
            WeirError::Checkpoint(format!(
                "{what}: the checkpoint is damaged; restore it from a backup, or start the \
                 query with a new checkpoint (and a new output location)"
            ))
        };
        if !has_metadata && (!offsets.is_empty() || !commits.is_empty()) {
            return Err(damaged(format!(
                "{} is missing, but the checkpoint holds batches up to {}",
                self.dir.describe("metadata.json"),
                offsets
                    .iter()
                    .chain(&commits)
                    .max()
                    .copied()
                    .unwrap_or_default()
            )));
        }
        for (dir, ids) in [(&offsets_dir, &offsets), (&commits_dir, &commits)] {
            if let Some((before, after)) = first_gap(ids) {
                return Err(damaged(format!(
                    "the entries between {} and {} are missing",
                    dir.describe(&entry_name(BatchId(before))),
                    dir.describe(&entry_name(BatchId(after)))
                )));
            }
        }
        // Without commits, at most the first batch can have been planned: anything more
        // means the commits were lost, and the sink would take every batch for uncommitted.
        if commits.is_empty()
            && let Some(&planned) = offsets.iter().find(|&&id| id > 0)
        {
            return Err(damaged(format!(
                "{} exists, but {} holds no commit",
                offsets_dir.describe(&entry_name(BatchId(planned))),
                self.dir.describe("commits")
            )));
        }
        if let Some(&committed) = commits.last() {
            if !offsets.contains(&committed) {
                return Err(damaged(format!(
                    "{} has no {}",
                    commits_dir.describe(&entry_name(BatchId(committed))),
                    offsets_dir.describe(&entry_name(BatchId(committed)))
                )));
            }
            if let Some(&planned) = offsets.last()
                && planned > committed + 1
            {
                return Err(damaged(format!(
                    "{} is planned, but the last commit is {}",
                    offsets_dir.describe(&entry_name(BatchId(planned))),
                    commits_dir.describe(&entry_name(BatchId(committed)))
                )));
            }
        }
        for &id in commits.iter().rev().take(CHECKED_ENTRIES) {
            let entry: Option<CommitEntry> =
                read_json(&commits_dir, &entry_name(BatchId(id))).await?;
            check_named(&commits_dir, id, entry.map(|e| e.batch_id), &damaged)?;
        }
        let mut newer: Option<OffsetsEntry> = None;
        for &id in offsets.iter().rev().take(CHECKED_ENTRIES) {
            let entry: Option<OffsetsEntry> =
                read_json(&offsets_dir, &entry_name(BatchId(id))).await?;
            check_named(
                &offsets_dir,
                id,
                entry.as_ref().map(|e| e.batch_id),
                &damaged,
            )?;
            let Some(entry) = entry else { continue };
            if let Some(newer) = &newer {
                let continues = newer.sources.len() == entry.sources.len()
                    && newer
                        .sources
                        .iter()
                        .zip(&entry.sources)
                        .all(|(next, this)| next.source == this.source && next.start == this.end);
                if !continues {
                    return Err(damaged(format!(
                        "{} does not start where {} ended (it is a stale or foreign copy)",
                        offsets_dir.describe(&entry_name(newer.batch_id)),
                        offsets_dir.describe(&entry_name(entry.batch_id))
                    )));
                }
            }
            newer = Some(entry);
        }
        Ok(())
    }
}

/// Refuses a log entry whose content is for another batch than its name says.
fn check_named(
    dir: &StoreLocation,
    named: u64,
    recorded: Option<BatchId>,
    damaged: &impl Fn(String) -> WeirError,
) -> Result<()> {
    match recorded {
        Some(BatchId(recorded)) if recorded != named => Err(damaged(format!(
            "{} records batch {recorded} (it is a stale or foreign copy)",
            dir.describe(&entry_name(BatchId(named)))
        ))),
        _ => Ok(()),
    }
}

/// The first two neighbours of `ids` with batch ids missing between them.
fn first_gap(ids: &BTreeSet<u64>) -> Option<(u64, u64)> {
    ids.iter()
        .zip(ids.iter().skip(1))
        .find(|(a, b)| **b != **a + 1)
        .map(|(a, b)| (*a, *b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_missing_entry_is_found() {
        let ids = |v: &[u64]| v.iter().copied().collect::<BTreeSet<u64>>();
        assert_eq!(first_gap(&ids(&[])), None);
        assert_eq!(first_gap(&ids(&[4, 5, 6])), None);
        assert_eq!(first_gap(&ids(&[4, 5, 7, 9])), Some((5, 7)));
    }
}
