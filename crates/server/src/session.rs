//! A session: its state (handshake, process backend, exec gate, event
//! delivery, filesystem slots), which the method handlers work on, and
//! replying from a task: each such reply holds one of the session's
//! in-flight places until it is sent. A session is served by one
//! connection at a time (its [`Link`]): replies go to the connection that
//! asked, events to whichever serves the session when they are sent (see
//! [`crate::sessions`] for detach and resume).

use std::future::Future;
use std::sync::Arc;

use execd_local::open_files::OpenFiles;
use execd_local::LocalBackend;
use execd_protocol::limits::{Limit, LimitExceeded};
use execd_protocol::{RequestId, RpcError};
use execd_transport::outbox::{Frame, Link, Outbox, Wire};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::access::Admission;
use crate::events::ConnectionEvents;
use crate::fs_watches::FsWatches;
use crate::gate::ConnectionGate;
use crate::http_clients::HttpClients;
use crate::methods::Reply;
use crate::metrics::{Metrics, OpenGuard};
use crate::rpc::{self, RpcResult};
use crate::shared::{FsSlots, Shared};
use crate::start_burst::StartBurst;
use crate::transfers::Transfers;
use crate::watches::MissingWatches;
use crate::ServerConfig;

/// The state of one connection.
pub struct Session {
    id: String,
    /// `initialize` has been answered.
    pub(crate) initialized: bool,
    shared: Arc<Shared>,
    backend: LocalBackend,
    outbox: Arc<Outbox<Wire>>,
    gate: Arc<ConnectionGate>,
    pub(crate) events: Arc<ConnectionEvents>,
    /// The transport can carry binary frames.
    pub(crate) binary_frames: bool,
    /// Files held open by `fs/open` (codex dialect).
    pub(crate) open_files: Arc<OpenFiles>,
    /// `fs/watchMissing` watches (codex dialect).
    pub(crate) watches: Arc<MissingWatches>,
    /// `fs/watch` watches (extension).
    pub(crate) fs_watches: Arc<FsWatches>,
    /// `http/request`'s clients and places (codex dialect).
    http: Arc<HttpClients>,
    /// `fs/upload` and `fs/download` streams.
    transfers: Arc<Transfers>,
    in_flight: Arc<Semaphore>,
    fs: FsSlots,
    /// How the connection that opened the session was admitted (a resume
    /// must be admitted alike).
    admission: Admission,
    /// The connection serving the session now, where replies go.
    link: Link,
    /// The filesystem method being routed now, counted in the metrics
    /// when its reply is made (set by the connection around dispatch).
    pub(crate) fs_method: Option<&'static str>,
    /// Starts spawning side by side ([`StartBurst`]).
    pub(crate) starts: StartBurst,
    /// Counts the session as open in the metrics while it lives.
    _open: OpenGuard,
}

/// A request's place among its connection's requests in flight, held
/// until its reply is sent.
pub struct InFlight {
    _place: OwnedSemaphorePermit,
}

impl Session {
    /// A new session on the connection `link` of `outbox`.
    pub fn new(
        shared: Arc<Shared>,
        outbox: Arc<Outbox<Wire>>,
        link: Link,
        binary_frames: bool,
        admission: Admission,
    ) -> Self {
        let id = uuid::Uuid::new_v4().to_string();
        let gate = ConnectionGate::new(outbox.clone(), id.clone(), shared.metrics.clone());
        let events = ConnectionEvents::new(outbox.clone(), shared.metrics.clone());
        let shared_open = shared.metrics.session_opened();
        let config = &shared.config;
        let codex = &config.codex;
        let open_files = Arc::new(OpenFiles::new(codex.max_open_files, codex.max_read_block));
        let fs = shared.fs_slots();
        let watches = MissingWatches::new(outbox.clone(), codex.clone(), fs.clone());
        let fs_watches = FsWatches::new(outbox.clone(), config.watch.clone());
        Session {
            fs_watches,
            http: HttpClients::new(codex),
            transfers: Transfers::new(config.max_transfers, config.transfer_window),
            open_files,
            watches,
            id,
            initialized: false,
            backend: LocalBackend::with_budget(
                config.table.clone(),
                shared.budget.clone(),
                events.clone(),
                gate.clone(),
            ),
            gate,
            events,
            binary_frames,
            in_flight: Arc::new(Semaphore::new(config.max_requests_in_flight)),
            starts: StartBurst::new(config.max_concurrent_spawns),
            fs,
            shared,
            outbox,
            admission,
            link,
            fs_method: None,
            _open: shared_open,
        }
    }

    pub fn admission(&self) -> Admission {
        self.admission
    }

    /// The connection serving the session now.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Served by another connection from now on.
    pub fn set_link(&mut self, link: Link) {
        self.link = link;
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn backend(&self) -> &LocalBackend {
        &self.backend
    }

    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Where the client's answers to `exec/approve` go.
    pub fn gate(&self) -> &ConnectionGate {
        &self.gate
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The server's metrics, for a task.
    pub fn shared_metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// Filesystem work of this connection runs through these.
    pub fn fs(&self) -> &FsSlots {
        &self.fs
    }

    /// Where this connection's frames go (for tasks that send several).
    pub fn outbox(&self) -> Arc<Outbox<Wire>> {
        self.outbox.clone()
    }

    /// `fs/upload` and `fs/download` streams.
    pub fn transfers(&self) -> Arc<Transfers> {
        self.transfers.clone()
    }

    /// `http/request`'s clients and places.
    pub fn http(&self) -> &Arc<HttpClients> {
        &self.http
    }

    /// Send a reply now, to the connection serving the session.
    pub async fn send(&self, frame: String) {
        self.outbox.send_on(&self.link, Frame::Text(frame)).await;
    }

    /// A place for one more request answered from a task, if one is free.
    pub fn in_flight(&self) -> Result<InFlight, RpcError> {
        let max = self.config().max_requests_in_flight;
        self.in_flight
            .clone()
            .try_acquire_owned()
            .map(|place| InFlight { _place: place })
            .map_err(|_| {
                LimitExceeded::new(
                    Limit::RequestsInFlight,
                    max,
                    format!(
                        "{max} requests of this connection are still waiting for their replies"
                    ),
                )
                .into()
            })
    }

    /// Reply to `id` from a task of its own once `work` is done (or refuse
    /// now if the connection has too many requests in flight).
    pub fn reply_later(
        &self,
        id: &RequestId,
        work: impl Future<Output = RpcResult> + Send + 'static,
    ) -> Result<Reply, RpcError> {
        let place = self.in_flight()?;
        self.reply_with(place, id, work);
        Ok(Reply::Later)
    }

    /// [`Session::reply_later`] with a place taken already; the handle of
    /// the task that replies.
    pub fn reply_with(
        &self,
        place: InFlight,
        id: &RequestId,
        work: impl Future<Output = RpcResult> + Send + 'static,
    ) -> JoinHandle<()> {
        let id = id.clone();
        let counted = self.fs_method.map(|fs| (fs, self.shared.metrics.clone()));
        self.send_later(place, async move {
            let result = work.await;
            if let Some((fs, metrics)) = counted {
                metrics.fs_operation(fs, result.as_ref().map(|_| ()));
            }
            rpc::response(&id, result)
        })
    }

    /// Send the frame `work` builds (a whole response) from a task; its
    /// handle resolves once the frame went out.
    pub fn send_later(
        &self,
        place: InFlight,
        work: impl Future<Output = String> + Send + 'static,
    ) -> JoinHandle<()> {
        let outbox = self.outbox.clone();
        // The reply belongs to the connection that asked.
        let link = self.link.clone();
        // In the request's span (its trace context), if it has one.
        tokio::spawn(
            async move {
                let frame = work.await;
                outbox.send_on(&link, Frame::Text(frame)).await;
                drop(place);
            }
            .in_current_span(),
        )
    }
}
