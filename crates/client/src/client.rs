//! `ExecServerClient`: one connection to an execd server.
//!
//! Callers write their frames straight to the connection (an `Outbox`); a
//! reader task routes responses to their waiting callers (by id) and process
//! notifications to the per-process channels of an [`EventRouter`]. A process's channel is registered before
//! its `process/start` is sent, so output that beats the start response is
//! kept. When the connection ends, every waiting call and every open process
//! channel gets `ConnectionLost`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use execd_environment::EnvError;
use execd_environment::{EventReceiver, EventRouter, ExitWatch};
use execd_policy::decision::ExecGate;
use execd_protocol::envelope::{Account, InitializeParams, InitializeResult};
use execd_protocol::event::{EventKind, ExitInfo, ProcessEvent};
use execd_protocol::policy::{ApproveParams, ApproveResult, DecisionParams, APPROVE, DECISION};
use execd_protocol::process::{
    ClosedNotification, ExitedNotification, OutputNotification, CLOSED, EXITED, OUTPUT,
};
use execd_protocol::{ErrorCode, Incoming, RequestId, RpcError};
use execd_transport::outbox::{Frame, Outbox};
use futures_util::{future, Sink, SinkExt, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec, LinesCodecError};
use tracing::debug;

use crate::error::ClientError;
pub use crate::websocket::ConnectOptions;
use crate::websocket::MAX_FRAME;

pub use crate::DEFAULT_TIMEOUT;

type Pending = HashMap<i64, oneshot::Sender<Result<Value, RpcError>>>;

/// State shared with the reader task.
struct Shared {
    pending: Mutex<Pending>,
    /// Answers `exec/approve` and receives `exec/decision`.
    gate: std::sync::RwLock<Option<Arc<dyn ExecGate>>>,
    router: EventRouter,
    /// `Some(reason)` once the connection has ended.
    closed: watch::Sender<Option<String>>,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn gate(&self) -> Option<Arc<dyn ExecGate>> {
        self.gate.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct Inner {
    outgoing: Arc<Outbox>,
    shared: Arc<Shared>,
    next_id: AtomicI64,
    session_id: OnceLock<String>,
    /// The server's account (`initialize` extension), if it told.
    account: OnceLock<Account>,
    target: String,
    /// Keeps a stdio server alive (killed on drop).
    _child: Option<tokio::process::Child>,
}

impl Drop for Inner {
    /// The last handle is gone: close the connection politely, and stop the reader.
    fn drop(&mut self) {
        let outbox = self.outgoing.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { outbox.finish().await });
            }
            Err(_) => outbox.close(),
        }
    }
}

/// A connection to an execd server. Cheap to clone; the connection closes
/// when the last clone is dropped.
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

/// A frame from the server.
enum InFrame {
    Text(Bytes),
    /// A binary output frame (`execd_protocol::binary`).
    Binary(Bytes),
}

impl ExecServerClient {
    /// Connect to `ws://HOST:PORT` (or `wss://`) and do the handshake; the
    /// token is `EXECD_TOKEN` or the default token file (see [`ConnectOptions`]).
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        Self::connect_with(url, ConnectOptions::default()).await
    }

    /// Connect to `ws://HOST:PORT` (or `wss://`) with `options`.
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Self, ClientError> {
        let ws = crate::websocket::open(url, &options).await?;
        let (sink, stream) = ws.split();
        let target = url.to_string();
        let incoming = stream.filter_map(move |message| {
            future::ready(match message {
                Ok(Message::Text(text)) => Some(Ok(InFrame::Text(Bytes::from(text)))),
                Ok(Message::Binary(bytes)) => Some(Ok(InFrame::Binary(bytes))),
                Ok(Message::Close(frame)) => Some(Err(crate::websocket::ended(&target, Ok(frame)))),
                Ok(_) => None,
                Err(err) => Some(Err(crate::websocket::ended(&target, Err(&err)))),
            })
        });
        let outgoing = sink.with(|frame: Frame| {
            future::ok::<_, tokio_tungstenite::tungstenite::Error>(execd_transport::ws::message(
                frame,
            ))
        });
        Self::handshake(
            url.to_string(),
            incoming,
            outgoing,
            None,
            options.binary_output,
        )
        .await
    }

    /// Start `command` (e.g. `ssh host execd serve --listen stdio`) and speak
    /// the protocol over its stdin/stdout. The child is killed when the
    /// client is dropped.
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
        let incoming =
            FramedRead::new(stdout, LinesCodec::new_with_max_length(MAX_FRAME)).map(|line| {
                line.map(|l| InFrame::Text(Bytes::from(l)))
                    .map_err(|err| err.to_string())
            });
        // Lines carry text only; we never send anything else.
        let outgoing = FramedWrite::new(stdin, LinesCodec::new()).with(|frame: Frame| {
            future::ready(match frame {
                Frame::Text(text) => Ok(text),
                Frame::Binary(_) => Err(LinesCodecError::Io(std::io::Error::other(
                    "only text frames go over stdio",
                ))),
            })
        });
        Self::handshake(target, incoming, outgoing, Some(child), false).await
    }

    async fn handshake<I, O>(
        target: String,
        incoming: I,
        outgoing: O,
        child: Option<tokio::process::Child>,
        binary_output: bool,
    ) -> Result<Self, ClientError>
    where
        I: Stream<Item = Result<InFrame, String>> + Send + Unpin + 'static,
        O: Sink<Frame> + Send + Unpin + 'static,
        O::Error: std::fmt::Display,
    {
        let outbox = Outbox::new(outgoing);
        let shared = Arc::new(Shared {
            pending: Mutex::new(HashMap::new()),
            gate: std::sync::RwLock::new(None),
            router: EventRouter::default(),
            closed: watch::Sender::new(None),
        });
        tokio::spawn(read_frames(
            incoming,
            shared.clone(),
            Arc::downgrade(&outbox),
        ));
        let client = ExecServerClient {
            inner: Arc::new(Inner {
                outgoing: outbox,
                shared,
                next_id: AtomicI64::new(1),
                session_id: OnceLock::new(),
                account: OnceLock::new(),
                target: target.clone(),
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
        let _ = client.inner.session_id.set(init.session_id);
        if let Some(account) = init.account {
            let _ = client.inner.account.set(account);
        }
        Ok(client)
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

    /// Why the connection ended, if it has.
    pub fn closed_reason(&self) -> Option<String> {
        self.inner.shared.closed.borrow().clone()
    }

    /// Resolves when the connection has ended.
    pub async fn closed(&self) {
        let mut closed = self.inner.shared.closed.subscribe();
        let _ = closed.wait_for(Option::is_some).await;
    }

    fn lost(&self) -> ClientError {
        ClientError::ConnectionLost(
            self.closed_reason()
                .unwrap_or_else(|| format!("connection to {} closed", self.inner.target)),
        )
    }

    /// Send a notification.
    pub async fn notify<P: Serialize>(&self, method: &str, params: &P) -> Result<(), ClientError> {
        let frame = json!({"method": method, "params": params}).to_string();
        if self.inner.outgoing.send(frame).await {
            Ok(())
        } else {
            Err(self.lost())
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
        if self.closed_reason().is_some() {
            return Err(self.lost());
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner.shared.pending().insert(id, tx);
        let frame = json!({"id": id, "method": method, "params": params}).to_string();
        if !self.inner.outgoing.send(frame).await {
            self.inner.shared.pending().remove(&id);
            return Err(self.lost());
        }
        let answer = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => return Err(self.lost()),
            Err(_) => {
                self.inner.shared.pending().remove(&id);
                return Err(ClientError::Timeout {
                    method: method.to_string(),
                    after: timeout,
                });
            }
        };
        let value = answer.map_err(|err| ClientError::Server {
            code: err.code,
            message: err.message,
            data: err.data,
        })?;
        serde_json::from_value(value)
            .map_err(|err| ClientError::Protocol(format!("bad result for {method}: {err}")))
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
}

async fn read_frames<I>(mut incoming: I, shared: Arc<Shared>, outgoing: std::sync::Weak<Outbox>)
where
    I: Stream<Item = Result<InFrame, String>> + Unpin,
{
    let closing = match outgoing.upgrade() {
        Some(outbox) => outbox.closing_token(),
        None => return,
    };
    let reason = loop {
        let next = tokio::select! {
            next = incoming.next() => next,
            // Every client handle is gone: stop reading, which closes the socket.
            _ = closing.cancelled() => break "the client closed the connection".to_string(),
        };
        let frame = match next {
            Some(Ok(InFrame::Text(frame))) => frame,
            Some(Ok(InFrame::Binary(frame))) => {
                match execd_protocol::binary::decode_output(frame) {
                    Ok(output) => shared.router.deliver(ProcessEvent {
                        process_id: output.process_id.into(),
                        seq: output.seq,
                        kind: EventKind::Output {
                            stream: output.stream,
                            chunk: output.chunk,
                        },
                    }),
                    Err(err) => debug!(%err, "malformed binary frame"),
                }
                continue;
            }
            Some(Err(reason)) => break reason,
            None => break "the server closed the connection".to_string(),
        };
        // The bulk of the traffic: decoded without building a JSON tree.
        if let Some(event) = fast_output(&frame) {
            shared.router.deliver(event);
            continue;
        }
        let parsed = serde_json::from_slice(&frame)
            .map_err(|err| execd_protocol::incoming::EnvelopeError {
                id: execd_protocol::ReplyId::Unknown,
                message: format!("frame is not valid JSON: {err}"),
            })
            .and_then(Incoming::from_value);
        match parsed {
            Ok(Incoming::Response {
                id: RequestId::Int(id),
                result,
            }) => {
                if let Some(waiter) = shared.pending().remove(&id) {
                    let _ = waiter.send(result);
                }
            }
            Ok(Incoming::Notification { method, params }) if method == DECISION => {
                match (
                    shared.gate(),
                    serde_json::from_value::<DecisionParams>(params),
                ) {
                    // Inline, so reports keep their order.
                    (Some(gate), Ok(decision)) => gate.report(decision).await,
                    (_, Err(err)) => debug!(%err, "malformed exec/decision"),
                    (None, Ok(_)) => {}
                }
            }
            Ok(Incoming::Notification { method, params }) => {
                if let Some(event) = process_event(&method, params) {
                    match event {
                        Ok(event) => shared.router.deliver(event),
                        Err(err) => debug!(%err, "malformed notification"),
                    }
                }
            }
            Ok(Incoming::Request { id, method, params }) => {
                // Answered from a task: the gate may take its time, and reading
                // must go on meanwhile.
                let gate = shared.gate();
                let outgoing = outgoing.clone();
                tokio::spawn(async move {
                    let result = serve_request(gate, &method, params).await;
                    let reply = match result {
                        Ok(value) => json!({"id": id, "result": value}),
                        Err(error) => json!({"id": id, "error": error}),
                    };
                    if let Some(outgoing) = outgoing.upgrade() {
                        outgoing.send(reply.to_string()).await;
                    }
                });
            }
            Ok(Incoming::Response { id, .. }) => debug!(%id, "response to an id we never use"),
            Err(err) => debug!(message = %err.message, "unparseable frame from server"),
        }
    };
    debug!(%reason, "connection ended");
    shared.closed.send_if_modified(|current| {
        current.get_or_insert(reason.clone());
        true
    });
    // Waiting calls see their sender dropped; open processes get an error.
    shared.pending().clear();
    shared.router.fail_all(EnvError::ConnectionLost(reason));
}

/// Answer a server→client request.
async fn serve_request(
    gate: Option<Arc<dyn ExecGate>>,
    method: &str,
    params: Value,
) -> Result<Value, RpcError> {
    let (APPROVE, Some(gate)) = (method, gate) else {
        return Err(RpcError::new(
            ErrorCode::MethodNotFound,
            format!("client does not handle {method:?}"),
        ));
    };
    let request: ApproveParams = serde_json::from_value(params).map_err(|err| {
        RpcError::new(
            ErrorCode::InvalidParams,
            format!("invalid exec/approve: {err}"),
        )
    })?;
    match gate.ask(request).await {
        Some(decision) => Ok(json!(ApproveResult { decision })),
        None => Err(RpcError::new(ErrorCode::Internal, "no decision")),
    }
}

/// `process/output` with borrowed strings: the base64 is decoded straight
/// from the frame.
#[derive(serde::Deserialize)]
struct OutputFrame<'a> {
    #[serde(borrow)]
    method: &'a str,
    #[serde(borrow)]
    params: OutputParams<'a>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutputParams<'a> {
    #[serde(borrow)]
    process_id: std::borrow::Cow<'a, str>,
    seq: u64,
    stream: execd_protocol::process::OutputStream,
    #[serde(borrow)]
    chunk: &'a str,
}

/// Decode an output notification quickly; `None` if the frame is anything
/// else (or unusual, e.g. escaped base64), which the general path handles.
fn fast_output(frame: &[u8]) -> Option<ProcessEvent> {
    let head = &frame[..frame.len().min(64)];
    if !head.windows(OUTPUT.len()).any(|w| w == OUTPUT.as_bytes()) {
        return None;
    }
    let parsed: OutputFrame<'_> = serde_json::from_slice(frame).ok()?;
    if parsed.method != OUTPUT {
        return None;
    }
    // SIMD base64 (the scalar decoder was 20 % of all CPU samples while
    // streaming over JSON).
    let chunk = execd_protocol::base64_bytes::decode(parsed.params.chunk.as_bytes()).ok()?;
    Some(ProcessEvent {
        process_id: parsed.params.process_id.as_ref().into(),
        seq: parsed.params.seq,
        kind: EventKind::Output {
            stream: parsed.params.stream,
            chunk: Bytes::from(chunk),
        },
    })
}

/// Decode a process notification; `None` for other methods.
fn process_event(method: &str, params: Value) -> Option<Result<ProcessEvent, serde_json::Error>> {
    let event = match method {
        OUTPUT => serde_json::from_value::<OutputNotification>(params).map(|n| ProcessEvent {
            process_id: n.process_id.into(),
            seq: n.seq,
            kind: EventKind::Output {
                stream: n.stream,
                chunk: n.chunk,
            },
        }),
        EXITED => serde_json::from_value::<ExitedNotification>(params).map(|n| ProcessEvent {
            process_id: n.process_id.into(),
            seq: n.seq,
            kind: EventKind::Exited(ExitInfo {
                code: n.exit_code,
                signal: n.signal,
            }),
        }),
        CLOSED => serde_json::from_value::<ClosedNotification>(params).map(|n| ProcessEvent {
            process_id: n.process_id.into(),
            seq: n.seq,
            kind: EventKind::Closed,
        }),
        _ => return None,
    };
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// The fast path decodes what a reference base64 encoder wrote, for
    /// every length around the SIMD block sizes, and leaves frames it cannot
    /// take to the general path.
    #[test]
    fn fast_output_decodes_every_length_exactly() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let data: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        for len in (0..200).chain([1023, 1024, 1025, 4095, 4096]) {
            let chunk = &data[..len];
            let frame = serde_json::json!({
                "method": OUTPUT,
                "params": {
                    "processId": "p",
                    "seq": 7,
                    "stream": "stdout",
                    "chunk": base64::engine::general_purpose::STANDARD.encode(chunk),
                }
            })
            .to_string();
            let event = fast_output(frame.as_bytes()).expect("an output frame");
            assert_eq!(event.seq, 7);
            match event.kind {
                EventKind::Output { chunk: got, .. } => assert_eq!(&got[..], chunk, "len {len}"),
                other => panic!("not output: {other:?}"),
            }
        }
        let bad = r#"{"method":"process/output","params":{"processId":"p","seq":1,"stream":"stdout","chunk":"!!"}}"#;
        assert!(fast_output(bad.as_bytes()).is_none());
    }
}
