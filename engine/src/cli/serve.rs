//! `weir serve`: runs the HTTP API (`crate::server`) until SIGTERM or SIGINT, then stops
//! every query gracefully and exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use crate::error::{Result, WeirError};
use crate::server::ServerMetrics;
use crate::{Engine, server};

/// Arguments of `weir serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = server::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Checkpoint root for sinks without a `checkpoint` option: `<root>/<sink name>`
    /// (default with --state-dir: `<state dir>/checkpoints`).
    #[arg(long)]
    checkpoint_root: Option<PathBuf>,
    /// Keep the catalog and the queries here, and bring them back when the server restarts:
    /// every query that was running restarts from its checkpoint.
    #[arg(long)]
    state_dir: Option<PathBuf>,
}

/// Serves until a signal; the exit code.
pub async fn serve(args: ServeArgs) -> ExitCode {
    match serve_until_signal(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_until_signal(args: ServeArgs) -> Result<()> {
    if !args.listen.ip().is_loopback() {
        // Anyone who can reach the server can read and write what it can: until it checks a
        // token, it stays on this machine.
        return Err(WeirError::Plan(format!(
            "--listen {}: weir serve binds only loopback addresses (127.0.0.1, ::1) for now, \
             since it has no authentication yet; put a proxy that authenticates in front of it \
             to reach it from elsewhere",
            args.listen
        )));
    }
    let metrics = Arc::new(ServerMetrics::new());
    let mut builder = Engine::builder().listener(metrics.clone());
    if let Some(root) = args.checkpoint_root {
        builder = builder.checkpoint_root(root);
    }
    if let Some(dir) = args.state_dir {
        builder = builder.state_dir(dir);
    }
    let engine = builder.build()?;
    let restored = engine.restore().await?;
    if !restored.created.is_empty() || !restored.restarted.is_empty() {
        tracing::info!(
            created = ?restored.created,
            restarted = ?restored.restarted,
            "weir serve: restored the catalog and queries of the state directory"
        );
    }
    for name in &restored.restarted {
        metrics.restored(name);
    }
    for (name, error) in &restored.failed {
        tracing::warn!(%name, "weir serve: could not restore: {error}");
    }
    let listener = server::bind(args.listen).await?;
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| WeirError::Internal(format!("SIGINT handler: {e}")))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| WeirError::Internal(format!("SIGTERM handler: {e}")))?;
    let shutdown = async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!("weir serve: {name} received, shutting down");
    };
    server::serve(engine, metrics, listener, shutdown).await
}
