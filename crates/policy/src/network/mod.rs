//! A process tree's network policy: the tree lives in a network namespace
//! of its own (the sandbox's `network: false`) whose only way out is an
//! HTTP proxy execd serves. The listening socket is made inside that
//! namespace by the sandboxed child ([`crate::sandbox`]) and passed to us,
//! so we accept the tree's connections from outside and make the upstream
//! connections from our own namespace. Each connection is decided by the
//! rules (`rules`), the owner's gate for `ask`, and what the client said
//! "for the rest of the process"; then relayed, bounded ([`NetworkLimits`]).
//!
//! - `rules`: matching hosts and ports, private addresses.
//! - `head`: reading and rewriting the request head.
//! - `proxy`: one connection from request to end.
//! - `relay`: copying both ways, bounded.
//! - `owner`: which process of the tree opened a connection.

mod head;
mod owner;
mod proxy;
mod relay;
pub mod rules;

use std::collections::HashMap;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use execd_protocol::network::{NetworkAnswer, NetworkPolicy};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::debug;

use crate::decision::ExecGate;

/// Answers given "for the rest of the process" kept per tree; more are
/// not remembered (they are asked again).
pub const MAX_REMEMBERED: usize = 256;

/// The proxy's bounds, per tree (`execd serve` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkLimits {
    /// Proxied connections open at once (`--max-proxy-connections`);
    /// more are answered `503`.
    pub max_connections: usize,
    /// Bytes one connection may carry, both directions together
    /// (`--max-proxy-bytes`); `None`: no cap.
    pub max_bytes_per_connection: Option<u64>,
    /// A connection with nothing moving either way for this long is closed,
    /// and so is one that sends no complete request head in that time
    /// (`--proxy-idle-timeout-ms`).
    pub idle_timeout: Duration,
    /// Time to resolve and connect upstream.
    pub connect_timeout: Duration,
}

impl Default for NetworkLimits {
    fn default() -> Self {
        NetworkLimits {
            max_connections: 64,
            max_bytes_per_connection: None,
            idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

/// The proxy of one process tree.
pub struct NetworkGuard {
    process_id: String,
    policy: NetworkPolicy,
    gate: Arc<dyn ExecGate>,
    limits: NetworkLimits,
    /// The tree's first process (its namespace's `/proc/PID/net`) and argv.
    tree_pid: i32,
    tree_argv: Vec<String>,
    /// Answers given for the rest of the process, by (host, port).
    remembered: Mutex<HashMap<(String, u16), NetworkAnswer>>,
}

impl NetworkGuard {
    pub fn new(
        process_id: &str,
        policy: NetworkPolicy,
        gate: Arc<dyn ExecGate>,
        limits: NetworkLimits,
        tree_pid: i32,
        tree_argv: Vec<String>,
    ) -> Arc<NetworkGuard> {
        Arc::new(NetworkGuard {
            process_id: process_id.to_string(),
            policy,
            gate,
            limits,
            tree_pid,
            tree_argv,
            remembered: Mutex::new(HashMap::new()),
        })
    }

    fn remembered(&self, host: &str, port: u16) -> Option<NetworkAnswer> {
        let remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        remembered.get(&(host.to_string(), port)).copied()
    }

    fn remember(&self, host: &str, port: u16, answer: NetworkAnswer) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if remembered.len() < MAX_REMEMBERED {
            remembered.insert((host.to_string(), port), answer);
        }
    }

    /// Serve the tree's proxy on `listener` (the listening socket made in
    /// the tree's namespace) until `until` completes (the tree is gone);
    /// then every connection still open is closed.
    pub async fn serve(self: Arc<Self>, listener: OwnedFd, until: impl Future<Output = ()>) {
        let listener = std::net::TcpListener::from(listener);
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(listener))
        {
            Ok(listener) => listener,
            Err(err) => {
                debug!(%err, process = %self.process_id, "cannot serve the network proxy");
                return;
            }
        };
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        let mut connections = JoinSet::new();
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(err) => {
                            debug!(%err, "network proxy accept");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        proxy::refuse_busy(&self, stream);
                        continue;
                    };
                    let guard = self.clone();
                    connections.spawn(async move {
                        proxy::serve_connection(&guard, stream, peer).await;
                        drop(slot);
                    });
                }
            }
        }
        connections.shutdown().await;
    }
}
