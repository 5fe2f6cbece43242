//! A connection's session: its state (handshake, process backend, exec
//! gate, event delivery) and the handling of one inbound frame — a request
//! goes to [`crate::dispatch`], a response to the exec gate, and anything
//! malformed is answered with an error naming what was wrong.

use std::future::Future;
use std::sync::Arc;

use execd_local::LocalBackend;
use execd_protocol::{Incoming, RequestId};
use execd_transport::outbox::Outbox;
use tracing::debug;

use crate::connection::{ConnectionEvents, Inbound};
use crate::dispatch;
use crate::gate::ConnectionGate;
use crate::methods::session::INITIALIZED;
use crate::methods::{Reply, RpcResult};
use crate::rpc;
use crate::ServerConfig;

/// The state of one connection.
pub struct Session {
    id: String,
    /// `initialize` has been answered.
    pub(crate) initialized: bool,
    config: ServerConfig,
    backend: LocalBackend,
    outbox: Arc<Outbox>,
    gate: Arc<ConnectionGate>,
    pub(crate) events: Arc<ConnectionEvents>,
    /// The transport can carry binary frames.
    pub(crate) binary_frames: bool,
}

impl Session {
    pub fn new(config: ServerConfig, outbox: Arc<Outbox>, binary_frames: bool) -> Self {
        let gate = ConnectionGate::new(outbox.clone());
        let events = ConnectionEvents::new(outbox.clone());
        Session {
            id: uuid::Uuid::new_v4().to_string(),
            initialized: false,
            backend: LocalBackend::new(config.table.clone(), events.clone(), gate.clone()),
            gate,
            events,
            binary_frames,
            config,
            outbox,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn backend(&self) -> &LocalBackend {
        &self.backend
    }

    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    async fn send(&self, frame: String) {
        // Fails only when the connection is closing.
        self.outbox.send(frame).await;
    }

    /// Handle one inbound frame.
    pub async fn handle(&mut self, frame: Inbound) {
        let text = match frame {
            Inbound::Text(text) => text,
            Inbound::Invalid(why) => return self.send(rpc::frame_error(None, why)).await,
        };
        match Incoming::parse(&text) {
            Err(err) => {
                self.send(rpc::frame_error(err.id.as_ref(), err.message))
                    .await
            }
            Ok(Incoming::Request { id, method, params }) => {
                if let Reply::Now(result) = dispatch::route(self, &id, &method, params) {
                    self.send(rpc::response(&id, result)).await;
                }
            }
            Ok(Incoming::Notification { method, .. }) => {
                if method != INITIALIZED {
                    debug!(%method, "ignoring unknown notification");
                }
            }
            Ok(Incoming::Response { id, result }) => {
                let ours = match id {
                    RequestId::Int(n) => self.gate.answer(n, result),
                    RequestId::Str(_) => false,
                };
                if !ours {
                    debug!(%id, "ignoring a response to no request of ours");
                }
            }
        }
    }

    /// Reply to `id` from a task of its own once `work` is done.
    pub fn reply_later(
        &self,
        id: &RequestId,
        work: impl Future<Output = RpcResult> + Send + 'static,
    ) {
        let outbox = self.outbox.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let result = work.await;
            outbox.send(rpc::response(&id, result)).await;
        });
    }
}
