//! A connection's session: its state (handshake, process backend, exec
//! gate, event delivery), which the method handlers work on, and replying
//! from a task.

use std::future::Future;
use std::sync::Arc;

use execd_local::open_files::OpenFiles;
use execd_local::LocalBackend;
use execd_protocol::RequestId;
use execd_transport::outbox::Outbox;

use crate::events::ConnectionEvents;
use crate::gate::ConnectionGate;
use crate::methods::fs_watch::MissingWatches;
use crate::rpc::{self, RpcResult};
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
    /// Files held open by `fs/open` (codex dialect).
    pub(crate) open_files: Arc<OpenFiles>,
    /// `fs/watchMissing` watches (codex dialect).
    pub(crate) watches: Arc<MissingWatches>,
}

impl Session {
    pub fn new(config: ServerConfig, outbox: Arc<Outbox>, binary_frames: bool) -> Self {
        let gate = ConnectionGate::new(outbox.clone());
        let events = ConnectionEvents::new(outbox.clone());
        let codex = &config.codex;
        let open_files = Arc::new(OpenFiles::new(codex.max_open_files, codex.max_read_block));
        let watches = MissingWatches::new(outbox.clone(), codex.clone());
        Session {
            open_files,
            watches,
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

    /// Where the client's answers to `exec/approve` go.
    pub fn gate(&self) -> &ConnectionGate {
        &self.gate
    }

    /// Send a frame now; fails only when the connection is closing.
    pub async fn send(&self, frame: String) {
        self.outbox.send(frame).await;
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
