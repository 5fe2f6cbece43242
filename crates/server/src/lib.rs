//! The execd server, read top to bottom: the [`transport`]s (WebSocket,
//! stdio) accept connections and move frames; one [`connection`] per client
//! decodes its frames ([`rpc`]) and hands each request to [`dispatch`], which
//! routes it by method name to its handler in [`methods`] (one module per
//! method family); handlers work on the connection's [`session`] (its
//! `execd-local` backend). Process events reach the client through
//! [`events`]; [`gate`] carries exec decisions to and from the client.

pub mod codex_limits;
pub mod connection;
pub mod dispatch;
pub mod events;
pub mod gate;
pub mod methods;
pub mod rpc;
pub mod session;
pub mod transport;

use std::time::Duration;

use execd_local::TableConfig;

pub use transport::stdio::serve_stdio;
pub use transport::ws::{bind, WsServer};

/// Server-wide settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Per-connection process table settings (retention, grace period).
    pub table: TableConfig,
    /// Largest frame accepted, in bytes (a `fs/writeFile` carries its file).
    pub max_frame_bytes: usize,
    /// Longest `waitMs` honoured by `process/read`.
    pub max_read_wait: Duration,
    /// Bounds of the codex-dialect methods (open files, watches, walks).
    pub codex: codex_limits::CodexLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            table: TableConfig::default(),
            max_frame_bytes: 512 * 1024 * 1024,
            max_read_wait: Duration::from_secs(3600),
            codex: codex_limits::CodexLimits::default(),
        }
    }
}
