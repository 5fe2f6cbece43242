//! `ExecServerClient`: one session with an execd server, over one
//! connection at a time.
//!
//! Callers write their frames straight to the current connection (an
//! `Outbox`); a driver task reads it ([`crate::frames`]), routing responses
//! to their waiting callers (by id) and process notifications to the
//! per-process channels of an [`EventRouter`]. A process's channel is
//! registered before its `process/start` is sent, so output that beats the
//! start response is kept. A WebSocket connection lost without a close is
//! resumed by the driver ([`crate::resume`]): calls in flight are sent again
//! and every channel catches up without gap or repeat. When the session
//! ends (a close, or a resume that fails), every waiting call and every open
//! process channel gets `ConnectionLost`.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use execd_environment::EnvError;
use execd_environment::{ChangeQueue, EventReceiver, EventRouter, ExitWatch};
use execd_policy::decision::ExecGate;
use execd_protocol::envelope::{Account, InitializeParams, InitializeResult};
use execd_transport::outbox::{Frame, Outbox, Wire};
use futures_util::{future, SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec};
use tokio_util::sync::CancellationToken;

use crate::error::ClientError;
use crate::frames::{End, FrameStream, InFrame};
pub use crate::state::LinkState;
use crate::state::{ClientOutbox, Link, Shared};
pub use crate::websocket::ConnectOptions;
use crate::websocket::MAX_FRAME;

pub use crate::DEFAULT_TIMEOUT;

/// What a new client is made of besides its connection.
struct Ends {
    target: String,
    child: Option<tokio::process::Child>,
    binary_output: bool,
    output_window: Option<u64>,
}

struct Inner {
    shared: Arc<Shared>,
    /// The `outputWindow` of processes the remote environment starts.
    output_window: Option<u64>,
    session_id: OnceLock<String>,
    /// The server's account (`initialize` extension), if it told.
    account: OnceLock<Account>,
    /// The server takes `fs/upload` / `fs/download` on this connection.
    file_transfers: std::sync::atomic::AtomicBool,
    target: String,
    /// Cancelled when the last handle is gone: stops the driver.
    dropped: CancellationToken,
    /// Keeps a stdio server alive (killed on drop).
    _child: Option<tokio::process::Child>,
}

impl Drop for Inner {
    /// The last handle is gone: close the connection politely, and stop the driver.
    fn drop(&mut self) {
        self.dropped.cancel();
        let Some(outbox) = self.shared.link().outbox.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { outbox.finish().await });
            }
            Err(_) => outbox.close(),
        }
    }
}

/// A handle that does not keep the session open.
#[derive(Clone)]
pub(crate) struct WeakClient(std::sync::Weak<Inner>);

impl WeakClient {
    pub(crate) fn upgrade(&self) -> Option<ExecServerClient> {
        self.0.upgrade().map(|inner| ExecServerClient { inner })
    }
}

/// A session with an execd server. Cheap to clone; the connection closes
/// (and the session ends) when the last clone is dropped.
#[derive(Clone)]
pub struct ExecServerClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ExecServerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecServerClient")
            .field("target", &self.inner.target)
            .field("session_id", &self.inner.session_id)
            .finish()
    }
}

impl ExecServerClient {
    /// Connect to `ws://HOST:PORT` (or `wss://`) and do the handshake with
    /// the default [`ConnectOptions`]: the token is `EXECD_TOKEN` or the
    /// default token file, and a lost connection is resumed.
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        Self::connect_with(url, ConnectOptions::default()).await
    }

    /// Connect to `ws://HOST:PORT` (or `wss://`) with `options`.
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Self, ClientError> {
        let ws = crate::websocket::open(url, &options, DEFAULT_TIMEOUT).await?;
        let (incoming, outbox) = crate::frames::split_socket(ws, url);
        let binary_output = options.binary_output;
        let window = options.output_window;
        let resume = crate::resume::Resume {
            url: url.to_string(),
            options,
        };
        let ends = Ends {
            target: url.to_string(),
            child: None,
            binary_output,
            output_window: window,
        };
        Self::handshake(ends, incoming, outbox, Some(resume)).await
    }

    /// Start `command` (e.g. `ssh host execd serve --listen stdio`) and speak
    /// the protocol over its stdin/stdout. The child is killed when the
    /// client is dropped. A stdio session ends with its pipes (no resume).
    pub async fn connect_stdio(mut command: tokio::process::Command) -> Result<Self, ClientError> {
        let target = format!("{:?}", command.as_std());
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| ClientError::Connect {
                target: target.clone(),
                reason: err.to_string(),
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(ClientError::Connect {
                target,
                reason: "child has no stdio pipes".into(),
            });
        };
        let lines =
            FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_FRAME)).map(|line| {
                line.map(|l| InFrame::Text(bytes::Bytes::from(l)))
                    .map_err(|err| End::Closed(err.to_string()))
            });
        let eof = futures_util::stream::once(future::ready(Err(End::Closed(
            "the server closed the connection".to_string(),
        ))));
        let incoming: FrameStream = Box::pin(lines.chain(eof));
        // Lines carry text only: pings and close frames have no line (they
        // are dropped, not errors); we never send binary frames.
        let outgoing = FramedWrite::new(stdin, LinesCodec::new()).with_flat_map(|frame: Wire| {
            let line = match frame {
                Wire::Data(Frame::Text(text)) => Some(Ok(text)),
                Wire::Data(Frame::Binary(_)) | Wire::Ping | Wire::Close { .. } => None,
            };
            futures_util::stream::iter(line)
        });
        let ends = Ends {
            target,
            child: Some(child),
            binary_output: false,
            output_window: Some(crate::websocket::DEFAULT_OUTPUT_WINDOW),
        };
        Self::handshake(ends, incoming, Outbox::new(outgoing), None).await
    }

    async fn handshake(
        ends: Ends,
        incoming: FrameStream,
        outbox: Arc<ClientOutbox>,
        resume: Option<crate::resume::Resume>,
    ) -> Result<Self, ClientError> {
        let Ends {
            target,
            child,
            binary_output,
            output_window,
        } = ends;
        let shared = Arc::new(Shared {
            link: Mutex::new(Link {
                outbox: Some(outbox.clone()),
                pending: BTreeMap::new(),
            }),
            next_id: AtomicI64::new(1),
            gate: std::sync::RwLock::new(None),
            router: EventRouter::default(),
            watches: Default::default(),
            state: watch::Sender::new(LinkState::Connected),
            transfers: Default::default(),
            asks: Default::default(),
        });
        let dropped = CancellationToken::new();
        let session = Arc::new(OnceLock::new());
        tokio::spawn(crate::resume::drive(
            incoming,
            outbox,
            shared.clone(),
            dropped.clone(),
            session.clone(),
            resume,
        ));
        let client = ExecServerClient {
            inner: Arc::new(Inner {
                shared,
                output_window,
                session_id: OnceLock::new(),
                account: OnceLock::new(),
                file_transfers: Default::default(),
                target: target.clone(),
                dropped,
                _child: child,
            }),
        };
        let init: InitializeResult = client
            .call(
                "initialize",
                &InitializeParams {
                    client_name: "execd-client".into(),
                    binary_output,
                    resume_session_id: None,
                },
            )
            .await?;
        client.notify("initialized", &json!({})).await?;
        let _ = session.set(init.session_id.clone());
        let _ = client.inner.session_id.set(init.session_id);
        if let Some(account) = init.account {
            let _ = client.inner.account.set(account);
        }
        let transfers = init.capabilities.is_some_and(|c| c.file_transfers);
        client
            .inner
            .file_transfers
            .store(transfers, std::sync::atomic::Ordering::Relaxed);
        Ok(client)
    }

    pub(crate) fn downgrade(&self) -> WeakClient {
        WeakClient(Arc::downgrade(&self.inner))
    }

    /// The `outputWindow` given to processes started without one
    /// ([`ConnectOptions::output_window`]).
    pub fn output_window(&self) -> Option<u64> {
        self.inner.output_window
    }

    /// The session id the server gave at `initialize`.
    pub fn session_id(&self) -> &str {
        self.inner.session_id.get().map_or("", String::as_str)
    }

    /// The account the server runs processes as (user, home, login shell),
    /// when the server says (execd's `initialize` extension).
    pub fn account(&self) -> Option<&Account> {
        self.inner.account.get()
    }

    /// Whether the server streams files here (`fs/upload`, `fs/download`:
    /// execd over WebSocket).
    pub fn file_transfers(&self) -> bool {
        self.inner
            .file_transfers
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn transfers(&self) -> &crate::transfer_routes::ClientTransfers {
        &self.inner.shared.transfers
    }

    /// Send a binary frame on the current connection.
    pub(crate) async fn send_binary(&self, frame: bytes::Bytes) -> Result<(), ClientError> {
        let outbox = self.inner.shared.link().outbox.clone();
        match outbox {
            Some(outbox) if outbox.send_frame(Frame::Binary(frame)).await => Ok(()),
            _ => Err(ClientError::ConnectionLost(
                self.closed_reason()
                    .unwrap_or_else(|| "the connection was lost during the transfer".into()),
            )),
        }
    }

    /// Why the session ended, if it has.
    pub fn closed_reason(&self) -> Option<String> {
        self.inner.shared.closed_reason()
    }

    /// Resolves when the session has ended.
    pub async fn closed(&self) {
        let mut state = self.inner.shared.state.subscribe();
        let _ = state
            .wait_for(|s| matches!(s, LinkState::Closed { .. }))
            .await;
    }

    /// Watch the connection: connected, reconnecting, closed.
    pub fn link_state(&self) -> watch::Receiver<LinkState> {
        self.inner.shared.state.subscribe()
    }

    fn lost(&self) -> ClientError {
        ClientError::ConnectionLost(
            self.closed_reason()
                .unwrap_or_else(|| format!("connection to {} closed", self.inner.target)),
        )
    }

    /// Send a notification on the current connection (dropped while
    /// reconnecting: notifications are not answered, so not repeated).
    pub async fn notify<P: Serialize>(&self, method: &str, params: &P) -> Result<(), ClientError> {
        if self.closed_reason().is_some() {
            return Err(self.lost());
        }
        let frame = json!({"method": method, "params": params}).to_string();
        let outbox = self.inner.shared.link().outbox.clone();
        match outbox {
            Some(outbox) if outbox.send(frame).await => Ok(()),
            _ if self.closed_reason().is_some() => Err(self.lost()),
            _ => Ok(()),
        }
    }

    /// Call `method` with the default timeout.
    pub async fn call<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        self.call_with_timeout(method, params, DEFAULT_TIMEOUT)
            .await
    }

    /// Call `method`, waiting at most `timeout` for the answer.
    pub async fn call_with_timeout<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
        timeout: Duration,
    ) -> Result<R, ClientError> {
        let result = self.inner.shared.call(method, params, timeout).await?;
        serde_json::from_str(result.get())
            .map_err(|err| ClientError::Protocol(format!("bad result for {method}: {err}")))
    }

    /// A fresh `writeId` for a `process/write` that may be sent twice.
    pub fn write_id(&self) -> String {
        format!("w{}", self.inner.shared.next_id())
    }

    /// Decide the server's `exec/approve` requests (and receive every
    /// `exec/decision`) with `gate`. Without one, approvals are refused,
    /// which the server takes as deny.
    pub fn set_exec_gate(&self, gate: Arc<dyn ExecGate>) {
        *self
            .inner
            .shared
            .gate
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(gate);
    }

    /// Open the event channel of a process about to be started.
    pub fn register_process(
        &self,
        id: &str,
    ) -> Result<(EventReceiver, watch::Receiver<ExitWatch>), EnvError> {
        if self.closed_reason().is_some() {
            return Err(self.lost().into());
        }
        self.inner.shared.router.register(id)
    }

    /// Close the event channel of a process (its start failed, or nobody follows it).
    pub fn unregister_process(&self, id: &str) {
        self.inner.shared.router.unregister(id);
    }

    /// Route `fs/changed` of watch `id` to a new queue (before `fs/watch`
    /// is sent, so no change is missed).
    pub fn register_watch(&self, id: &str, path: &str) -> Result<Arc<ChangeQueue>, EnvError> {
        if self.closed_reason().is_some() {
            return Err(self.lost().into());
        }
        let shared = &self.inner.shared;
        let queue = ChangeQueue::new(path, shared.watches.budget.clone(), Duration::ZERO);
        shared.watches.register(id, queue.clone());
        Ok(queue)
    }

    /// Stop routing watch `id` (it ended); its queue ends.
    pub fn unregister_watch(&self, id: &str) {
        self.inner.shared.watches.unregister(id);
    }
}
