//! What a client's handles and its connection driver share: the calls
//! waiting for their answers (kept with their frames, to send again after
//! a resume), the connection attached now ([`Link`]) and its state
//! ([`LinkState`]), the exec gate, the per-process event router and the
//! watches' queues.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use execd_environment::{EnvError, EventRouter};
use execd_policy::decision::ExecGate;
use execd_protocol::RpcError;
use execd_transport::outbox::{Outbox, Wire};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::{oneshot, watch};

use crate::error::ClientError;
use crate::watch_routes::WatchRoutes;

/// The sending half of a client connection.
pub(crate) type ClientOutbox = Outbox<Wire>;

/// The state of the connection under a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    Connected,
    /// Lost (`reason`); resuming the session on a new connection.
    Reconnecting {
        reason: String,
    },
    /// The session is over; every call fails with `ConnectionLost`.
    Closed {
        reason: String,
    },
}

/// A call waiting for its answer.
pub(crate) struct Call {
    /// The request as sent, to send again after a resume.
    pub(crate) frame: String,
    pub(crate) method: String,
    /// Whether sending it twice is harmless (see [`resend_safe`]).
    pub(crate) resend: bool,
    pub(crate) answer: oneshot::Sender<Result<Box<RawValue>, ClientError>>,
}

/// The current connection and the calls waiting on the session.
#[derive(Default)]
pub(crate) struct Link {
    /// `None` while reconnecting: calls wait, and are sent after the resume.
    pub(crate) outbox: Option<Arc<ClientOutbox>>,
    pub(crate) pending: BTreeMap<i64, Call>,
}

/// State shared with the driver task.
pub(crate) struct Shared {
    pub(crate) link: Mutex<Link>,
    pub(crate) next_id: AtomicI64,
    /// Answers `exec/approve` and receives `exec/decision`.
    pub(crate) gate: std::sync::RwLock<Option<Arc<dyn ExecGate>>>,
    pub(crate) router: EventRouter,
    /// `fs/changed` batches, by watch.
    pub(crate) watches: WatchRoutes,
    pub(crate) state: watch::Sender<LinkState>,
    /// `fs/upload` / `fs/download` streams.
    pub(crate) transfers: crate::transfer_routes::ClientTransfers,
    /// The server's requests, by id (asked again after a resume).
    pub(crate) asks: crate::asks::Asks,
}

impl Shared {
    pub(crate) fn link(&self) -> MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn gate(&self) -> Option<Arc<dyn ExecGate>> {
        self.gate.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn closed_reason(&self) -> Option<String> {
        match &*self.state.borrow() {
            LinkState::Closed { reason } => Some(reason.clone()),
            _ => None,
        }
    }

    pub(crate) fn next_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Route a response to its caller.
    pub(crate) fn answer(&self, id: i64, result: Result<&RawValue, RpcError>) {
        if let Some(call) = self.link().pending.remove(&id) {
            let _ = call
                .answer
                .send(
                    result
                        .map(RawValue::to_owned)
                        .map_err(|err| ClientError::Server {
                            code: err.code,
                            message: err.message,
                            data: err.data,
                        }),
                );
        }
    }

    /// Route the answer to request `id` (sent by the caller) to `answer`.
    pub(crate) fn expect_answer(
        &self,
        id: i64,
        answer: oneshot::Sender<Result<Box<RawValue>, ClientError>>,
    ) {
        self.link().pending.insert(
            id,
            Call {
                frame: String::new(),
                method: String::new(),
                resend: false,
                answer,
            },
        );
    }

    pub(crate) fn forget_answer(&self, id: i64) {
        self.link().pending.remove(&id);
    }

    /// Send `method` on the current connection (or, while reconnecting,
    /// after the resume) and wait up to `timeout` for its answer.
    pub(crate) async fn call<P: Serialize + ?Sized>(
        &self,
        method: &str,
        params: &P,
        timeout: Duration,
    ) -> Result<Box<RawValue>, ClientError> {
        let lost = |reason: Option<String>| {
            ClientError::ConnectionLost(reason.unwrap_or_else(|| "the session ended".into()))
        };
        if let Some(reason) = self.closed_reason() {
            return Err(lost(Some(reason)));
        }
        let id = self.next_id();
        // Encoded once, straight from the typed params.
        let frame = serde_json::to_string(&Request { id, method, params })
            .map_err(|err| ClientError::Protocol(format!("cannot encode {method}: {err}")))?;
        let resend = resend_safe(method, || serde_json::to_value(params).unwrap_or_default());
        let (tx, rx) = oneshot::channel();
        let outbox = {
            let mut link = self.link();
            link.pending.insert(
                id,
                Call {
                    frame: frame.clone(),
                    method: method.to_string(),
                    resend,
                    answer: tx,
                },
            );
            link.outbox.clone()
        };
        let _waiting = Waiting { shared: self, id };
        // A failed send leaves the call pending: a resume sends it again,
        // or the end of the session fails it.
        if let Some(outbox) = outbox {
            outbox.send(frame).await;
        }
        let mut rx = rx;
        let mut state = self.state.subscribe();
        loop {
            match tokio::time::timeout(timeout, &mut rx).await {
                Ok(Ok(answer)) => return answer,
                Ok(Err(_)) => return Err(lost(self.closed_reason())),
                // Time spent reconnecting does not count: the call waits
                // for the resume (or the end of the session), then gets
                // its full time again.
                Err(_) if matches!(*state.borrow(), LinkState::Reconnecting { .. }) => {
                    let _ = state
                        .wait_for(|s| !matches!(s, LinkState::Reconnecting { .. }))
                        .await;
                }
                Err(_) => {
                    return Err(ClientError::Timeout {
                        method: method.to_string(),
                        after: timeout,
                    });
                }
            }
        }
    }

    /// A new connection took over: calls safe to repeat are returned (in
    /// order) to be sent on it; the others fail, as they may or may not
    /// have been applied.
    pub(crate) fn take_over(&self, outbox: Arc<ClientOutbox>) -> Vec<String> {
        // Pieces in flight died with the old connection.
        self.transfers.fail_all("resumed on a new connection");
        let mut link = self.link();
        link.outbox = Some(outbox);
        let mut resend = Vec::new();
        link.pending.retain(|_, call| {
            if call.resend {
                resend.push(call.frame.clone());
                return true;
            }
            let (dead, _) = oneshot::channel();
            let answer = std::mem::replace(&mut call.answer, dead);
            let _ = answer.send(Err(ClientError::Interrupted {
                method: call.method.clone(),
            }));
            false
        });
        resend
    }

    /// The session is over: fail everything with `reason`.
    pub(crate) fn end(&self, reason: String) {
        self.state.send_replace(LinkState::Closed {
            reason: reason.clone(),
        });
        let pending = {
            let mut link = self.link();
            if let Some(outbox) = link.outbox.take() {
                outbox.close();
            }
            std::mem::take(&mut link.pending)
        };
        for (_, call) in pending {
            let _ = call
                .answer
                .send(Err(ClientError::ConnectionLost(reason.clone())));
        }
        self.watches
            .end_all(&EnvError::ConnectionLost(reason.clone()));
        self.transfers.fail_all(&reason);
        self.router.fail_all(EnvError::ConnectionLost(reason));
    }

    /// Send a reply to a server request on the connection it came on, or,
    /// if that is lost meanwhile, on the one that resumes the session (the
    /// server's ask waits across a detach and takes its answer from
    /// whichever connection serves the session); dropped once the session
    /// is over.
    pub(crate) async fn send_reply(&self, came_on: Weak<ClientOutbox>, reply: String) {
        let mut state = self.state.subscribe();
        let mut outbox = came_on.upgrade();
        loop {
            if let Some(lost) = outbox.take() {
                if lost.send(reply.clone()).await {
                    return;
                }
                // The driver closes it once it notices the loss.
                lost.closed().await;
            }
            let connected = match state
                .wait_for(|s| !matches!(s, LinkState::Reconnecting { .. }))
                .await
            {
                Ok(now) => matches!(*now, LinkState::Connected),
                Err(_) => false,
            };
            if !connected {
                return;
            }
            outbox = self.link().outbox.clone();
            // Not yet marked reconnecting by the driver (another thread).
            tokio::task::yield_now().await;
        }
    }
}

/// A call's place in the pending list while its caller waits. Dropped —
/// answered, timed out, or given up by the caller (its future dropped) —
/// it takes the call off the list: a call nobody waits for any more is
/// not sent again after a resume, and a late answer to it is dropped.
struct Waiting<'a> {
    shared: &'a Shared,
    id: i64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.shared.forget_answer(self.id);
    }
}

/// Whether a request may be sent again after a resume without doing its
/// work twice: `process/write` carries a `writeId`, `process/start` is
/// idempotent by `processId`, reads and queries repeat harmlessly. An
/// append, a signal or an HTTP request may not, nor a file transfer's
/// calls (a stream ends with its connection). `params` is asked for only
/// by the methods that depend on it.
pub(crate) fn resend_safe(method: &str, params: impl FnOnce() -> Value) -> bool {
    match method {
        "process/signal" | "http/request" => false,
        "fs/upload" | "fs/uploadFinish" | "fs/download" => false,
        "process/write" => params().get("writeId").is_some(),
        "fs/writeFile" => params().get("append") != Some(&Value::Bool(true)),
        _ => true,
    }
}

/// A request as the client sends it.
#[derive(Serialize)]
struct Request<'a, P: ?Sized> {
    id: i64,
    method: &'a str,
    params: &'a P,
}
