//! Golden SQL tests: every `tests/slt/**/*.slt` file runs three ways and must give the same
//! results each way (STYLE.md, "Tests"):
//! 1. as written;
//! 2. restarting every continuous query from its checkpoint after every statement;
//! 3. with one row per micro-batch (memory sources get `max_records_per_trigger = '1'`).
//!
//! Test-only statements: `FLUSH` runs every query until its sources are drained
//! (`StreamingQuery::process_all_available`), `RESTART` stops every query and starts it again
//! from its checkpoint. Set `WEIR_SLT_COMPLETE=1` to rewrite the expected results from the
//! first mode.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use sqllogictest::{DBOutput, DefaultColumnType};
use weir::{Engine, Outcome};
use weir_sql::Statement;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    AsWritten,
    RestartAfterEachStatement,
    OneRowPerBatch,
}

/// One slt "connection": an engine with a scratch checkpoint root.
struct WeirDb {
    engine: Engine,
    mode: Mode,
    /// `(sink, query text)` of every started query, to restart them.
    queries: Vec<(String, String)>,
    _checkpoints: tempfile::TempDir,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SltError(String);

impl From<weir::WeirError> for SltError {
    fn from(e: weir::WeirError) -> Self {
        SltError(e.to_string())
    }
}

impl WeirDb {
    fn new(mode: Mode) -> Self {
        let checkpoints = tempfile::tempdir().expect("temp dir");
        let engine = Engine::builder()
            .checkpoint_root(checkpoints.path())
            .build()
            .expect("engine");
        Self {
            engine,
            mode,
            queries: Vec::new(),
            _checkpoints: checkpoints,
        }
    }

    async fn flush(&self) -> Result<(), SltError> {
        for query in self.engine.queries().await {
            if query.is_active() {
                query.process_all_available().await?;
            }
        }
        Ok(())
    }

    async fn restart(&mut self) -> Result<(), SltError> {
        for query in self.engine.queries().await {
            query.stop().await?;
        }
        for (sink, query) in &self.queries {
            self.engine
                .execute(&format!("INSERT INTO {sink} {query}"))
                .await?;
        }
        Ok(())
    }

    async fn run_statement(
        &mut self,
        mut statement: Statement,
    ) -> Result<DBOutput<DefaultColumnType>, SltError> {
        if self.mode == Mode::OneRowPerBatch
            && let Statement::CreateSource { source, .. } = &mut statement
            && source.options.get("connector").map(String::as_str) == Some("memory")
        {
            source
                .options
                .entry("max_records_per_trigger".to_string())
                .or_insert_with(|| "1".to_string());
        }
        let started = match &statement {
            Statement::CreateSink {
                sink,
                query: Some(query),
            } => Some((sink.name.clone(), query.to_string())),
            Statement::Insert { target, query } => Some((target.clone(), query.to_string())),
            _ => None,
        };
        let outcome = self.engine.execute_statement(statement).await?;
        if let (Some(started), Outcome::Started(_)) = (started, &outcome) {
            self.queries.retain(|(sink, _)| *sink != started.0);
            self.queries.push(started);
        }
        Ok(match outcome {
            Outcome::Rows(batches) => rows_output(&batches)?,
            Outcome::Done(_) | Outcome::Started(_) => DBOutput::StatementComplete(0),
        })
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for WeirDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let command = sql.trim().trim_end_matches(';').trim().to_ascii_uppercase();
        let output = match command.as_str() {
            "FLUSH" => {
                self.flush().await?;
                DBOutput::StatementComplete(0)
            }
            "RESTART" => {
                self.restart().await?;
                DBOutput::StatementComplete(0)
            }
            _ => {
                let statements = weir_sql::parse_sql(sql).map_err(|e| SltError(e.to_string()))?;
                let mut output = DBOutput::StatementComplete(0);
                for statement in statements {
                    output = self.run_statement(statement).await?;
                }
                output
            }
        };
        if self.mode == Mode::RestartAfterEachStatement && !matches!(output, DBOutput::Rows { .. })
        {
            self.restart().await?;
        }
        Ok(output)
    }

    async fn shutdown(&mut self) {
        let _ = self.engine.stop_all().await;
    }

    fn engine_name(&self) -> &str {
        "weir"
    }
}

fn rows_output(batches: &[RecordBatch]) -> Result<DBOutput<DefaultColumnType>, SltError> {
    let Some(schema) = batches.first().map(RecordBatch::schema) else {
        return Ok(DBOutput::Rows {
            types: Vec::new(),
            rows: Vec::new(),
        });
    };
    let types = schema
        .fields()
        .iter()
        .map(|f| column_type(f.data_type()))
        .collect();
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SltError(e.to_string()))?;
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| {
                        let cell = f.value(row).to_string();
                        if cell.is_empty() {
                            "(empty)".to_string()
                        } else {
                            cell
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(DBOutput::Rows { types, rows })
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating()
        || matches!(
            data_type,
            DataType::Decimal128(..) | DataType::Decimal256(..)
        )
    {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

fn slt_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/slt exists")
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            slt_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "slt") {
            out.push(path);
        }
    }
}

async fn run_file(path: &Path, mode: Mode) -> Result<(), String> {
    let mut runner = sqllogictest::Runner::new(move || async move { Ok(WeirDb::new(mode)) });
    runner
        .run_file_async(path)
        .await
        .map_err(|e| format!("{} [{mode:?}]\n{}", path.display(), e.display(true)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_files_pass_in_all_three_modes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/slt");
    let mut files = Vec::new();
    slt_files(&root, &mut files);
    assert!(!files.is_empty(), "no .slt files under {}", root.display());
    if std::env::var_os("WEIR_SLT_COMPLETE").is_some() {
        for path in &files {
            let mut runner =
                sqllogictest::Runner::new(|| async { Ok(WeirDb::new(Mode::AsWritten)) });
            runner
                .update_test_file(
                    path,
                    " ",
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .unwrap_or_else(|e| panic!("completing {}: {e}", path.display()));
        }
    }
    let failures = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    for path in &files {
        for mode in [
            Mode::AsWritten,
            Mode::RestartAfterEachStatement,
            Mode::OneRowPerBatch,
        ] {
            if let Err(e) = run_file(path, mode).await {
                failures.lock().await.push(e);
            }
        }
    }
    let failures = failures.lock().await;
    assert!(
        failures.is_empty(),
        "{} of {} slt runs failed:\n{}",
        failures.len(),
        files.len() * 3,
        failures.join("\n\n")
    );
}
