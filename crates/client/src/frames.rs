//! Reading one connection: frames from the server are routed, responses
//! to their waiting callers (by id), process notifications (JSON or binary)
//! to the per-process channels, `exec/approve` and `network/approve` to the
//! exec gate (and `exec/decision`, `network/decision` too); silence
//! past the keepalive timeout counts as a lost connection. Also the two
//! ends of a WebSocket as the client uses them ([`split_socket`]).

use execd_protocol::fs_watch::{ChangedNotification, CHANGED};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use execd_policy::decision::ExecGate;
use execd_protocol::event::{EventKind, ExitInfo, ProcessEvent};
use execd_protocol::network::{self, NetworkApproveParams, NetworkDecisionParams, NetworkDialect};
use execd_protocol::policy::{ApproveParams, ApproveResult, DecisionParams, APPROVE, DECISION};
use execd_protocol::process::{
    ClosedNotification, ExitedNotification, OutputNotification, CLOSED, EXITED, OUTPUT,
};
use execd_protocol::transfer::{TRANSFER_ACK, TRANSFER_END};
use execd_protocol::{ErrorCode, Incoming, RequestId, RpcError};
use execd_transport::outbox::{Outbox, Wire};
use futures_util::{future, SinkExt, Stream, StreamExt};
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::asks::Seen;
use crate::state::{ClientOutbox, Shared};
use crate::websocket::{ended, Socket};

/// A frame from the server.
pub(crate) enum InFrame {
    Text(Bytes),
    /// A binary output frame (`execd_protocol::binary`).
    Binary(Bytes),
    /// A ping or pong: the server is alive.
    Alive,
}

/// How reading a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// Every client handle is gone.
    Dropped,
    /// The server closed the connection (a close frame): the session is over.
    Closed(String),
    /// Lost without a close (reset, error, silence): the session may be resumed.
    Lost(String),
}

impl End {
    pub(crate) fn reason(&self) -> String {
        match self {
            End::Dropped => "the client closed the connection".into(),
            End::Closed(reason) | End::Lost(reason) => reason.clone(),
        }
    }
}

/// What the server sends, as frames or the end of the connection.
pub(crate) type FrameStream = Pin<Box<dyn Stream<Item = Result<InFrame, End>> + Send>>;

/// A WebSocket to `url` as the client uses it: frames from the server
/// (its end worded by [`crate::websocket::ended`]), and an outbox.
pub(crate) fn split_socket(ws: Socket, url: &str) -> (FrameStream, Arc<ClientOutbox>) {
    let (sink, stream) = ws.split();
    let target = url.to_string();
    let incoming = stream.map(move |message| match message {
        Ok(Message::Text(text)) => Ok(InFrame::Text(Bytes::from(text))),
        Ok(Message::Binary(bytes)) => Ok(InFrame::Binary(bytes)),
        Ok(Message::Close(frame)) => Err(End::Closed(ended(&target, Ok(frame)))),
        Ok(_) => Ok(InFrame::Alive),
        Err(err) => Err(End::Lost(ended(&target, Err(&err)))),
    });
    let outgoing = sink.with(|frame: Wire| {
        future::ok::<_, tokio_tungstenite::tungstenite::Error>(execd_transport::ws::message(frame))
    });
    (Box::pin(incoming), Outbox::new(outgoing))
}

/// Send a ping every `interval` until the outbox closes.
pub(crate) async fn ping(outbox: Arc<ClientOutbox>, interval: Duration) {
    if interval.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            _ = outbox.closed() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if !outbox.send_frame(Wire::Ping).await {
            return;
        }
    }
}

/// Read `incoming` until the connection ends; `silence` (non-zero) bounds
/// the time between two frames.
pub(crate) async fn read_frames(
    incoming: &mut FrameStream,
    shared: &Arc<Shared>,
    outbox: &Arc<ClientOutbox>,
    dropped: &CancellationToken,
    silence: Duration,
) -> End {
    let closing = outbox.closing_token();
    loop {
        let next = async {
            if silence.is_zero() {
                Ok(incoming.next().await)
            } else {
                tokio::time::timeout(silence, incoming.next()).await
            }
        };
        let next = tokio::select! {
            biased;
            // Every client handle is gone: stop reading, which closes the socket.
            _ = dropped.cancelled() => return End::Dropped,
            _ = closing.cancelled() => return End::Lost("the connection failed while sending".into()),
            next = next => next,
        };
        let frame = match next {
            Err(_) => return End::Lost(format!("no word from the server for {silence:?}")),
            Ok(None) => return End::Lost("the connection ended without a close".to_string()),
            Ok(Some(Err(end))) => return end,
            Ok(Some(Ok(InFrame::Alive))) => continue,
            Ok(Some(Ok(InFrame::Text(frame)))) => frame,
            Ok(Some(Ok(InFrame::Binary(frame))))
                if frame.first() == Some(&execd_protocol::binary::KIND_PIECE) =>
            {
                match execd_protocol::binary::decode_piece(frame) {
                    Ok(piece) => shared.transfers.piece(piece),
                    Err(err) => debug!(%err, "malformed transfer piece"),
                }
                continue;
            }
            Ok(Some(Ok(InFrame::Binary(frame)))) => {
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
        };
        handle_text(&frame, shared, outbox).await;
    }
}

async fn handle_text(frame: &[u8], shared: &Arc<Shared>, outbox: &Arc<ClientOutbox>) {
    // The bulk of the traffic: decoded without building a JSON tree.
    if let Some(event) = fast_output(frame) {
        shared.router.deliver(event);
        return;
    }
    // Params and results stay text until their receiver decodes them.
    let parsed = std::str::from_utf8(frame)
        .map_err(|err| execd_protocol::incoming::EnvelopeError {
            id: execd_protocol::ReplyId::Unknown,
            message: format!("frame is not UTF-8: {err}"),
        })
        .and_then(Incoming::parse_raw);
    match parsed {
        Ok(Incoming::Response {
            id: RequestId::Int(id),
            result,
        }) => shared.answer(id, result),
        Ok(Incoming::Notification { method, params }) if method == DECISION => {
            match (
                shared.gate(),
                serde_json::from_str::<DecisionParams>(params.get()),
            ) {
                // Inline, so reports keep their order.
                (Some(gate), Ok(decision)) => gate.report(decision).await,
                (_, Err(err)) => debug!(%err, "malformed exec/decision"),
                (None, Ok(_)) => {}
            }
        }
        Ok(Incoming::Notification { method, params }) if method == CHANGED => {
            match serde_json::from_str::<ChangedNotification>(params.get()) {
                Ok(changed) => shared.watches.deliver(changed),
                Err(err) => debug!(%err, "malformed fs/changed"),
            }
        }

        Ok(Incoming::Notification { method, params }) if method == TRANSFER_ACK => {
            match serde_json::from_str(params.get()) {
                Ok(ack) => shared.transfers.ack(ack),
                Err(err) => debug!(%err, "malformed fs/transferAck"),
            }
        }
        Ok(Incoming::Notification { method, params }) if method == TRANSFER_END => {
            match serde_json::from_str(params.get()) {
                Ok(end) => shared.transfers.end(end),
                Err(err) => debug!(%err, "malformed fs/transferEnd"),
            }
        }

        Ok(Incoming::Notification { method, params }) if method == network::DECISION => {
            match (
                shared.gate(),
                serde_json::from_str::<NetworkDecisionParams>(params.get()),
            ) {
                (Some(gate), Ok(decision)) => {
                    gate.report_network(decision, NetworkDialect::Execd).await
                }
                (_, Err(err)) => debug!(%err, "malformed network/decision"),
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
            let outgoing = Arc::downgrade(outbox);
            let gate = match shared.asks.arrived(&id) {
                Seen::New => shared.gate(),
                Seen::Deciding => {
                    debug!(%id, "asked again while deciding");
                    return;
                }
                Seen::Answered(reply) => {
                    let shared = shared.clone();
                    tokio::spawn(async move { shared.send_reply(outgoing, reply).await });
                    return;
                }
            };
            let shared = shared.clone();
            let params = params.to_owned();
            tokio::spawn(async move {
                let result = serve_request(gate, &method, &params).await;
                let reply = match result {
                    Ok(value) => json!({"id": id, "result": value}),
                    Err(error) => json!({"id": id, "error": error}),
                }
                .to_string();
                shared.asks.answered(&id, &reply);
                shared.send_reply(outgoing, reply).await;
            });
        }
        Ok(Incoming::Response { id, .. }) => debug!(%id, "response to an id we never use"),
        Err(err) => debug!(message = %err.message, "unparseable frame from server"),
    }
}

/// Answer a server→client request.
async fn serve_request(
    gate: Option<Arc<dyn ExecGate>>,
    method: &str,
    params: &RawValue,
) -> Result<Value, RpcError> {
    let gate = match (method, gate) {
        (APPROVE | network::APPROVE, Some(gate)) => gate,
        _ => {
            return Err(RpcError::new(
                ErrorCode::MethodNotFound,
                format!("client does not handle {method:?}"),
            ))
        }
    };
    let invalid = |err: serde_json::Error| {
        RpcError::new(ErrorCode::InvalidParams, format!("invalid {method}: {err}"))
    };
    let no_decision = || RpcError::new(ErrorCode::Internal, "no decision");
    if method == network::APPROVE {
        let request: NetworkApproveParams = serde_json::from_str(params.get()).map_err(invalid)?;
        let result = gate.ask_network(request, NetworkDialect::Execd).await;
        return result.map(|result| json!(result)).ok_or_else(no_decision);
    }
    let request: ApproveParams = serde_json::from_str(params.get()).map_err(invalid)?;
    match gate.ask(request).await {
        Some(decision) => Ok(json!(ApproveResult { decision })),
        None => Err(no_decision()),
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
fn process_event(
    method: &str,
    params: &RawValue,
) -> Option<Result<ProcessEvent, serde_json::Error>> {
    let event = match method {
        OUTPUT => serde_json::from_str::<OutputNotification>(params.get()).map(|n| ProcessEvent {
            process_id: n.process_id.into(),
            seq: n.seq,
            kind: EventKind::Output {
                stream: n.stream,
                chunk: n.chunk,
            },
        }),
        EXITED => serde_json::from_str::<ExitedNotification>(params.get()).map(|n| ProcessEvent {
            process_id: n.process_id.into(),
            seq: n.seq,
            kind: EventKind::Exited(ExitInfo {
                code: n.exit_code,
                signal: n.signal,
            }),
        }),
        CLOSED => serde_json::from_str::<ClosedNotification>(params.get()).map(|n| ProcessEvent {
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
