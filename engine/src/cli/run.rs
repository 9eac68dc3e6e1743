//! `weir run`.

use std::process::ExitCode;

use arrow::util::pretty::pretty_format_batches;
use futures::future::select_all;
use tokio::signal::unix::{SignalKind, signal};

use super::RunArgs;
use crate::api::{Engine, Outcome, StreamingQuery};
use crate::error::{Result, WeirError};

/// Runs a script; the exit code is 0 when every query ended (or was stopped) without error.
pub(super) async fn run(args: RunArgs) -> ExitCode {
    match run_script(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_script(args: RunArgs) -> Result<()> {
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
    let engine = builder.build()?;
    // Signals are watched from the start, so a stop during the script's DDL is graceful too.
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| WeirError::Internal(format!("SIGINT handler: {e}")))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| WeirError::Internal(format!("SIGTERM handler: {e}")))?;

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
            Outcome::Done(message) => eprintln!("{message}"),
            Outcome::Rows(rows) => match pretty_format_batches(&rows) {
                Ok(table) => println!("{table}"),
                Err(e) => return Err(WeirError::Internal(format!("formatting rows: {e}"))),
            },
            Outcome::Started(query) => {
                eprintln!("started query {}", query.name());
                queries.push(query);
            }
        }
    }

    while !queries.is_empty() {
        let waiting: Vec<StreamingQuery> = queries.clone();
        let ended = select_all(waiting.iter().map(|q| Box::pin(q.await_termination())));
        tokio::select! {
            (result, index, _) = ended => {
                let query = queries.remove(index);
                if let Err(e) = result {
                    engine.stop_all().await.ok();
                    return Err(e);
                }
                eprintln!("query {} ended", query.name());
            }
            _ = interrupt.recv() => return stop_gracefully(&engine, "SIGINT").await,
            _ = terminate.recv() => return stop_gracefully(&engine, "SIGTERM").await,
        }
    }
    Ok(())
}

async fn stop_gracefully(engine: &Engine, signal: &str) -> Result<()> {
    eprintln!("{signal} received: stopping after the batch in flight");
    engine.stop_all().await
}
