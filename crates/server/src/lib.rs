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

pub mod access;
pub mod audit;
pub mod connection;
pub mod dispatch;
pub mod events;
pub mod gate;
pub mod methods;
pub mod rpc;
pub mod session;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use execd_local::TableConfig;

pub use access::AccessConfig;
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
    /// Who may connect over WebSocket (token, `Origin`, `Host`). The
    /// default has no token but refuses browser origins and, on loopback,
    /// foreign `Host` names.
    pub access: AccessConfig,
    /// Serve `wss://` with this configuration (see
    /// `execd_transport::tls::server_config`); plain `ws://` without.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Longest time a client may take over the TLS and WebSocket handshakes.
    pub handshake_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            table: TableConfig::default(),
            max_frame_bytes: 512 * 1024 * 1024,
            max_read_wait: Duration::from_secs(3600),
            access: AccessConfig::default(),
            tls: None,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}
