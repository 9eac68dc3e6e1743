//! `weir serve`: runs the HTTP API (`crate::server`) until SIGTERM or SIGINT, then stops
//! every query gracefully and exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use crate::error::{Result, WeirError};
use crate::{Engine, server};

/// Arguments of `weir serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = server::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Checkpoint root for sinks without a `checkpoint` option: `<root>/<sink name>`.
    #[arg(long)]
    checkpoint_root: Option<PathBuf>,
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
    let mut builder = Engine::builder();
    if let Some(root) = args.checkpoint_root {
        builder = builder.checkpoint_root(root);
    }
    let engine = builder.build()?;
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
    server::serve(engine, listener, shutdown).await
}
