//! The driver of a client's session: reads the current connection and,
//! when it is lost without a close, resumes the session on a new one.
//!
//! A resume: attempts with backoff (`ReconnectPolicy`) until one connects
//! and `initialize {resumeSessionId}` answers with the same session, the
//! server says the session is unknown (it ended: grace over, or a server
//! that does not resume), nothing listens at the address any more (the
//! server process, which held the session, is gone), or the policy gives up. Then the new connection
//! takes over, the calls in flight that are safe to repeat are sent again,
//! and every process channel open at the loss catches up with `process/read
//! afterSeq` (all retained output after the last seq it delivered, merged
//! with the live notifications by seq in the router). Whatever ends the
//! session ends it for every call and channel, with `ConnectionLost`. A
//! client dropped while reconnecting resumes once more only to close the
//! session cleanly, so the server ends it now (as on a clean close).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use execd_protocol::event::{EventKind, ExitInfo, ProcessEvent};
use execd_protocol::process::OutputChunk;
use execd_protocol::ErrorCode;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::error::ClientError;
use crate::frames::{read_frames, split_socket, End, FrameStream};
use crate::state::{ClientOutbox, LinkState, Shared};
use crate::websocket::{ConnectOptions, ReconnectPolicy};
use crate::DEFAULT_TIMEOUT;

/// Where and how to reconnect (WebSocket connections only).
pub(crate) struct Resume {
    pub(crate) url: String,
    pub(crate) options: ConnectOptions,
}

/// Read connection after connection until the session ends.
pub(crate) async fn drive(
    mut incoming: FrameStream,
    mut outbox: Arc<ClientOutbox>,
    shared: Arc<Shared>,
    dropped: CancellationToken,
    session: Arc<OnceLock<String>>,
    resume: Option<Resume>,
) {
    let keepalive =
        resume
            .as_ref()
            .map(|r| r.options.keepalive)
            .unwrap_or(crate::websocket::Keepalive {
                interval: Duration::ZERO,
                timeout: Duration::ZERO,
            });
    let mut catching_up: Option<JoinHandle<()>> = None;
    let reason = loop {
        tokio::spawn(crate::frames::ping(outbox.clone(), keepalive.interval));
        let end = read_frames(&mut incoming, &shared, &outbox, &dropped, keepalive.timeout).await;
        if end == End::Dropped {
            // A clean end (close frame): the server ends the session now.
            outbox.finish().await;
        } else {
            outbox.close();
        }
        let (End::Lost(reason), Some(resume), Some(session)) = (&end, &resume, session.get())
        else {
            break end.reason();
        };
        let Some(policy) = resume.options.reconnect.clone() else {
            break end.reason();
        };
        info!(%reason, "connection lost; resuming session {session}");
        if let Some(task) = catching_up.take() {
            // Stopped before the channels catch up anew: a catch-up whose
            // read was answered merges it and marks the channel caught up
            // with no await in between, so an abort only takes effect
            // after that. Marked after `catch_up_all` below, the channel
            // would stop holding live events past its gap, and the first
            // one on the next connection would read as lost output.
            task.abort();
            let _ = task.await;
        }
        shared.link().outbox = None;
        shared.state.send_replace(LinkState::Reconnecting {
            reason: reason.clone(),
        });
        let behind = shared.router.catch_up_all();
        match reconnect(resume, &policy, session, &shared, &dropped).await {
            Ok((next_incoming, next_outbox)) => {
                incoming = next_incoming;
                outbox = next_outbox.clone();
                let shared = shared.clone();
                catching_up = Some(tokio::spawn(async move {
                    let resend = shared.take_over(next_outbox.clone());
                    for frame in resend {
                        next_outbox.send(frame).await;
                    }
                    shared.state.send_replace(LinkState::Connected);
                    for (id, _) in behind {
                        catch_up(&shared, &id).await;
                    }
                }));
            }
            Err(reason) => {
                if dropped.is_cancelled() {
                    end_detached(resume, &policy, session, &shared).await;
                }
                break reason;
            }
        }
    };
    if let Some(task) = catching_up {
        task.abort();
    }
    debug!(%reason, "session ended");
    shared.end(reason);
}

/// Resume `session` on a new connection, with backoff; the error says why
/// the session is over.
async fn reconnect(
    resume: &Resume,
    policy: &ReconnectPolicy,
    session: &str,
    shared: &Arc<Shared>,
    dropped: &CancellationToken,
) -> Result<(FrameStream, Arc<ClientOutbox>), String> {
    let deadline = Instant::now() + policy.give_up_after;
    let mut delay = policy.first_delay;
    let mut last = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "could not resume session {session} within {:?}: {last}",
                policy.give_up_after
            ));
        }
        let attempt = attempt(
            resume,
            session,
            shared,
            dropped,
            policy.attempt_timeout.min(left),
        );
        match tokio::time::timeout(policy.attempt_timeout.min(left), attempt).await {
            Ok(Ok(connection)) => return Ok(connection),
            Ok(Err(Attempt::Gone(reason))) => return Err(reason),
            Ok(Err(Attempt::Failed(reason))) => last = reason,
            Err(_) => last = "timed out".into(),
        }
        debug!(%last, ?delay, "resume attempt failed");
        tokio::select! {
            _ = dropped.cancelled() => return Err("the client closed the connection".into()),
            _ = tokio::time::sleep(delay.min(deadline.saturating_duration_since(Instant::now()))) => {}
        }
        delay = (delay * 2).min(policy.max_delay);
    }
}

/// The client was dropped while reconnecting: take the session over on a
/// connection of its own only to close that cleanly (a close frame), so
/// the server ends the session and its processes now rather than after its
/// detach grace. One attempt within the policy's `attempt_timeout`;
/// failing that, the grace ends it.
async fn end_detached(
    resume: &Resume,
    policy: &ReconnectPolicy,
    session: &str,
    shared: &Arc<Shared>,
) {
    let live = CancellationToken::new();
    let timeout = policy.attempt_timeout;
    match tokio::time::timeout(timeout, attempt(resume, session, shared, &live, timeout)).await {
        Ok(Ok((incoming, outbox))) => {
            outbox.finish().await;
            drop(incoming);
            info!("session {session} ended: the client closed while reconnecting");
        }
        Ok(Err(Attempt::Gone(reason) | Attempt::Failed(reason))) => {
            debug!(%reason, "could not end session {session}; the server's grace will");
        }
        Err(_) => debug!("could not end session {session} in time; the server's grace will"),
    }
}

enum Attempt {
    /// Try again.
    Failed(String),
    /// The session is over.
    Gone(String),
}

/// One attempt: connect, `initialize {resumeSessionId}`, `initialized`.
async fn attempt(
    resume: &Resume,
    session: &str,
    shared: &Arc<Shared>,
    dropped: &CancellationToken,
    timeout: Duration,
) -> Result<(FrameStream, Arc<ClientOutbox>), Attempt> {
    let ws = match crate::websocket::open(&resume.url, &resume.options, timeout).await {
        Ok(ws) => ws,
        // Credentials no longer accepted: no point in trying again.
        Err(err @ ClientError::Unauthorized { .. }) => return Err(Attempt::Gone(err.to_string())),
        // Nothing listens: the server process is gone, and its sessions with it.
        Err(err @ ClientError::NothingListens { .. }) => {
            return Err(Attempt::Gone(format!("the session is gone: {err}")))
        }
        Err(err) => return Err(Attempt::Failed(err.to_string())),
    };
    let (mut incoming, outbox) = split_socket(ws, &resume.url);
    let id = shared.next_id();
    let params = json!({
        "clientName": "execd-client",
        "binaryOutput": resume.options.binary_output,
        "resumeSessionId": session,
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    shared.expect_answer(id, tx);
    let frame = json!({"id": id, "method": "initialize", "params": params}).to_string();
    if !outbox.send(frame).await {
        shared.forget_answer(id);
        return Err(Attempt::Failed("the new connection failed".into()));
    }
    // Frames before the answer (notifications) are routed as usual.
    let answer = tokio::select! {
        end = read_frames(&mut incoming, shared, &outbox, dropped, Duration::ZERO) => {
            shared.forget_answer(id);
            return Err(Attempt::Failed(end.reason()));
        }
        answer = rx => answer,
    };
    let result = match answer {
        Ok(Ok(result)) => result,
        Ok(Err(ClientError::Server { code, message, .. }))
            if code == ErrorCode::InvalidRequest.code() =>
        {
            return Err(Attempt::Gone(format!("the session is gone: {message}")));
        }
        Ok(Err(err)) => return Err(Attempt::Failed(err.to_string())),
        Err(_) => return Err(Attempt::Failed("no answer to initialize".into())),
    };
    let resumed = serde_json::from_str::<Value>(result.get()).unwrap_or_default();
    if resumed.get("sessionId").and_then(Value::as_str) != Some(session) {
        outbox.finish().await;
        return Err(Attempt::Gone(format!(
            "the server did not resume session {session} (it does not support resuming)"
        )));
    }
    if !outbox
        .send(json!({"method": "initialized", "params": {}}).to_string())
        .await
    {
        return Err(Attempt::Failed("the new connection failed".into()));
    }
    info!("session {session} resumed");
    Ok((incoming, outbox))
}

/// What `process/read` returns, with the seqs of the exit and close
/// (`exitedSeq`, `closedSeq`) a resuming client needs.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct CatchUpRead {
    chunks: Vec<OutputChunk>,
    exited: bool,
    exit_code: Option<i32>,
    #[serde(default)]
    signal: Option<String>,
    closed: bool,
    #[serde(default)]
    exited_seq: Option<u64>,
    #[serde(default)]
    closed_seq: Option<u64>,
}

/// Bring the channel of process `id` up to date after a resume: read
/// everything retained after what it delivered, and merge.
async fn catch_up(shared: &Shared, id: &str) {
    let Some((next_seq, _)) = shared.router.progress(id) else {
        return;
    };
    let params = json!({"processId": id, "afterSeq": next_seq - 1, "waitMs": 0});
    let read = match shared.call("process/read", &params, DEFAULT_TIMEOUT).await {
        Ok(result) => serde_json::from_str::<CatchUpRead>(result.get())
            .map_err(|err| ClientError::Protocol(format!("bad process/read result: {err}"))),
        Err(err) => Err(err),
    };
    match read {
        Ok(read) => {
            for event in events_of(id, read) {
                shared.router.deliver(event);
            }
        }
        // Not (yet) known to the server: its start is being sent again,
        // and its events will come live from seq 1.
        Err(ClientError::Server { .. }) => {}
        // Lost again: the next resume catches up.
        Err(ClientError::ConnectionLost(_)) => return,
        Err(err) => debug!(%err, "catching up {id}"),
    }
    shared.router.caught_up(id);
}

/// The events in a `process/read` result, in seq order.
fn events_of(id: &str, read: CatchUpRead) -> Vec<ProcessEvent> {
    let process_id: Arc<str> = Arc::from(id);
    let mut events: Vec<ProcessEvent> = read
        .chunks
        .into_iter()
        .map(|chunk| ProcessEvent {
            process_id: process_id.clone(),
            seq: chunk.seq,
            kind: EventKind::Output {
                stream: chunk.stream,
                chunk: chunk.chunk,
            },
        })
        .collect();
    if let (true, Some(seq)) = (read.exited, read.exited_seq) {
        events.push(ProcessEvent {
            process_id: process_id.clone(),
            seq,
            kind: EventKind::Exited(ExitInfo {
                code: read.exit_code.unwrap_or(-1),
                signal: read.signal,
            }),
        });
    }
    if let (true, Some(seq)) = (read.closed, read.closed_seq) {
        events.push(ProcessEvent {
            process_id,
            seq,
            kind: EventKind::Closed,
        });
    }
    events.sort_by_key(|event| event.seq);
    events
}
