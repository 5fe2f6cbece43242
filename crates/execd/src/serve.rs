//! `execd serve`: decide who may connect (the token, browser checks, TLS),
//! bind, print the URL, serve until SIGINT/SIGTERM, then terminate every
//! process and exit. (This runs in the server process, behind the
//! supervisor of `supervisor.rs`.) Every resource limit of the server is a
//! flag here (defaults from `ServerConfig::default()`); at start the soft
//! limit on open files is raised to the hard one.
//!
//! Over WebSocket a token is required by default: `--token-file`, else
//! `EXECD_TOKEN`, else (loopback listeners only) the per-user default token
//! file, created on first use. `--no-auth` is accepted on loopback only, and
//! a non-loopback listener without a token is refused. `--listen stdio`
//! needs no token: whoever started the process owns its pipes. Started by
//! systemd's socket activation, it serves the socket systemd passed
//! (`socket_activation.rs`) instead of binding `--listen`'s address.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use execd_server::{AccessConfig, ServerConfig};
use execd_transport::token::{self, Token, TOKEN_VARIABLE};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::codex_limit_args::CodexLimitArgs;
use crate::proxy_args::ProxyArgs;
use crate::watch_limit_args::WatchLimitArgs;

pub const DEFAULT_LISTEN: &str = "ws://127.0.0.1:7878";

/// The man-page part of `execd serve --help`.
const SERVE_HELP: &str = "\
Every limit refuses what would pass it with an error that names the limit,
its value and its flag; see docs/PROTOCOL.md (Limits).

HTTP on the listener:
  GET /healthz  200 \"ok\" while the server runs (no token needed).
  GET /readyz   200 \"ready\", or 503 while shutting down or with every
                --max-connections place taken (no token needed).
  GET /metrics  Prometheus text (execd_* metrics), behind the token when
                there is one; without one on --metrics-listen.

Output:
  The URL on stdout, once listening. On stderr (tracing; RUST_LOG sets the
  level, --log-format the format): one line at start (address, version,
  auth mode, TLS or not), one at shutdown, and warnings.

Signals:
  SIGINT or SIGTERM stops the server: every connection gets a WebSocket
  close frame (1001, with the reason) and every process it started is
  terminated (SIGTERM to its group, SIGKILL after --terminate-grace-ms).
  A supervisor process stays in front of the server, so nothing it started
  outlives it, even if the server is killed (kill -9, OOM); as a
  container's PID 1 it also reaps orphans and forwards signals.

Environment:
  EXECD_TOKEN          the token clients must present (unless --token-file)
  XDG_STATE_HOME       where the default token file lives (execd/token)
  RUST_LOG             log filter (default: warn, execd::serve=info)
  LISTEN_PID, LISTEN_FDS
                       systemd socket activation: with LISTEN_PID this
                       process and LISTEN_FDS=1, the listening socket on
                       descriptor 3 is served instead of binding --listen's
                       address (whose ws:// or wss:// still applies); see
                       deploy/systemd/execd.socket
  The processes it starts get the environment their client sends (execd run
  sends the account's HOME, USER, LOGNAME, SHELL, PATH, LANG, LC_*).

Exit status:
  0 after a signal-initiated shutdown; 1 if it cannot start (bad flags, the
  address in use, no token for a non-loopback address); the server's own
  status if it died.";

/// How log lines (and audit events) are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line; turns the audit events (target execd::audit) on.
    Json,
}

fn defaults() -> ServerConfig {
    ServerConfig::default()
}

/// A count or size of at least 1.
fn positive() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..)
}

#[derive(Debug, Args)]
#[command(
    after_help = "Every limit refuses what would pass it with an error that names the \
limit, its value and its flag; see docs/PROTOCOL.md (Limits).",
    after_long_help = SERVE_HELP
)]
pub struct ServeArgs {
    /// `ws://IP:PORT` (port 0 picks a free one), `wss://IP:PORT` (with
    /// --tls-cert/--tls-key), or `stdio`.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Output retained per process for `process/read`, in bytes.
    #[arg(long, default_value_t = defaults().table.retained_bytes_per_process as u64)]
    retain_bytes: u64,
    /// Output retained over all processes of all connections, in bytes;
    /// past it, the processes that closed longest ago lose theirs first.
    #[arg(long, default_value_t = defaults().max_retained_bytes as u64)]
    retain_total_bytes: u64,
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
    /// Connections served at once; more are refused with HTTP 503.
    #[arg(long, default_value_t = defaults().max_connections as u64, value_parser = positive())]
    max_connections: u64,
    /// Milliseconds a new connection has to complete its WebSocket handshake.
    #[arg(long, default_value_t = defaults().handshake_timeout.as_millis() as u64, value_parser = positive())]
    handshake_timeout_ms: u64,
    /// Connections in their WebSocket handshake at once; a new one closes
    /// the oldest. Capped at a quarter of the open-file limit.
    #[arg(long, default_value_t = defaults().max_handshakes as u64, value_parser = positive())]
    max_handshakes: u64,
    /// Processes not yet closed, over all connections.
    #[arg(long, default_value_t = defaults().max_processes as u64, value_parser = positive())]
    max_processes: u64,
    /// Processes not yet closed, per connection.
    #[arg(long, default_value_t = defaults().table.max_processes as u64, value_parser = positive())]
    max_processes_per_connection: u64,
    /// Largest frame (message) accepted, in bytes; a larger one closes the
    /// connection with an error. Files move in 4 MiB pieces.
    #[arg(long, default_value_t = defaults().max_frame_bytes as u64, value_parser = positive())]
    max_frame_bytes: u64,
    /// Largest file, or range, one `fs/readFile` returns, in bytes.
    #[arg(long, default_value_t = defaults().max_read_bytes, value_parser = positive())]
    max_read_bytes: u64,
    /// Bytes queued for one process's stdin; a write that would pass it is
    /// refused (nothing written) until the program has read some.
    #[arg(long, default_value_t = defaults().table.max_stdin_queue_bytes as u64, value_parser = positive())]
    max_stdin_queue_bytes: u64,
    /// Requests of one connection waiting for their replies (`process/read`,
    /// `fs/*`, starts with an exec policy); more are refused.
    #[arg(long, default_value_t = defaults().max_requests_in_flight as u64, value_parser = positive())]
    max_requests_in_flight: u64,
    /// `process/start`s of one connection that spawn side by side when a
    /// client sends them in a burst (1: one at a time); the connection
    /// reads its next frame as one finishes.
    #[arg(long, default_value_t = defaults().max_concurrent_spawns as u64, value_parser = positive())]
    max_concurrent_spawns: u64,
    /// Filesystem operations running at once, over all connections.
    #[arg(long, default_value_t = defaults().max_fs_ops as u64, value_parser = positive())]
    max_fs_ops: u64,
    /// Filesystem operations of one connection running at once.
    #[arg(long, default_value_t = defaults().max_fs_ops_per_connection as u64, value_parser = positive())]
    max_fs_ops_per_connection: u64,
    /// Seconds a session whose connection was lost (no close frame) keeps
    /// its processes running, waiting for `initialize {resumeSessionId}`;
    /// 0 ends it at once. A clean close always ends it at once.
    #[arg(long, value_name = "SECONDS", default_value_t = defaults().detach_grace.as_secs())]
    detach_grace: u64,
    /// Sessions detached at once; past it the oldest detached one ends.
    #[arg(long, default_value_t = defaults().max_detached_sessions as u64, value_parser = positive())]
    max_detached_sessions: u64,
    /// `fs/upload` and `fs/download` streams (execd cp) one connection may
    /// have open at once.
    #[arg(long, default_value_t = defaults().max_transfers as u64, value_parser = positive())]
    max_transfers: u64,
    /// Pieces (1 MiB each at most) of one transfer in flight before the
    /// receiver acknowledges them: per upload, what a client can make the
    /// server hold; past it the upload fails.
    #[arg(long, default_value_t = u64::from(defaults().transfer_window), value_parser = positive())]
    transfer_window: u64,
    /// Largest `outputWindow` a process may ask for, in bytes (unacknowledged
    /// output held for it, never evicted).
    #[arg(long, default_value_t = defaults().table.max_output_window, value_parser = positive())]
    max_output_window: u64,
    /// Seconds between WebSocket pings to each client; 0: no pings.
    #[arg(long, value_name = "SECONDS", default_value_t = defaults().keepalive_interval.as_secs())]
    keepalive_interval: u64,
    /// Seconds without any frame (or pong) from a client before its
    /// connection counts as lost (its session detaches); 0: never.
    #[arg(long, value_name = "SECONDS", default_value_t = defaults().keepalive_timeout.as_secs())]
    keepalive_timeout: u64,
    /// Also serve GET /metrics (Prometheus text) and the health endpoints,
    /// without a token, on this IP:PORT (e.g. 0.0.0.0:9090 for a scraper
    /// in the pod network). The WebSocket listener serves /metrics behind
    /// its token either way, and /healthz and /readyz to anyone.
    #[arg(long, value_name = "IP:PORT")]
    metrics_listen: Option<SocketAddr>,
    #[command(flatten)]
    codex: CodexLimitArgs,
    #[command(flatten)]
    watch: WatchLimitArgs,
    #[command(flatten)]
    proxy: ProxyArgs,
}

fn size(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl ServeArgs {
    /// The server's settings, checked against each other and the open-file
    /// limit `nofile` (when known).
    fn config(&self, nofile: Option<u64>) -> Result<ServerConfig, String> {
        let mut config = ServerConfig::default();
        config.table.retained_bytes_per_process = size(self.retain_bytes);
        config.table.terminate_grace = self.terminate_grace();
        config.table.max_processes = size(self.max_processes_per_connection);
        config.table.max_stdin_queue_bytes = size(self.max_stdin_queue_bytes);
        config.max_retained_bytes = size(self.retain_total_bytes);
        config.max_connections = size(self.max_connections);
        config.handshake_timeout = Duration::from_millis(self.handshake_timeout_ms);
        config.max_handshakes = size(self.max_handshakes);
        config.max_processes = size(self.max_processes);
        config.max_frame_bytes = size(self.max_frame_bytes);
        config.max_read_bytes = self.max_read_bytes;
        config.max_requests_in_flight = size(self.max_requests_in_flight);
        config.max_concurrent_spawns = size(self.max_concurrent_spawns);
        config.max_fs_ops = size(self.max_fs_ops);
        config.max_fs_ops_per_connection = size(self.max_fs_ops_per_connection);
        config.detach_grace = Duration::from_secs(self.detach_grace);
        config.max_detached_sessions = size(self.max_detached_sessions);
        config.table.max_output_window = self.max_output_window;
        config.max_transfers = size(self.max_transfers);
        config.transfer_window = u32::try_from(self.transfer_window).unwrap_or(u32::MAX);
        config.keepalive_interval = Duration::from_secs(self.keepalive_interval);
        config.keepalive_timeout = Duration::from_secs(self.keepalive_timeout);
        config.codex = self.codex.limits();
        config.metrics_listen = self.metrics_listen;
        config.watch = self.watch.limits();
        config.table.network = self.proxy.limits();
        // A whole read must fit in a frame of our own size as base64.
        let reply = self.max_read_bytes.div_ceil(3) * 4 + 1024;
        if reply > self.max_frame_bytes {
            return Err(format!(
                "--max-read-bytes {} makes replies of {reply} bytes, more than --max-frame-bytes {}; lower the one or raise the other",
                self.max_read_bytes, self.max_frame_bytes
            ));
        }
        if let Some(nofile) = nofile {
            let cap = size(nofile / 4).max(1);
            if config.max_handshakes > cap {
                tracing::warn!(
                    "--max-handshakes {} lowered to {cap}, a quarter of the open-file limit {nofile}",
                    config.max_handshakes
                );
                config.max_handshakes = cap;
            }
        }
        Ok(config)
    }
}

/// Raise the soft limit on open files to the hard one (processes started
/// later inherit it); returns the limit in force.
fn raise_open_file_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= hard {
        return Some(soft);
    }
    // An unlimited hard limit still stops at the kernel's `nr_open`.
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map_or(hard, |nr_open| nr_open.min(hard));
    match setrlimit(Resource::RLIMIT_NOFILE, ceiling, hard) {
        Ok(()) => Some(ceiling),
        Err(err) => {
            tracing::warn!(%err, soft, hard, "cannot raise the open-file limit");
            Some(soft)
        }
    }
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
        let signal = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        // Shut down first: saying so must not be able to stop it.
        fire.cancel();
        info!("execd serve: {signal} received, shutting down: closing every connection (with a close reason) and terminating every process");
    });
    Ok(token)
}

/// `HOST:PORT` of `ws://HOST:PORT` or `wss://HOST:PORT`, and whether it said `wss`.
fn scheme(listen: &str) -> Result<(&str, bool), String> {
    if let Some(rest) = listen.strip_prefix("ws://") {
        Ok((rest, false))
    } else if let Some(rest) = listen.strip_prefix("wss://") {
        Ok((rest, true))
    } else {
        Err(format!(
            "--listen must be ws://HOST:PORT, wss://HOST:PORT or stdio, got {listen:?}"
        ))
    }
}

/// The address of `ws://HOST:PORT` or `wss://HOST:PORT`, and whether it said `wss`.
async fn resolve(listen: &str) -> Result<(SocketAddr, bool), String> {
    let (authority, wss) = scheme(listen)?;
    let authority = authority.trim_end_matches('/');
    let addr = tokio::net::lookup_host(authority)
        .await
        .map_err(|err| format!("cannot resolve {listen:?}: {err}"))?
        .next()
        .ok_or_else(|| format!("{listen:?} resolves to no address"))?;
    Ok((addr, wss))
}

/// The token WebSocket clients must present (`None` for `--no-auth`), and
/// where it came from, for the start line.
fn server_token(args: &ServeArgs, addr: SocketAddr) -> Result<(Option<Token>, String), String> {
    let loopback = addr.ip().is_loopback();
    if args.no_auth {
        if !loopback {
            return Err(format!(
                "--no-auth is refused on {addr}, which is not a loopback address: anyone who can reach it could run commands as this user"
            ));
        }
        warn!(%addr, "--no-auth: any local user or program can connect and run commands as this user");
        return Ok((None, "none (--no-auth)".to_string()));
    }
    if let Some(path) = &args.token_file {
        let token = token::read_file(path).map_err(|err| err.to_string())?;
        if std::fs::metadata(path).is_ok_and(|m| m.mode() & 0o077 != 0) {
            warn!(path = %path.display(), "the token file is open to other users; chmod 600 it");
        }
        return Ok((
            Some(token),
            format!("token (--token-file {})", path.display()),
        ));
    }
    if let Some(token) = token::from_env().map_err(|err| err.to_string())? {
        return Ok((Some(token), format!("token (${TOKEN_VARIABLE})")));
    }
    if !loopback {
        return Err(format!(
            "refusing to listen on {addr}, which is not a loopback address, without a token: pass --token-file PATH or set {TOKEN_VARIABLE}"
        ));
    }
    let path = token::default_path().map_err(|err| err.to_string())?;
    let (token, created) = token::load_or_create_default(&path).map_err(|err| err.to_string())?;
    let how = if created {
        ", created with mode 0600"
    } else {
        ""
    };
    Ok((
        Some(token),
        format!("token (default token file {}{how})", path.display()),
    ))
}

/// Flags that have no meaning for `--listen stdio`.
fn refuse_websocket_flags_on_stdio(args: &ServeArgs) -> Result<(), String> {
    let given = [
        ("--token-file", args.token_file.is_some()),
        ("--no-auth", args.no_auth),
        ("--allow-origin", !args.allow_origin.is_empty()),
        ("--tls-cert", args.tls_cert.is_some()),
        ("--metrics-listen", args.metrics_listen.is_some()),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((flag, _)) => Err(format!(
            "{flag} applies to WebSocket listeners, not to --listen stdio (whoever starts the process owns its pipes)"
        )),
        None => Ok(()),
    }
}

/// Serve `args`; on `activated`, the socket systemd passed, when it did.
pub async fn run(args: ServeArgs, activated: Option<TcpListener>) -> Result<(), String> {
    // Signals ignored by whoever started the server (a background job
    // ignores SIGINT and SIGQUIT) stay ignored, through a handler that exec
    // resets: programs start with the default, by posix_spawn.
    execd_process::signal::catch_ignored_sendable();
    let mut config = args.config(raise_open_file_limit())?;
    let shutdown = shutdown_on_signal().map_err(|err| format!("cannot watch signals: {err}"))?;

    let version = env!("CARGO_PKG_VERSION");
    if args.listen == "stdio" {
        if activated.is_some() {
            return Err("--listen stdio cannot serve the socket systemd passed (LISTEN_FDS); use ws:// or wss://".into());
        }
        refuse_websocket_flags_on_stdio(&args)?;
        info!("execd {version} serving one connection on stdio (auth: none, whoever started it owns its pipes)");
        execd_server::serve_stdio(config, shutdown).await;
        return Ok(());
    }
    let (addr, wss) = match &activated {
        Some(listener) => {
            let addr = listener
                .local_addr()
                .map_err(|err| format!("the socket systemd passed has no address: {err}"))?;
            (addr, scheme(&args.listen)?.1)
        }
        None => resolve(&args.listen).await?,
    };
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
    let (token, auth) = server_token(&args, addr)?;
    let tls = if config.tls.is_some() { "on" } else { "off" };
    config.access = AccessConfig {
        token,
        allowed_origins: args.allow_origin.clone(),
        ..AccessConfig::default()
    };
    let server = match activated {
        Some(listener) => {
            info!("serving the socket systemd passed ({addr}), not --listen's address");
            execd_server::serve_listener(listener, config)
                .await
                .map_err(|err| format!("cannot serve the socket systemd passed ({addr}): {err}"))?
        }
        None => execd_server::bind(addr, config)
            .await
            .map_err(|err| format!("cannot listen on {addr}: {err}"))?,
    };
    info!(
        "execd {version} listening on {} (auth: {auth}; TLS: {tls})",
        server.url()
    );
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", server.url())
        .and_then(|()| stdout.flush())
        .map_err(|err| format!("cannot print the URL: {err}"))?;
    shutdown.cancelled().await;
    server.shutdown().await;
    Ok(())
}
