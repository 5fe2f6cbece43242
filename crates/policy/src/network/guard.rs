//! One tree's proxy state: its policy, the owner's gate, its bounds
//! ([`NetworkLimits`]), the tree's first process (for finding who opened a
//! connection), and the answers the client gave "for the rest of the
//! process" (at most [`MAX_REMEMBERED`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use execd_protocol::network::{NetworkAnswer, NetworkPolicy};

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
    pub(super) process_id: String,
    pub(super) policy: NetworkPolicy,
    pub(super) gate: Arc<dyn ExecGate>,
    pub(super) limits: NetworkLimits,
    /// The tree's first process (its namespace's `/proc/PID/net`) and argv.
    pub(super) tree_pid: i32,
    pub(super) tree_argv: Vec<String>,
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

    pub(super) fn remembered(&self, host: &str, port: u16) -> Option<NetworkAnswer> {
        let remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        remembered.get(&(host.to_string(), port)).copied()
    }

    pub(super) fn remember(&self, host: &str, port: u16, answer: NetworkAnswer) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if remembered.len() < MAX_REMEMBERED {
            remembered.insert((host.to_string(), port), answer);
        }
    }
}
