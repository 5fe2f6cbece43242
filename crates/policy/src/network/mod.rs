//! A process tree's network policy: the tree lives in a network namespace
//! of its own (the sandbox's `network: false`) whose only way out is an
//! HTTP proxy execd serves. The listening socket is made inside that
//! namespace by the sandboxed child ([`crate::sandbox`]) and passed to us,
//! so we accept the tree's connections from outside and make the upstream
//! connections from our own namespace. Each connection is decided by the
//! rules (`rules`), the owner's gate for `ask`, and what the client said
//! "for the rest of the process"; then relayed, bounded ([`NetworkLimits`]).
//!
//! - `guard`: one tree's proxy state and bounds.
//! - `rules`: matching hosts and ports, private addresses.
//! - `head`: reading and rewriting the request head.
//! - `proxy`: one connection from request to end.
//! - `relay`: copying both ways, bounded.
//! - `owner`: which process of the tree opened a connection.

mod guard;
mod head;
mod owner;
mod proxy;
mod relay;
pub mod rules;

use std::future::Future;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::debug;

pub use self::guard::{NetworkGuard, NetworkLimits, MAX_REMEMBERED};

impl NetworkGuard {
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
