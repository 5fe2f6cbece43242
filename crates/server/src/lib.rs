//! The execd server, read top to bottom: the [`transport`]s (WebSocket,
//! stdio) accept connections and move frames; one [`connection`] per client
//! decodes its frames ([`rpc`]) and hands each request to [`dispatch`], which
//! routes it by method name to its handler in [`methods`] (one module per
//! method family); handlers work on the connection's [`session`] (its
//! `execd-local` backend). Process events reach the client through
//! [`events`]; [`gate`] carries exec decisions to and from the client.
//! [`access`] decides who may open a WebSocket connection (token, `Origin`,
//! `Host`); [`audit`] records connections, process starts, exec decisions
//! and filesystem changes as structured events.
//! What the connections of one server share (process and retention budget,
//! filesystem slots, the connection count) is in [`shared`]; every limit
//! is a [`ServerConfig`] field. [`sessions`] keeps sessions whose
//! connection was lost, for a resume (`initialize {resumeSessionId}`).

pub mod access;
pub mod audit;
pub mod codex_limits;
pub mod codex_network;
pub mod connection;
pub mod dispatch;
pub mod events;
pub mod fs_watches;
pub mod gate;
pub mod http_clients;
pub mod methods;
pub mod metrics;
pub mod request_span;
pub mod rpc;
pub mod session;
pub mod sessions;
pub mod shared;
pub mod start_burst;
pub mod transfers;
pub mod transport;
pub mod watches;

use std::sync::Arc;
use std::time::Duration;

use execd_local::TableConfig;

pub use access::AccessConfig;
pub use transport::stdio::serve_stdio;
pub use transport::ws::{bind, serve_listener, WsServer};

const MIB: usize = 1024 * 1024;

/// Server-wide settings. Every resource a client can make the server hold
/// is bounded by one of them (docs/PROTOCOL.md, Limits); the `execd serve` flag
/// of each is named in its error.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Per-connection process table settings: output retained per process,
    /// closed records kept, grace period, processes per connection
    /// (`max_processes`), the stdin queue per process.
    pub table: TableConfig,
    /// Processes not yet closed, over all connections.
    pub max_processes: usize,
    /// Retained output over all processes of all connections; past it,
    /// the processes that closed longest ago lose theirs first.
    pub max_retained_bytes: usize,
    /// Largest frame accepted, in bytes (a `fs/writeFile` carries its file;
    /// the client library moves big files in 4 MiB pieces).
    pub max_frame_bytes: usize,
    /// Largest file, or range, one `fs/readFile` returns (its reply is a
    /// third larger, as base64).
    pub max_read_bytes: u64,
    /// Longest `waitMs` honoured by `process/read`.
    pub max_read_wait: Duration,
    /// Bounds of the codex-dialect methods (open files, watches, walks).
    pub codex: codex_limits::CodexLimits,
    /// Per-session bounds of `fs/watch`.
    pub watch: fs_watches::WatchLimits,
    /// Who may connect over WebSocket (token, `Origin`, `Host`). The
    /// default has no token but refuses browser origins and, on loopback,
    /// foreign `Host` names.
    pub access: AccessConfig,
    /// Serve `wss://` with this configuration (see
    /// `execd_transport::tls::server_config`); plain `ws://` without.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Longest time a client may take over the TLS and WebSocket handshakes.
    pub handshake_timeout: Duration,
    /// Connections served at once; more are refused with HTTP 503.
    pub max_connections: usize,
    /// Connections in their handshake at once; a new one closes the oldest.
    pub max_handshakes: usize,
    /// Requests of one connection answered from a task (`process/read`,
    /// `fs/*`, a `process/start` with an exec policy) not yet answered.
    pub max_requests_in_flight: usize,
    /// `process/start`s of one connection spawning side by side when they
    /// come in a burst (1: one at a time); the connection reads on as one
    /// finishes.
    pub max_concurrent_spawns: usize,
    /// Filesystem operations running at once, over all connections.
    pub max_fs_ops: usize,
    /// Filesystem operations of one connection running at once.
    pub max_fs_ops_per_connection: usize,
    /// How long a session whose WebSocket connection was lost (no close
    /// frame) waits for a resume before its processes are terminated;
    /// zero ends it at once.
    pub detach_grace: Duration,
    /// Sessions detached at once; past it the oldest detached one ends.
    pub max_detached_sessions: usize,
    /// `fs/upload` and `fs/download` streams one connection has open at once.
    pub max_transfers: usize,
    /// Pieces (up to 1 MiB each) of one transfer in flight unacknowledged:
    /// what a client can make the server hold per upload.
    pub transfer_window: u32,
    /// A WebSocket ping every this often (zero: no keepalive).
    pub keepalive_interval: Duration,
    /// A peer heard nothing from (no frame, no pong) for this long is lost
    /// (zero: never).
    pub keepalive_timeout: Duration,
    /// Serve `GET /metrics` (and the health endpoints), without a token, on
    /// this address too (`--metrics-listen`); the WebSocket listener
    /// serves `/metrics` behind its token either way.
    pub metrics_listen: Option<std::net::SocketAddr>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            table: TableConfig::default(),
            max_processes: 1024,
            max_retained_bytes: 256 * MIB,
            max_frame_bytes: 64 * MIB,
            max_read_bytes: 32 * MIB as u64,
            max_read_wait: Duration::from_secs(3600),
            codex: codex_limits::CodexLimits::default(),
            watch: fs_watches::WatchLimits::default(),
            access: AccessConfig::default(),
            tls: None,
            handshake_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_handshakes: 128,
            max_requests_in_flight: 128,
            max_concurrent_spawns: 16,
            max_fs_ops: 32,
            max_fs_ops_per_connection: 8,
            detach_grace: Duration::from_secs(120),
            max_detached_sessions: 64,
            max_transfers: 8,
            transfer_window: 16,
            keepalive_interval: Duration::from_secs(15),
            keepalive_timeout: Duration::from_secs(45),
            metrics_listen: None,
        }
    }
}
