//! `weir run`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::util::pretty::pretty_format_batches;
use futures::future::select_all;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use super::RunArgs;
use crate::api::{Engine, Outcome, StreamingQuery};
use crate::error::{Result, WeirError};

/// Runs a script; the exit code is 0 when every query ended (or was stopped) without error.
/// With `json_logs`, what `weir run` says on standard error goes out as log events too, so
/// every line there is one JSON object.
pub(super) async fn run(args: RunArgs, json_logs: bool) -> ExitCode {
    let say = Say { json: json_logs };
    match run_script(args, say).await {
        Ok(Ended::Cleanly) => ExitCode::SUCCESS,
        // The engine has logged the query's error (once, as `query failed`).
        Ok(Ended::QueryFailed) => ExitCode::FAILURE,
        Err(e) if json_logs => {
            tracing::error!(error = %e, "weir run failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where `weir run`'s own messages go: plain lines, or log events.
#[derive(Debug, Clone, Copy)]
struct Say {
    json: bool,
}

impl Say {
    fn note(self, message: &str) {
        if self.json {
            tracing::info!("{message}");
        } else {
            eprintln!("{message}");
        }
    }
}

/// How a script's run ended, when it got as far as running its queries.
enum Ended {
    Cleanly,
    QueryFailed,
}

async fn run_script(args: RunArgs, say: Say) -> Result<Ended> {
    let sql = match (&args.execute, &args.file) {
        (Some(sql), _) => sql.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| WeirError::Plan(format!("cannot read {}: {e}", path.display())))?,
        (None, None) => {
            return Err(WeirError::Plan(
                "give a script file or -e '<sql>'".to_string(),
            ));
        }
    };
    let mut builder = Engine::builder();
    if let Some(root) = args.checkpoint_root {
        builder = builder.checkpoint_root(root);
    }
    if let Some(bytes) = args.memory_limit {
        builder = builder.memory_limit(bytes);
    }
    let engine = builder.build()?;
    // Signals are watched from the start, by a task of their own, since planning a
    // statement keeps this one busy. While the script's statements run, a signal stops the
    // queries started so far (after their batch in flight) and ends the process at once,
    // without running the rest; once they all ran, the loop below stops gracefully.
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| WeirError::Internal(format!("SIGINT handler: {e}")))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| WeirError::Internal(format!("SIGTERM handler: {e}")))?;
    let statements_done = Arc::new(AtomicBool::new(false));
    let (signal_tx, mut signals) = mpsc::unbounded_channel::<&'static str>();
    {
        let (engine, statements_done) = (engine.clone(), Arc::clone(&statements_done));
        tokio::spawn(async move {
            loop {
                let (name, code) = tokio::select! {
                    _ = interrupt.recv() => ("SIGINT", 130),
                    _ = terminate.recv() => ("SIGTERM", 143),
                };
                if statements_done.load(Ordering::SeqCst) {
                    if signal_tx.send(name).is_err() {
                        return;
                    }
                    continue;
                }
                say.note(&format!(
                    "{name} received while the script's statements ran: stopping the queries \
                     started so far; the rest of the script is not run"
                ));
                let _ = engine.stop_all().await;
                std::process::exit(code);
            }
        });
    }

    let mut queries: Vec<StreamingQuery> = Vec::new();
    for statement in weir_sql::parse_sql(&sql)? {
        let outcome = match engine.execute_statement(statement).await {
            Ok(outcome) => outcome,
            Err(e) => {
                engine.stop_all().await.ok();
                return Err(e);
            }
        };
        match outcome {
            Outcome::Done(message) => say.note(&message),
            Outcome::Rows(rows) => match pretty_format_batches(&rows) {
                Ok(table) => println!("{table}"),
                Err(e) => return Err(WeirError::Internal(format!("formatting rows: {e}"))),
            },
            Outcome::Started(query) => {
                say.note(&format!("started query {}", query.name()));
                queries.push(query);
            }
        }
    }

    statements_done.store(true, Ordering::SeqCst);
    while !queries.is_empty() {
        let waiting: Vec<StreamingQuery> = queries.clone();
        let ended = select_all(waiting.iter().map(|q| Box::pin(q.await_termination())));
        tokio::select! {
            (result, index, _) = ended => {
                let query = queries.remove(index);
                if result.is_err() {
                    engine.stop_all().await.ok();
                    return Ok(Ended::QueryFailed);
                }
                say.note(&format!("query {} ended", query.name()));
            }
            Some(name) = signals.recv() => return stop_gracefully(&engine, name, say).await,
        }
    }
    Ok(Ended::Cleanly)
}

async fn stop_gracefully(engine: &Engine, signal: &str, say: Say) -> Result<Ended> {
    say.note(&format!(
        "{signal} received: stopping after the batch in flight"
    ));
    engine.stop_all().await.map(|()| Ended::Cleanly)
}
