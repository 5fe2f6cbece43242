//! `execd serve`: decide who may connect (the token, browser checks, TLS),
//! bind, print the URL, serve until SIGINT/SIGTERM, then terminate every
//! process and exit. (This runs in the server process, behind the
//! supervisor of `supervisor.rs`.)
//!
//! Over WebSocket a token is required by default: `--token-file`, else
//! `EXECD_TOKEN`, else (loopback listeners only) the per-user default token
//! file, created on first use. `--no-auth` is accepted on loopback only, and
//! a non-loopback listener without a token is refused. `--listen stdio`
//! needs no token: whoever started the process owns its pipes.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use execd_server::{AccessConfig, ServerConfig};
use execd_transport::token::{self, Token, TOKEN_VARIABLE};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub const DEFAULT_LISTEN: &str = "ws://127.0.0.1:7878";

/// How log lines (and audit events) are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line; turns the audit events (target execd::audit) on.
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// `ws://IP:PORT` (port 0 picks a free one), `wss://IP:PORT` (with
    /// --tls-cert/--tls-key), or `stdio`.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Output retained per process for `process/read`, in bytes.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    retain_bytes: usize,
    /// Milliseconds between SIGTERM and SIGKILL when terminating a process,
    /// and for every process left behind when the server exits or dies.
    #[arg(long, default_value_t = 2000)]
    terminate_grace_ms: u64,
    /// Require the token in this file (its content, trimmed) from every
    /// WebSocket client. Without it: $EXECD_TOKEN, else the default token
    /// file ($XDG_STATE_HOME/execd/token or ~/.local/state/execd/token,
    /// created with a random token if missing; loopback listeners only).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
    /// Accept WebSocket clients without a token (loopback listeners only).
    #[arg(long, conflicts_with = "token_file")]
    no_auth: bool,
    /// Let web pages from this origin connect (e.g. `https://app.example`;
    /// repeatable). Handshakes carrying any other `Origin` are refused (403).
    #[arg(long, value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// Serve wss:// with this PEM certificate chain (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Log format on stderr: `human`, or `json` (JSON lines, with the audit
    /// events: connections, process starts, exec decisions, file changes).
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

impl ServeArgs {
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }
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

/// The address of `ws://HOST:PORT` or `wss://HOST:PORT`, and whether it said `wss`.
async fn resolve(listen: &str) -> Result<(SocketAddr, bool), String> {
    let (authority, wss) = if let Some(rest) = listen.strip_prefix("ws://") {
        (rest, false)
    } else if let Some(rest) = listen.strip_prefix("wss://") {
        (rest, true)
    } else {
        return Err(format!(
            "--listen must be ws://HOST:PORT, wss://HOST:PORT or stdio, got {listen:?}"
        ));
    };
    let authority = authority.trim_end_matches('/');
    let addr = tokio::net::lookup_host(authority)
        .await
        .map_err(|err| format!("cannot resolve {listen:?}: {err}"))?
        .next()
        .ok_or_else(|| format!("{listen:?} resolves to no address"))?;
    Ok((addr, wss))
}

/// The token WebSocket clients must present, or `None` for `--no-auth`.
fn server_token(args: &ServeArgs, addr: SocketAddr) -> Result<Option<Token>, String> {
    let loopback = addr.ip().is_loopback();
    if args.no_auth {
        if !loopback {
            return Err(format!(
                "--no-auth is refused on {addr}, which is not a loopback address: anyone who can reach it could run commands as this user"
            ));
        }
        warn!(%addr, "--no-auth: any local user or program can connect and run commands as this user");
        return Ok(None);
    }
    if let Some(path) = &args.token_file {
        let token = token::read_file(path).map_err(|err| err.to_string())?;
        if std::fs::metadata(path).is_ok_and(|m| m.mode() & 0o077 != 0) {
            warn!(path = %path.display(), "the token file is open to other users; chmod 600 it");
        }
        return Ok(Some(token));
    }
    if let Some(token) = token::from_env().map_err(|err| err.to_string())? {
        return Ok(Some(token));
    }
    if !loopback {
        return Err(format!(
            "refusing to listen on {addr}, which is not a loopback address, without a token: pass --token-file PATH or set {TOKEN_VARIABLE}"
        ));
    }
    let path = token::default_path().map_err(|err| err.to_string())?;
    let (token, created) = token::load_or_create_default(&path).map_err(|err| err.to_string())?;
    if created {
        info!(path = %path.display(), "created the default token file (mode 0600)");
    } else {
        info!(path = %path.display(), "using the default token file");
    }
    Ok(Some(token))
}

/// Flags that have no meaning for `--listen stdio`.
fn refuse_websocket_flags_on_stdio(args: &ServeArgs) -> Result<(), String> {
    let given = [
        ("--token-file", args.token_file.is_some()),
        ("--no-auth", args.no_auth),
        ("--allow-origin", !args.allow_origin.is_empty()),
        ("--tls-cert", args.tls_cert.is_some()),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((flag, _)) => Err(format!(
            "{flag} applies to WebSocket listeners, not to --listen stdio (whoever starts the process owns its pipes)"
        )),
        None => Ok(()),
    }
}

pub async fn run(args: ServeArgs) -> Result<(), String> {
    let mut config = ServerConfig::default();
    config.table.retained_bytes_per_process = args.retain_bytes;
    config.table.terminate_grace = args.terminate_grace();
    let shutdown = shutdown_on_signal().map_err(|err| format!("cannot watch signals: {err}"))?;

    if args.listen == "stdio" {
        refuse_websocket_flags_on_stdio(&args)?;
        execd_server::serve_stdio(config, shutdown).await;
        return Ok(());
    }
    let (addr, wss) = resolve(&args.listen).await?;
    config.tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            Some(execd_transport::tls::server_config(cert, key).map_err(|err| err.to_string())?)
        }
        _ if wss => {
            return Err(format!(
                "--listen {} needs --tls-cert and --tls-key",
                args.listen
            ))
        }
        _ => None,
    };
    config.access = AccessConfig {
        token: server_token(&args, addr)?,
        allowed_origins: args.allow_origin.clone(),
        ..AccessConfig::default()
    };
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
