//! `execd serve`: bind, print the URL, serve until SIGINT/SIGTERM, then
//! terminate every process and exit. (This runs in the server process,
//! behind the supervisor of `supervisor.rs`.)

use std::io::Write;
use std::time::Duration;

use clap::Args;
use execd_server::ServerConfig;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

pub const DEFAULT_LISTEN: &str = "ws://127.0.0.1:7878";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// `ws://IP:PORT` (port 0 picks a free one) or `stdio`.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Output retained per process for `process/read`, in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    retain_bytes: usize,
    /// Milliseconds between SIGTERM and SIGKILL when terminating a process,
    /// and for every process left behind when the server exits or dies.
    #[arg(long, default_value_t = 2000)]
    terminate_grace_ms: u64,
}

impl ServeArgs {
    /// Time between SIGTERM and SIGKILL when terminating a process.
    pub fn terminate_grace(&self) -> Duration {
        Duration::from_millis(self.terminate_grace_ms)
    }
}

/// Resolves on the first SIGINT or SIGTERM.
fn shutdown_on_signal() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let fire = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
        fire.cancel();
    });
    Ok(token)
}

async fn resolve(listen: &str) -> Result<std::net::SocketAddr, String> {
    let Some(authority) = listen.strip_prefix("ws://") else {
        return Err(format!(
            "--listen must be ws://HOST:PORT or stdio, got {listen:?}"
        ));
    };
    let authority = authority.trim_end_matches('/');
    tokio::net::lookup_host(authority)
        .await
        .map_err(|err| format!("cannot resolve {listen:?}: {err}"))?
        .next()
        .ok_or_else(|| format!("{listen:?} resolves to no address"))
}

pub async fn run(args: ServeArgs) -> Result<(), String> {
    let mut config = ServerConfig::default();
    config.table.retained_bytes_per_process = args.retain_bytes;
    config.table.terminate_grace = args.terminate_grace();
    let shutdown = shutdown_on_signal().map_err(|err| format!("cannot watch signals: {err}"))?;

    if args.listen == "stdio" {
        execd_server::serve_stdio(config, shutdown).await;
        return Ok(());
    }
    let addr = resolve(&args.listen).await?;
    let server = execd_server::bind(addr, config)
        .await
        .map_err(|err| format!("cannot listen on {addr}: {err}"))?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", server.url())
        .and_then(|()| stdout.flush())
        .map_err(|err| format!("cannot print the URL: {err}"))?;
    shutdown.cancelled().await;
    server.shutdown().await;
    Ok(())
}
