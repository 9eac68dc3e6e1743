//! A damaged checkpoint is refused at start, naming the file, before the sink's output is
//! touched; a damage Weir can recover from (a lost last commit) is re-run exactly once.
//!
//! Each case runs a files-to-parquet query over two runs (so the files source's log has two
//! entries and the offsets and commits logs five batches), damages one file, and starts the
//! query again.

use std::fs;
use std::path::{Path, PathBuf};

use weir::Engine;

use crate::crash::{file_names, rows_of, sink_batches};

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    /// Batches 0–2 over three files, then batches 3–4 over two more.
    async fn new() -> Self {
        let case = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir(case.path("in")).unwrap();
        for file in 0..3 {
            case.write_input(file);
        }
        case.run().await.unwrap();
        for file in 3..5 {
            case.write_input(file);
        }
        case.run().await.unwrap();
        case
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_input(&self, file: u64) {
        let rows: String = (0..3)
            .map(|i| format!("{{\"id\": {}}}\n", file * 10 + i))
            .collect();
        fs::write(self.path("in").join(format!("{file}.json")), rows).unwrap();
    }

    /// Runs the query to the end of its input, in a new engine.
    async fn run(&self) -> weir::Result<()> {
        let engine = Engine::builder().build()?;
        engine
            .execute(&format!(
                "CREATE SOURCE events (id BIGINT) WITH (connector = 'files', path = '{}', \
                 format = 'json', max_files_per_trigger = '1')",
                self.path("in").display()
            ))
            .await?;
        let query = engine
            .start(&format!(
                "CREATE SINK out WITH (connector = 'parquet', path = '{}', checkpoint = '{}', \
                 trigger = 'available-now') AS SELECT id FROM events",
                self.path("out").display(),
                self.path("ckpt").display()
            ))
            .await?;
        query.await_termination().await
    }

    fn ckpt(&self, file: &str) -> PathBuf {
        self.path("ckpt").join(file)
    }

    fn output(&self) -> Vec<String> {
        file_names(&self.path("out"))
    }

    fn rows(&self) -> Vec<String> {
        let mut rows = rows_of(&sink_batches(&self.path("out")));
        rows.sort();
        rows
    }

    /// Restarts after `damage`: the error must name `file` and say `what`, and the output
    /// must be as it was.
    async fn refused(damage: impl FnOnce(&Case), file: &str, what: &str) {
        let case = Case::new().await;
        let before = case.output();
        damage(&case);
        let error = case.run().await.unwrap_err().to_string();
        assert!(
            error.contains(&case.ckpt(file).display().to_string())
                && error.contains(what)
                && !error.contains("internal error"),
            "after damaging {file}: {error}"
        );
        assert_eq!(
            case.output(),
            before,
            "output touched after damaging {file}"
        );
    }
}

fn copy(from: &Path, to: &Path) {
    fs::copy(from, to).unwrap();
}

fn edit(path: &Path, change: impl FnOnce(String) -> String) {
    let text = fs::read_to_string(path).unwrap();
    fs::write(path, change(text)).unwrap();
}

#[tokio::test]
async fn a_stale_copy_of_a_log_entry_is_refused() {
    Case::refused(
        |c| copy(&c.ckpt("offsets/3.json"), &c.ckpt("offsets/4.json")),
        "offsets/4.json",
        "records batch 3 (it is a stale or foreign copy)",
    )
    .await;
    Case::refused(
        |c| copy(&c.ckpt("commits/3.json"), &c.ckpt("commits/4.json")),
        "commits/4.json",
        "records batch 3 (it is a stale or foreign copy)",
    )
    .await;
    Case::refused(
        |c| {
            copy(
                &c.ckpt("sources/0/files-000000000000.json"),
                &c.ckpt("sources/0/files-000000000003.json"),
            )
        },
        "sources/0/files-000000000003.json",
        "is not the entry its name says",
    )
    .await;
}

#[tokio::test]
async fn an_offsets_entry_that_does_not_continue_the_one_before_is_refused() {
    // Batch 4 claims to start at file 2, where batch 3 did.
    Case::refused(
        |c| {
            edit(&c.ckpt("offsets/4.json"), |t| {
                t.replace("\"start\": 4", "\"start\": 3")
            })
        },
        "offsets/4.json",
        "does not start where",
    )
    .await;
}

#[tokio::test]
async fn garbage_truncated_empty_and_missing_files_are_refused_by_name() {
    Case::refused(
        |c| fs::write(c.ckpt("offsets/4.json"), "{\"batch_id\": 4, \"sou").unwrap(),
        "offsets/4.json",
        "is damaged",
    )
    .await;
    Case::refused(
        |c| fs::write(c.ckpt("commits/4.json"), "").unwrap(),
        "commits/4.json",
        "is damaged",
    )
    .await;
    Case::refused(
        |c| fs::write(c.ckpt("commits/2.json"), "garbage\u{0}\u{1}").unwrap(),
        "commits/2.json",
        "is damaged",
    )
    .await;
    Case::refused(
        |c| fs::remove_file(c.ckpt("commits/2.json")).unwrap(),
        "commits/3.json",
        "the entries between",
    )
    .await;
    Case::refused(
        |c| fs::remove_dir_all(c.ckpt("commits")).unwrap(),
        "offsets/1.json",
        "holds no commit",
    )
    .await;
    Case::refused(
        |c| copy(&c.ckpt("offsets/4.json"), &c.ckpt("offsets/1000.json")),
        "offsets/1000.json",
        "the entries between",
    )
    .await;
    Case::refused(
        |c| fs::remove_file(c.ckpt("metadata.json")).unwrap(),
        "metadata.json",
        "is missing, but the checkpoint holds batches up to 4",
    )
    .await;
    Case::refused(
        |c| fs::remove_file(c.ckpt("sources/0/files-000000000000.json")).unwrap(),
        "sources/0/files-000000000003.json",
        "starts at file 3, but the entries before it are missing",
    )
    .await;
}

#[tokio::test]
async fn a_lost_last_commit_re_runs_its_batch_exactly_once() {
    let case = Case::new().await;
    let all = case.rows();
    assert_eq!(all.len(), 15);
    fs::remove_file(case.ckpt("commits/4.json")).unwrap();
    case.run().await.unwrap();
    assert_eq!(case.rows(), all);
    assert!(case.ckpt("commits/4.json").exists());
}
