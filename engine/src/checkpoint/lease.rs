//! [`WriterLease`]: one writer per checkpoint in an object store, where there is no file
//! lock to take.
//!
//! The lease is the object `<checkpoint>/writer.lease`, a line of JSON naming its holder
//! (query, process, host) and the time its lease runs out. A query takes it with a
//! create-only put, so of two queries starting together exactly one wins; the holder renews it
//! every [`LEASE_TIME`]` / 3` with a compare-and-swap put (`If-Match` its own version), and
//! hands it back when it ends by writing it as already run out, the same way.
//!
//! A query that finds the lease held is refused, naming the holder, unless the holder is
//! gone: its lease ran out (it stopped renewing: killed, frozen, or cut off from the store
//! for [`LEASE_TIME`]), or it was a process on this machine that no longer runs (so a restart
//! after a crash does not wait). Then it takes the lease over with a compare-and-swap put on
//! the version it read: of two newcomers racing for a stale lease exactly one wins.
//!
//! A holder that fails to renew in time has lost the lease: [`WriterLease::check`] says so,
//! and the query stops before its next sink write or commit, so a writer that was frozen
//! past its lease cannot overwrite the work of the one that took over. Clocks of the machines
//! sharing a checkpoint must agree to within a few seconds of [`LEASE_TIME`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use weir_connectors::{ObjectVersion, StoreLocation};

use crate::error::{Result, WeirError};

/// The lease's object inside the checkpoint.
const LEASE_FILE: &str = "writer.lease";
/// How long a lease lasts without renewal.
pub(crate) const LEASE_TIME: Duration = Duration::from_secs(30);

/// What the lease object holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    /// Who holds it, for messages: `query 'out' (process 12, host h, started …)`.
    holder: String,
    /// The holder's machine: host name and boot id.
    machine: String,
    /// The holder's process id.
    pid: u32,
    /// When the lease runs out, ms since the epoch.
    expires_at_ms: i64,
}

impl Lease {
    fn to_bytes(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Why the lease's holder is gone, or `None` while it may still be writing.
    fn gone(&self, now_ms: i64) -> Option<&'static str> {
        if self.expires_at_ms <= now_ms {
            return Some("let its lease run out");
        }
        if self.machine == this_machine() && !process_runs(self.pid) {
            return Some("no longer runs on this machine");
        }
        None
    }
}

/// The checkpoint's lease, held and renewed in the background until released or dropped.
#[derive(Debug)]
pub(crate) struct WriterLease {
    dir: StoreLocation,
    held: Arc<Mutex<Held>>,
    /// How long the lease lasts without renewal.
    time: Duration,
    renewer: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Held {
    lease: Lease,
    version: ObjectVersion,
    /// Why the lease was lost, once it is.
    lost: Option<String>,
}

impl WriterLease {
    /// Takes the lease of checkpoint `dir` for query `query`, lasting `time` between
    /// renewals, or refuses naming the holder while it is not gone.
    pub(crate) async fn acquire(dir: StoreLocation, query: &str, time: Duration) -> Result<Self> {
        let started = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        let mut mine = Lease {
            holder: format!(
                "query '{query}' (process {} on {}, started {started})",
                std::process::id(),
                host_name()
            ),
            machine: this_machine(),
            pid: std::process::id(),
            expires_at_ms: 0,
        };
        let failed = |e| WeirError::Checkpoint(format!("taking the writer lease: {e}"));
        // A lease released between our create and our read is created again; three rounds
        // are plenty for that.
        for _ in 0..3 {
            mine.expires_at_ms = expiry(time);
            if let Some(version) = dir
                .create(LEASE_FILE, mine.to_bytes())
                .await
                .map_err(failed)?
            {
                return Ok(Self::hold(dir, mine, version, time));
            }
            let Some((bytes, version)) = dir.get_versioned(LEASE_FILE).await.map_err(failed)?
            else {
                continue;
            };
            let theirs = serde_json::from_slice::<Lease>(&bytes).ok();
            let now = chrono::Utc::now().timestamp_millis();
            let gone = theirs
                .as_ref()
                .map_or(Some("left a damaged lease"), |l| l.gone(now));
            let holder = theirs
                .as_ref()
                .map_or("an unknown writer", |l| l.holder.as_str());
            let Some(gone) = gone else {
                return Err(in_use(&dir, holder));
            };
            tracing::warn!(checkpoint = %dir.describe(""), holder, "taking over the checkpoint's writer lease: its holder {gone}");
            if let Some(version) = dir
                .replace(LEASE_FILE, mine.to_bytes(), &version)
                .await
                .map_err(failed)?
            {
                return Ok(Self::hold(dir, mine, version, time));
            }
            // Another newcomer took it over first: the next round finds its lease alive.
        }
        let holder = match dir.get(LEASE_FILE).await.map_err(failed)? {
            Some(bytes) => serde_json::from_slice::<Lease>(&bytes)
                .map_or_else(|_| "an unknown writer".to_string(), |l| l.holder),
            None => "another query".to_string(),
        };
        Err(in_use(&dir, &holder))
    }

    fn hold(dir: StoreLocation, lease: Lease, version: ObjectVersion, time: Duration) -> Self {
        let held = Arc::new(Mutex::new(Held {
            lease,
            version,
            lost: None,
        }));
        let renewer = tokio::spawn(renew(dir.clone(), Arc::clone(&held), time));
        Self {
            dir,
            held,
            time,
            renewer,
        }
    }

    /// Fails once the lease is lost (see the module doc), or when less than a third of its
    /// time is left: a renewal is late (the store is slow or cut off, or this process was
    /// frozen), and a write started now could end after another query took the lease over.
    pub(crate) fn check(&self) -> Result<()> {
        let held = lock(&self.held);
        let left = held.lease.expires_at_ms - chrono::Utc::now().timestamp_millis();
        let margin = i64::try_from((self.time / 3).as_millis()).unwrap_or(i64::MAX);
        let why = match &held.lost {
            Some(why) => why.clone(),
            None if left < margin => format!("it runs out in {} ms, not renewed in time", left),
            None => return Ok(()),
        };
        Err(WeirError::Checkpoint(format!(
            "{}: this query lost the checkpoint's writer lease ({why}); it stops so as not to \
             write over a query that takes the checkpoint over",
            self.dir.describe(LEASE_FILE)
        )))
    }

    /// Hands the lease back: writes it as run out, if it is still ours, so the next query
    /// takes it at once.
    pub(crate) async fn release(self) {
        self.renewer.abort();
        let (mut lease, version) = {
            let held = lock(&self.held);
            if held.lost.is_some() {
                return;
            }
            (held.lease.clone(), held.version.clone())
        };
        lease.expires_at_ms = 0;
        match self
            .dir
            .replace(LEASE_FILE, lease.to_bytes(), &version)
            .await
        {
            Ok(Some(_)) => {}
            // Changed since our last renewal: another query's now, or a renewal whose answer
            // was lost (the lease then runs out on its own).
            Ok(None) => {
                tracing::debug!(checkpoint = %self.dir.describe(""), "the writer lease changed since its last renewal; not handed back")
            }
            Err(e) => {
                tracing::warn!(checkpoint = %self.dir.describe(""), error = %e, "could not hand back the writer lease; the next query takes it over when it runs out")
            }
        }
    }
}

impl Drop for WriterLease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Renews the lease every third of its time until it is lost.
async fn renew(dir: StoreLocation, held: Arc<Mutex<Held>>, time: Duration) {
    loop {
        tokio::time::sleep(time / 3).await;
        let (mut lease, version) = {
            let held = lock(&held);
            (held.lease.clone(), held.version.clone())
        };
        let expired = lease.expires_at_ms <= chrono::Utc::now().timestamp_millis();
        lease.expires_at_ms = expiry(time);
        let outcome = match expired {
            // Too late: another query may have taken it over already.
            true => Err("it could not be renewed before it ran out".to_string()),
            // A renewal may not outlast the next one's turn: a store that answers late
            // leaves the lease running out, which `check` sees.
            false => match tokio::time::timeout(
                time / 3,
                dir.replace(LEASE_FILE, lease.to_bytes(), &version),
            )
            .await
            {
                Ok(Ok(Some(version))) => Ok(Some(version)),
                Ok(Ok(None)) => Err("another query took it over".to_string()),
                Ok(Err(e)) => {
                    tracing::warn!(checkpoint = %dir.describe(""), error = %e, "renewing the writer lease failed; retrying");
                    Ok(None)
                }
                Err(_) => {
                    tracing::warn!(checkpoint = %dir.describe(""), "renewing the writer lease timed out; retrying");
                    Ok(None)
                }
            },
        };
        let mut held = lock(&held);
        match outcome {
            Ok(Some(version)) => {
                held.lease = lease;
                held.version = version;
            }
            Ok(None) => {}
            Err(why) => {
                tracing::error!(checkpoint = %dir.describe(""), "lost the checkpoint's writer lease: {why}");
                held.lost = Some(why);
                return;
            }
        }
    }
}

fn in_use(dir: &StoreLocation, holder: &str) -> WeirError {
    WeirError::Checkpoint(format!(
        "{} is in use by {holder}; only one query may write a checkpoint: stop that query first \
         (a crashed holder's lease runs out {} s after its last renewal), or give this one \
         another sink name or checkpoint",
        dir.describe("").trim_end_matches('/'),
        LEASE_TIME.as_secs()
    ))
}

fn lock(held: &Mutex<Held>) -> std::sync::MutexGuard<'_, Held> {
    held.lock().unwrap_or_else(|p| p.into_inner())
}

fn expiry(time: Duration) -> i64 {
    let time = i64::try_from(time.as_millis()).unwrap_or(i64::MAX);
    chrono::Utc::now().timestamp_millis().saturating_add(time)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "an unknown host".to_string())
}

/// This machine's process ids, as long as it runs: host name, boot id and the process-id
/// namespace (so containers sharing a host name do not take each other's processes for
/// theirs); empty where unknown, which no lease can match.
fn this_machine() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id");
    let namespace = std::fs::read_link("/proc/self/ns/pid");
    match (boot, namespace) {
        (Ok(boot), Ok(namespace)) => {
            format!("{} {} {}", host_name(), boot.trim(), namespace.display())
        }
        _ => String::new(),
    }
}

/// Whether process `pid` may run on this machine: `false` only when `/proc` shows every
/// process and not this one (Linux; elsewhere, or with `/proc` hiding processes, it may).
fn process_runs(pid: u32) -> bool {
    let proc_shows_all = std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|mounts| {
        mounts
            .lines()
            .filter(|line| line.split(' ').nth(4) == Some("/proc"))
            .all(|line| !line.contains("hidepid"))
    });
    !proc_shows_all || std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dir() -> StoreLocation {
        StoreLocation::in_memory("memory://checkpoint")
    }

    fn lease_of(dir: &StoreLocation) -> Lease {
        let bytes = futures::executor::block_on(dir.get(LEASE_FILE))
            .unwrap()
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_live_holder_is_named_and_a_released_lease_is_taken_at_once() {
        let dir = dir();
        let first = WriterLease::acquire(dir.clone(), "out", LEASE_TIME)
            .await
            .unwrap();
        let refused = WriterLease::acquire(dir.clone(), "other", LEASE_TIME)
            .await
            .unwrap_err()
            .to_string();
        let pid = std::process::id();
        assert!(
            refused.contains(&format!("is in use by query 'out' (process {pid} on "))
                && refused.contains("only one query may write a checkpoint"),
            "{refused}"
        );
        first.release().await;
        let second = WriterLease::acquire(dir.clone(), "other", LEASE_TIME)
            .await
            .unwrap();
        assert!(lease_of(&dir).holder.starts_with("query 'other'"));
        second.check().unwrap();
    }

    #[tokio::test]
    async fn a_lease_is_renewed_and_one_whose_holder_is_gone_is_taken_over() {
        let dir = dir();
        let time = Duration::from_millis(300);
        let first = WriterLease::acquire(dir.clone(), "out", time)
            .await
            .unwrap();
        let expires = lease_of(&dir).expires_at_ms;
        tokio::time::sleep(time * 2).await;
        assert!(lease_of(&dir).expires_at_ms > expires, "renewed");
        first.check().unwrap();
        // A holder that stops renewing (dropped here, as if frozen) lets the lease run out.
        drop(first);
        tokio::time::sleep(time + Duration::from_millis(50)).await;
        let _second = WriterLease::acquire(dir.clone(), "other", time)
            .await
            .unwrap();
        // A holder on this machine whose process is gone is taken over at once.
        let mut dead = lease_of(&dir);
        dead.holder = "query 'old' (process 4194305)".into();
        dead.pid = 4_194_305;
        dead.expires_at_ms = i64::MAX;
        let other = super::tests::dir();
        other.put(LEASE_FILE, dead.to_bytes()).await.unwrap();
        let taken = WriterLease::acquire(other.clone(), "new", LEASE_TIME)
            .await
            .unwrap();
        assert!(lease_of(&other).holder.starts_with("query 'new'"));
        taken.check().unwrap();
    }

    #[tokio::test]
    async fn a_holder_whose_lease_was_taken_over_knows_it_lost_it() {
        let dir = dir();
        let time = Duration::from_millis(300);
        let first = WriterLease::acquire(dir.clone(), "out", time)
            .await
            .unwrap();
        // Someone takes the lease over behind the holder's back.
        let mut other = lease_of(&dir);
        other.holder = "query 'thief'".into();
        dir.put(LEASE_FILE, other.to_bytes()).await.unwrap();
        tokio::time::sleep(time).await;
        let lost = first.check().unwrap_err().to_string();
        assert!(
            lost.contains("lost the checkpoint's writer lease (another query took it over)"),
            "{lost}"
        );
    }

    #[tokio::test]
    async fn a_holder_whose_renewals_stall_stops_before_its_lease_runs_out() {
        let dir = dir();
        let time = Duration::from_millis(300);
        let lease = WriterLease::acquire(dir.clone(), "out", time)
            .await
            .unwrap();
        lease.check().unwrap();
        // No more renewals, as when the store stops answering: with less than a third of
        // its time left, the holder must not start another write.
        lease.renewer.abort();
        tokio::time::sleep(Duration::from_millis(250)).await;
        let late = lease.check().unwrap_err().to_string();
        assert!(late.contains("not renewed in time"), "{late}");
    }
}
