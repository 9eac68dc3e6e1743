//! The persisted catalog: with a state directory ([`EngineBuilder::state_dir`]), the engine
//! keeps the statements that made its catalog and started its queries in
//! `<state dir>/catalog.json`, so that [`Engine::restore`] re-creates the catalog and restarts
//! every query that was running when the process stopped, from its checkpoint.
//!
//! What is kept: each `CREATE SOURCE | TABLE | VIEW | SINK` that succeeded, as written, and
//! each `INSERT INTO <sink> SELECT` that started a query, in the order they ran. A `DROP`
//! removes the statement that created the object; `CREATE OR REPLACE` replaces it. Rows
//! inserted into a `memory` source are not kept (a memory source lives in memory).
//!
//! A query that ended on its own (its trigger ran out, it failed) or was stopped (`STOP
//! QUERY`, the API's stop) is marked ended and not restarted; its sink is re-created without
//! its query. A query stopped by [`Engine::shutdown`] (`weir serve` on SIGTERM) or by the
//! process dying is restarted by the next restore, from its checkpoint: its sink's guarantee
//! holds across the restart (exactly once for the exactly-once sinks, at least once for the
//! webhook sink; a memory sink starts empty), since the checkpoint says which batches
//! committed.
//!
//! The file is rewritten whole after each change: to a temporary file, synced, then renamed
//! over the old one, so a crash leaves the old catalog or the new one, never a mixture. It
//! holds the statements as written, credentials included, so the directory is `0700` and the
//! file `0600`. Statements that change the catalog run one at a time and are recorded in the
//! order they ran. A replaced object keeps its place in the file, before what was made from
//! it.
//!
//! [`EngineBuilder::state_dir`]: super::EngineBuilder::state_dir
//! [`Engine::restore`]: super::Engine::restore
//! [`Engine::shutdown`]: super::Engine::shutdown

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use weir_sql::{ShowKind, Statement};

use super::streaming_query::StreamingQuery;
use crate::error::{Result, WeirError};
use crate::runtime::{QueryListener, QueryState, QueryTerminated};

/// The catalog file's name inside the state directory.
const CATALOG_FILE: &str = "catalog.json";
/// The format written; a newer one is refused.
const FORMAT: u32 = 1;

/// What a kept statement made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Made {
    Source,
    Table,
    View,
    /// A sink, with its query when the statement had one.
    Sink,
    /// A query started by `INSERT INTO <sink> SELECT`.
    Insert,
}

/// One kept statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Entry {
    pub made: Made,
    /// The object's (or query's) name.
    pub name: String,
    /// The statement as written.
    pub sql: String,
    /// Whether the statement started a query.
    #[serde(default)]
    pub starts_query: bool,
    /// Whether that query ended or was stopped (it is not restarted).
    #[serde(default)]
    pub ended: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct CatalogFile {
    format: u32,
    statements: Vec<Entry>,
}

/// The kept statements of one state directory.
#[derive(Debug)]
pub(super) struct PersistedCatalog {
    path: PathBuf,
    entries: std::sync::Mutex<Vec<Entry>>,
    /// Set by [`Engine::shutdown`](super::Engine::shutdown): queries ending from then on
    /// stay unended, to be restarted.
    shutting_down: AtomicBool,
    /// Held while a statement that changes the catalog runs and is recorded, so the file
    /// keeps the order in which they ran.
    pub turn: tokio::sync::Mutex<()>,
}

impl PersistedCatalog {
    /// Opens (creating it if needed) the catalog of state directory `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        // The statements hold secrets (connector credentials, webhook headers): only the
        // server's user may read them.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                WeirError::Plan(format!(
                    "cannot create the state directory {}: {e}",
                    dir.display()
                ))
            })?;
        let path = dir.join(CATALOG_FILE);
        let entries = match fs::read(&path) {
            Ok(bytes) => read_catalog(&path, &bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(WeirError::Checkpoint(format!(
                    "cannot read the catalog {}: {e}",
                    path.display()
                )));
            }
        };
        Ok(Self {
            path,
            entries: std::sync::Mutex::new(entries),
            shutting_down: AtomicBool::new(false),
            turn: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The kept statements, in the order they ran.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().clone()
    }

    /// Keeps what a statement that succeeded changed (`started`: the query it started, if
    /// any), and writes the file if anything did.
    pub fn record(
        &self,
        statement: &Statement,
        sql: &str,
        started: Option<&StreamingQuery>,
    ) -> Result<()> {
        let mut entries = self.lock();
        let before = entries.clone();
        let shutting_down = self.shutting_down.load(Ordering::SeqCst);
        // A query that already ended (a one-batch trigger, a failure at once) ended before
        // its entry existed for the listener to mark.
        let ended =
            started.is_some_and(|query| !shutting_down && query.state() != QueryState::Running);
        let mut keep = |made: Made, name: &str, starts_query: bool, replaces: bool| {
            if !replaces && entries.iter().any(|e| e.name == name && e.made == made) {
                // `IF NOT EXISTS` of something kept already.
                return;
            }
            let entry = Entry {
                made,
                name: name.to_string(),
                sql: sql.to_string(),
                starts_query,
                ended: starts_query && ended,
            };
            // A replaced object keeps its place, before what was made from it.
            match entries
                .iter()
                .position(|e| e.name == name && e.made != Made::Insert)
            {
                Some(at) => {
                    entries[at] = entry;
                    if made == Made::Sink {
                        entries.retain(|e| !(e.name == name && e.made == Made::Insert));
                    }
                }
                None => entries.push(entry),
            }
        };
        match statement {
            Statement::CreateSource {
                source,
                if_not_exists,
                ..
            } => keep(Made::Source, &source.name, false, !if_not_exists),
            Statement::CreateTable {
                table,
                if_not_exists,
                ..
            } => keep(Made::Table, &table.name, false, !if_not_exists),
            Statement::CreateView { view, .. } => keep(Made::View, &view.name, false, true),
            Statement::CreateSink { sink, query } => {
                keep(Made::Sink, &sink.name, query.is_some(), true)
            }
            Statement::Insert { .. } => {
                if let Some(query) = started {
                    // The sink's own entry stays; a new INSERT replaces an ended one.
                    let name = query.name().to_string();
                    entries.retain(|e| !(e.made == Made::Insert && e.name == name));
                    entries.push(Entry {
                        made: Made::Insert,
                        name,
                        sql: sql.to_string(),
                        starts_query: true,
                        ended,
                    });
                }
            }
            Statement::Drop { kind, name, .. } => {
                let made = match kind {
                    ShowKind::Sources => Made::Source,
                    ShowKind::Tables => Made::Table,
                    ShowKind::Views => Made::View,
                    ShowKind::Sinks | ShowKind::Queries => Made::Sink,
                };
                entries.retain(|e| !(e.name == *name && (e.made == made || made == Made::Sink)));
            }
            _ => {}
        }
        if *entries != before {
            self.write(&entries)?;
        }
        Ok(())
    }

    /// Marks query `name` ended, unless the engine is shutting down.
    fn query_ended(&self, name: &str) -> Result<()> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut entries = self.lock();
        let mut changed = false;
        for entry in entries
            .iter_mut()
            .filter(|e| e.name == name && e.starts_query && !e.ended)
        {
            entry.ended = true;
            changed = true;
        }
        if changed {
            self.write(&entries)?;
        }
        Ok(())
    }

    /// From now on, queries that end are restarted by the next restore.
    pub fn shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Writes `entries` atomically: a temporary file, synced, renamed over the catalog.
    fn write(&self, entries: &[Entry]) -> Result<()> {
        let file = CatalogFile {
            format: FORMAT,
            statements: entries.to_vec(),
        };
        let text = serde_json::to_vec_pretty(&file)
            .map_err(|e| WeirError::Internal(format!("encoding the catalog: {e}")))?;
        let temporary = self.path.with_extension("json.tmp");
        let failed = |e: std::io::Error| {
            WeirError::Checkpoint(format!(
                "cannot write the catalog {}: {e}; the statement ran but will not survive a \
                 restart",
                self.path.display()
            ))
        };
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(failed)?;
        out.write_all(&text).map_err(failed)?;
        out.sync_all().map_err(failed)?;
        fs::rename(&temporary, &self.path).map_err(failed)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(failed)?;
        }
        Ok(())
    }
}

fn read_catalog(path: &Path, bytes: &[u8]) -> Result<Vec<Entry>> {
    let file: CatalogFile = serde_json::from_slice(bytes).map_err(|e| {
        WeirError::Checkpoint(format!(
            "the catalog {} is damaged ({e}); Weir writes it whole or not at all, so something \
             else changed it: restore it from a backup, or move it aside to start with an empty \
             catalog (the queries' checkpoints are kept apart and are used again when their \
             sinks are re-created)",
            path.display()
        ))
    })?;
    if file.format > FORMAT {
        return Err(WeirError::Checkpoint(format!(
            "the catalog {} has format {}, newer than this Weir reads ({FORMAT}); run a newer \
             Weir",
            path.display(),
            file.format
        )));
    }
    Ok(file.statements)
}

/// Marks queries ended in the catalog as they end (a listener of the engine's queries).
#[derive(Debug)]
pub(super) struct EndedQueries(pub Arc<PersistedCatalog>);

impl QueryListener for EndedQueries {
    fn on_query_terminated(&self, event: &QueryTerminated) {
        if let Err(e) = self.0.query_ended(&event.name) {
            tracing::error!(query = %event.name, "{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each statement of `script` as having succeeded with `Done`.
    fn run(catalog: &PersistedCatalog, script: &str) {
        for statement in weir_sql::parse_script(script).expect("SQL") {
            catalog
                .record(&statement.statement, &statement.text, None)
                .expect("recorded");
        }
    }

    fn kept(catalog: &PersistedCatalog) -> Vec<(String, String)> {
        catalog
            .entries()
            .into_iter()
            .map(|e| (e.name, e.sql))
            .collect()
    }

    #[test]
    fn statements_are_kept_replaced_in_place_and_dropped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let catalog = PersistedCatalog::open(dir.path()).expect("open");
        run(
            &catalog,
            "CREATE SOURCE a (x INT) WITH (connector = 'memory');\n\
             CREATE VIEW v AS SELECT x FROM a;\n\
             CREATE SINK s WITH (connector = 'memory');\n\
             CREATE SOURCE IF NOT EXISTS a (y INT) WITH (connector = 'memory');\n\
             CREATE OR REPLACE SOURCE a (z INT) WITH (connector = 'memory');\n\
             SHOW SOURCES;\n\
             DROP SINK s",
        );
        // The replaced source keeps its place before the view made from it; IF NOT EXISTS of
        // a kept source and SHOW change nothing; DROP removes.
        assert_eq!(
            kept(&catalog),
            [
                (
                    "a".to_string(),
                    "CREATE OR REPLACE SOURCE a (z INT) WITH (connector = 'memory')".to_string()
                ),
                (
                    "v".to_string(),
                    "CREATE VIEW v AS SELECT x FROM a".to_string()
                ),
            ]
        );
        // What a new process reads back, and only the server's user can read it.
        let reopened = PersistedCatalog::open(dir.path()).expect("reopen");
        assert_eq!(kept(&reopened), kept(&catalog));
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join(CATALOG_FILE)), 0o600);
    }

    #[test]
    fn a_query_that_ends_is_marked_unless_the_engine_shuts_down() {
        let dir = tempfile::tempdir().expect("temp dir");
        let catalog = PersistedCatalog::open(dir.path()).expect("open");
        let entry = |name: &str| Entry {
            made: Made::Sink,
            name: name.to_string(),
            sql: format!("CREATE SINK {name} WITH (connector = 'memory') AS SELECT 1"),
            starts_query: true,
            ended: false,
        };
        *catalog.lock() = vec![entry("stopped"), entry("running")];
        let ended = |name: &str| QueryTerminated {
            name: name.to_string(),
            error: None,
        };
        let listener = EndedQueries(Arc::new(catalog));
        listener.on_query_terminated(&ended("stopped"));
        listener.0.shutting_down();
        listener.on_query_terminated(&ended("running"));
        let flags: Vec<(String, bool)> = PersistedCatalog::open(dir.path())
            .expect("reopen")
            .entries()
            .into_iter()
            .map(|e| (e.name, e.ended))
            .collect();
        assert_eq!(
            flags,
            [
                ("stopped".to_string(), true),
                ("running".to_string(), false)
            ]
        );
    }

    #[test]
    fn a_damaged_or_newer_catalog_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(
            dir.path().join(CATALOG_FILE),
            "{\"format\": 9, \"statements\": []}",
        )
        .expect("write");
        let error = PersistedCatalog::open(dir.path()).expect_err("newer");
        assert!(
            error
                .to_string()
                .contains("has format 9, newer than this Weir reads (1)"),
            "{error}"
        );
        fs::write(dir.path().join(CATALOG_FILE), "[").expect("write");
        let error = PersistedCatalog::open(dir.path()).expect_err("damaged");
        assert!(error.to_string().contains("is damaged"), "{error}");
    }
}
