//! `weir serve`: runs the HTTP API (`crate::server`) and, when asked, Flight SQL (or Flight
//! SQL alone) until SIGTERM or SIGINT, then stops every query gracefully and exits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use crate::error::{Result, WeirError};
use crate::server::{Access, AlertLimits, HealthAlerts, ServerMetrics, ServerOptions};
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
    /// POST health alerts (a query failed, a batch too long, a watermark too far behind) to
    /// this URL, as the `webhook` sink posts rows.
    #[arg(long, value_name = "URL")]
    alert_webhook: Option<String>,
    /// A batch longer than this fires the `batch_duration` alert.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    alert_batch_duration: Duration,
    /// A watermark further behind wall-clock time than this fires the `watermark_delay` alert.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    alert_watermark_delay: Duration,
    /// Every request but `/healthz` must carry this token (`Authorization: Bearer <token>`);
    /// required to listen on anything but loopback. At least 16 characters.
    #[arg(long, env = "WEIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Speak HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Paths and object-store URLs that submitted SQL may read and write, with what lies
    /// below them (repeat for several); without it, any the process can reach.
    #[arg(long, value_name = "DIR_OR_URL")]
    allow_path: Vec<String>,
    /// Also serve Arrow Flight SQL on this address (ADBC, JDBC and ODBC Flight SQL drivers),
    /// with the same token and TLS as the HTTP API.
    #[arg(long, value_name = "ADDRESS")]
    flight_sql: Option<SocketAddr>,
    /// Serve only Flight SQL (with --flight-sql): no HTTP API, web UI or metrics.
    #[arg(long, requires = "flight_sql", conflicts_with = "listen")]
    no_http: bool,
    /// The largest request body accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = server::DEFAULT_MAX_REQUEST_BYTES)]
    max_request_bytes: usize,
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
    let options = ServerOptions {
        access: Access::new(args.token.clone())?,
        max_request_bytes: args.max_request_bytes,
    };
    let addresses = [
        ("--listen", (!args.no_http).then_some(args.listen)),
        ("--flight-sql", args.flight_sql),
    ];
    for (flag, address) in addresses {
        if let Some(address) = address
            && !address.ip().is_loopback()
            && !options.access.requires_token()
        {
            // Anyone who can reach the server can read and write what it can.
            return Err(WeirError::Plan(format!(
                "{flag} {address}: a server reachable from other machines needs a token \
                 (--token or WEIR_TOKEN, at least 16 characters; make one with `openssl rand \
                 -hex 32`), and should speak TLS (--tls-cert, --tls-key)"
            )));
        }
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::tls_config(cert, key).await?),
        _ => None,
    };
    let metrics = Arc::new(ServerMetrics::new());
    let mut builder = Engine::builder().listener(metrics.clone());
    if let Some(url) = &args.alert_webhook {
        let limits = AlertLimits {
            batch_duration: args.alert_batch_duration,
            watermark_delay: args.alert_watermark_delay,
        };
        builder = builder.listener(HealthAlerts::start(url, limits).await?);
    }
    if let Some(root) = args.checkpoint_root {
        builder = builder.checkpoint_root(root);
    }
    if let Some(dir) = args.state_dir {
        builder = builder.state_dir(dir);
    }
    if !args.allow_path.is_empty() {
        builder = builder.allowed_paths(args.allow_path);
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
    let listener = if args.no_http {
        None
    } else {
        Some(server::bind(args.listen).await?)
    };
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        }
    };
    let mut flight_sql = match args.flight_sql {
        Some(address) => {
            let flight_listener = server::bind(address).await?;
            let tls = match (&args.tls_cert, &args.tls_key) {
                (Some(cert), Some(key)) => Some((read_pem(cert)?, read_pem(key)?)),
                _ => None,
            };
            Some(tokio::spawn(server::serve_flight_sql(
                engine.clone(),
                args.token.clone(),
                flight_listener,
                tls,
                until_stopped(),
            )))
        }
        None => None,
    };
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| WeirError::Internal(format!("SIGINT handler: {e}")))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| WeirError::Internal(format!("SIGTERM handler: {e}")))?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        tracing::info!("weir serve: {name} received, shutting down");
        let _ = stop.send(true);
    });
    let served = match listener {
        Some(listener) => {
            server::serve(engine, metrics, &options, listener, tls, until_stopped()).await
        }
        // Flight SQL alone: until a signal, or until the Flight SQL server fails.
        None => {
            let Some(flight) = flight_sql.as_mut() else {
                return Err(WeirError::Plan("--no-http needs --flight-sql".to_string()));
            };
            let failed = tokio::select! {
                () = until_stopped() => None,
                ended = flight => Some(ended),
            };
            tracing::info!("weir serve: stopping every query");
            let stopped = engine.shutdown().await;
            if let Some(ended) = failed {
                flight_sql = None;
                ended.map_err(|e| WeirError::Internal(format!("the Flight SQL server: {e}")))??;
            }
            stopped
        }
    };
    if let Some(flight_sql) = flight_sql {
        match flight_sql.await {
            Ok(result) => result?,
            Err(e) => return Err(WeirError::Internal(format!("the Flight SQL server: {e}"))),
        }
    }
    served
}

fn read_pem(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| WeirError::Plan(format!("cannot read {}: {e}", path.display())))
}
