//! The execd server in-process (`execd_server::bind`) on a free loopback
//! port, with the short terminate grace period the suites use so that a
//! process ignoring SIGTERM costs half a second, not two.

use std::time::Duration;

use execd_local::TableConfig;
use execd_server::{ServerConfig, WsServer};

use crate::ws_client::Client;

/// Process-table settings with a 500 ms terminate grace period.
pub fn fast_table() -> TableConfig {
    TableConfig {
        terminate_grace: Duration::from_millis(500),
        ..TableConfig::default()
    }
}

/// A server with exactly `config`, on a free loopback port.
pub async fn bind_server(config: ServerConfig) -> WsServer {
    execd_server::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("bind")
}

/// A server with default settings but [`fast_table`]'s grace period, and
/// no detach grace: a connection's processes end with it however it ends
/// (the resume suites configure a grace of their own).
pub async fn start_server() -> WsServer {
    start_server_with(ServerConfig {
        detach_grace: Duration::ZERO,
        ..ServerConfig::default()
    })
    .await
}

/// A server with `config`, its grace period shortened as in [`fast_table`].
pub async fn start_server_with(mut config: ServerConfig) -> WsServer {
    config.table.terminate_grace = fast_table().terminate_grace;
    bind_server(config).await
}

/// A [`start_server`] server and a client that has done the handshake.
pub async fn connected() -> (WsServer, Client) {
    let server = start_server().await;
    let client = Client::connect_initialized(&server.url()).await;
    (server, client)
}
