//! One client connection, whatever the transport: read frames, decode each
//! and hand its request to [`dispatch`] with the [`Session`] it serves (or
//! a response to the exec gate); everything that produces a frame (a
//! reply, a process supervisor's event) writes it straight to the
//! session's `Outbox`, with no writer task in between.
//!
//! A connection serves a session of its own, or takes one over with
//! `initialize {resumeSessionId}` ([`crate::sessions`]). How it ends
//! decides the session's fate: a close frame (stdio: EOF) or server
//! shutdown ends it at once, every process terminated, group and all, and
//! reaped (on shutdown a WebSocket peer first gets a close frame, 1001,
//! [`SHUTDOWN_REASON`]); a connection lost without a close frame (a read error, a failed
//! send, a peer silent past the keepalive timeout) leaves it detached for a
//! resume; a takeover hands it to the new connection and closes this one
//! with WebSocket close code 4000.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use execd_protocol::envelope::InitializeParams;
use execd_protocol::process as pp;
use execd_protocol::transfer::{TransferAck, TransferEnd, TRANSFER_ACK, TRANSFER_END};
use execd_protocol::{Incoming, ReplyId, RequestId, RpcError};
use execd_transport::outbox::{boxed, BoxSink, Link, Outbox, Wire};
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::access::Admission;
use crate::audit;
use crate::dispatch::{self, Request};
use crate::methods::session::{INITIALIZE, INITIALIZED};
use crate::methods::Reply;
use crate::metrics::fs_method;
use crate::request_span::request_span;
use crate::rpc;
use crate::session::Session;
use crate::sessions::{self, Attachment, Ending, ResumeError, Sessions};
use crate::shared::Shared;

/// The close reason (WebSocket code 1001) every connection gets when the
/// server shuts down; clients print it.
pub const SHUTDOWN_REASON: &str =
    "execd serve is stopping; the processes of this connection are being terminated";
/// How long the close reason may take to reach a peer.
const SHUTDOWN_NOTICE_TIME: Duration = Duration::from_secs(1);
/// WebSocket close code of a connection whose session another took over.
pub const CLOSE_TAKEN_OVER: u16 = 4000;

/// One inbound frame as the transport saw it.
#[derive(Debug)]
pub enum Inbound {
    /// A text frame (WebSocket) or line (stdio), shared with the transport's
    /// buffer rather than copied.
    Text(Utf8Bytes),
    /// A frame that could not be taken as text: answered with this error
    /// (`"id": -1`); the connection goes on.
    Invalid(RpcError),
    /// The transport cannot go on (e.g. a frame over the size limit):
    /// answered with this error, then the connection closes.
    Fatal(RpcError),
    /// The peer closed the connection (a WebSocket close frame).
    Close,
    /// A sign of life that is no request (a ping or pong).
    Alive,
    /// A binary transfer piece (`execd_protocol::binary`, kind 2).
    Binary(bytes::Bytes),
}

/// Who is on the other end, for the audit trail.
#[derive(Debug, Clone)]
pub struct Peer {
    /// `IP:PORT`, or `stdio`.
    pub address: String,
    /// How the connection was admitted.
    pub admission: Admission,
}

/// What the transport can do.
#[derive(Debug, Clone, Copy)]
pub struct Transport {
    /// It carries binary frames (WebSocket).
    pub binary_frames: bool,
    /// The end of its stream without a close frame means lost, not closed
    /// (WebSocket; on stdio EOF is the close), and it has pings.
    pub detachable: bool,
}

/// Serve one connection until the peer leaves, the session is taken over
/// or `shutdown` fires.
pub async fn serve_connection<I, O>(
    mut incoming: I,
    outgoing: O,
    transport: Transport,
    shared: Arc<Shared>,
    sessions: Arc<Sessions>,
    shutdown: CancellationToken,
    peer: Peer,
) where
    I: Stream<Item = Inbound> + Unpin,
    O: Sink<Wire> + Send + 'static,
    O::Error: Display,
{
    let outbox = Outbox::detached_closing_with(&shutdown);
    let link = outbox.attach(boxed(outgoing)).await;
    let session = Session::new(
        shared.clone(),
        outbox,
        link.clone(),
        transport.binary_frames,
        peer.admission,
    );
    let attachment = sessions.register(session.id(), peer.admission);
    audit::connection_opened(&peer.address, session.id(), peer.admission);
    let mut connection = Connection {
        session,
        attachment,
        link,
        transport,
        peer,
        shared: shared.clone(),
        sessions: sessions.clone(),
    };
    let ending = connection.run(&mut incoming, &shutdown).await;
    // Starts still spawning are in the table once they have been answered.
    connection.session.starts.settle().await;
    // Pieces in flight died with the connection: its streams end here
    // (uploads leave nothing under their names).
    connection.session.transfers().cancel_all();
    let Connection {
        session,
        attachment,
        link,
        peer,
        ..
    } = connection;
    debug!(session = session.id(), ?ending, "connection ending");
    let mut sink = session.outbox().detach(&link).await;
    // A server shutting down tells the peer why before its processes are
    // terminated (bounded: a peer that stopped reading cannot hold it).
    if let (Ending::Shutdown, Some(sink)) = (ending, sink.as_mut()) {
        close_with(sink, 1001, SHUTDOWN_REASON, SHUTDOWN_NOTICE_TIME).await;
    }
    if let (Ending::TakenOver, Some(mut sink)) = (ending, sink) {
        tokio::spawn(async move {
            let reason = "session resumed by another connection";
            close_with(&mut sink, CLOSE_TAKEN_OVER, reason, Duration::from_secs(5)).await;
        });
    }
    audit::connection_closed(&peer.address, session.id());
    // The transport's buffers go before the sessions end, so the memory
    // handed back then includes them.
    drop(incoming);
    for session in sessions.leave(&attachment, session, ending, &peer.address) {
        sessions::end(session).await;
    }
}

/// Send a close frame (`code`, `reason`) and close `sink`, within `within`:
/// a peer that stopped reading cannot hold it.
async fn close_with(sink: &mut BoxSink<Wire>, code: u16, reason: &str, within: Duration) {
    let close = async {
        let reason = reason.to_string();
        let _ = sink.send(Wire::Close { code, reason }).await;
        let _ = sink.close().await;
    };
    let _ = tokio::time::timeout(within, close).await;
}

/// A connection and the session it serves now.
struct Connection {
    session: Session,
    attachment: Arc<Attachment>,
    link: Link,
    transport: Transport,
    peer: Peer,
    shared: Arc<Shared>,
    sessions: Arc<Sessions>,
}

impl Connection {
    async fn run<I>(&mut self, incoming: &mut I, shutdown: &CancellationToken) -> Ending
    where
        I: Stream<Item = Inbound> + Unpin,
    {
        let config = &self.shared.config;
        let (interval, timeout) = (config.keepalive_interval, config.keepalive_timeout);
        let keepalive = self.transport.detachable && !interval.is_zero() && !timeout.is_zero();
        let mut pings = tokio::time::interval_at(Instant::now() + interval, interval.max(MIN_TICK));
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let pinging = Arc::new(AtomicBool::new(false));
        let mut heard = Instant::now();
        // A frame that was already waiting when the one before was read.
        let mut read_ahead: Option<Option<Inbound>> = None;
        loop {
            let link = self.link.clone();
            let attachment = self.attachment.clone();
            let outbox = self.session.outbox();
            // Biased: a flood of frames cannot keep an ending from being seen.
            let frame = tokio::select! {
                biased;
                _ = link.lost() => return Ending::Lost,
                _ = attachment.taken_over() => return Ending::TakenOver,
                _ = outbox.closed() => return Ending::Shutdown,
                _ = shutdown.cancelled() => return Ending::Shutdown,
                _ = tokio::time::sleep_until(heard + timeout), if keepalive => {
                    debug!(peer = %self.peer.address, "nothing heard within the keepalive timeout; connection lost");
                    return Ending::Lost;
                }
                _ = pings.tick(), if keepalive => {
                    ping(&outbox, &link, &pinging, interval);
                    continue;
                }
                // Lazy: taken only when this branch is polled.
                frame = async { read_ahead.take().flatten() }, if read_ahead.is_some() => frame,
                frame = incoming.next() => frame,
            };
            heard = Instant::now();
            match frame {
                None if self.transport.detachable => return Ending::Lost,
                None | Some(Inbound::Close) => return Ending::Clean,
                Some(Inbound::Alive) => {}
                Some(frame) => {
                    // Looked at, not waited for: is a burst coming in?
                    read_ahead = incoming.next().now_or_never();
                    let more = matches!(read_ahead, Some(Some(_)));
                    self.session.starts.set_more_waiting(more);
                    if !self.handle(frame).await {
                        return Ending::Clean;
                    }
                }
            }
        }
    }

    /// Handle one inbound frame: a request goes to [`dispatch`], a response to
    /// the exec gate, and anything malformed is answered with an error naming
    /// what was wrong. False when the connection cannot go on.
    async fn handle(&mut self, frame: Inbound) -> bool {
        let text = match frame {
            Inbound::Text(text) => text,
            other => {
                self.session.starts.settle().await;
                return self.handle_other(other).await;
            }
        };
        let parsed = Incoming::parse_raw(&text);
        // Starts of a burst run side by side; anything else waits for them.
        match &parsed {
            Ok(Incoming::Request { method, .. }) if *method == pp::START => {
                if self.session.starts.side_by_side() {
                    self.session.starts.room().await;
                }
            }
            _ => self.session.starts.settle().await,
        }
        match parsed {
            Err(err) => {
                let error = rpc::invalid_frame(err.message);
                self.session.send(rpc::frame_error(&err.id, error)).await
            }
            Ok(Incoming::Request { id, method, params }) => {
                let mut resumed = false;
                if method == INITIALIZE {
                    match self.resume_if_asked(params).await {
                        Ok(took_over) => resumed = took_over,
                        Err(error) => {
                            self.session.send(rpc::response(&id, Err(error))).await;
                            return true;
                        }
                    }
                }
                let request = Request {
                    id: &id,
                    method: &method,
                    params,
                    frame: &text,
                };
                let span = request_span(&method, &text);
                let fs = fs_method(&method);
                self.session.fs_method = fs;
                let reply = span.in_scope(|| dispatch::route(&mut self.session, &request));
                self.session.fs_method = None;
                if let Reply::Now(result) = reply {
                    if let Some(fs) = fs {
                        self.shared
                            .metrics
                            .fs_operation(fs, result.as_ref().map(|_| ()));
                    }
                    self.session.send(rpc::response(&id, result)).await;
                }
                if resumed {
                    // After `initialize`'s answer: asks the lost connection
                    // may have swallowed reach the client again.
                    self.session.gate().ask_again().await;
                }
            }
            Ok(Incoming::Notification { method, params }) if method == TRANSFER_ACK => {
                match rpc::parse_params::<TransferAck>(TRANSFER_ACK, params) {
                    Ok(ack) => self.session.transfers().ack(ack),
                    Err(err) => debug!(%err, "malformed fs/transferAck"),
                }
            }
            Ok(Incoming::Notification { method, .. }) => {
                if method != INITIALIZED {
                    debug!(%method, "ignoring unknown notification");
                }
            }
            Ok(Incoming::Response { id, result }) => {
                let ours = match id {
                    RequestId::Int(n) => self.session.gate().answer(n, result),
                    RequestId::Str(_) => false,
                };
                if !ours {
                    debug!(%id, "ignoring a response to no request of ours");
                }
            }
        }
        true
    }

    /// A frame that is not text: an error to answer, or a transfer piece.
    async fn handle_other(&mut self, frame: Inbound) -> bool {
        match frame {
            Inbound::Invalid(error) => {
                self.session
                    .send(rpc::frame_error(&ReplyId::Unknown, error))
                    .await;
                true
            }
            Inbound::Fatal(error) => {
                self.session
                    .send(rpc::frame_error(&ReplyId::Unknown, error))
                    .await;
                false
            }
            Inbound::Binary(frame) => {
                self.piece(frame).await;
                true
            }
            Inbound::Text(_) | Inbound::Close | Inbound::Alive => true,
        }
    }

    /// A transfer piece: to its upload, or an error back.
    async fn piece(&mut self, frame: bytes::Bytes) {
        let end = match execd_protocol::binary::decode_piece(frame) {
            Ok(piece) if self.session.initialized => self.session.transfers().deliver(piece),
            Ok(_) => Some(TransferEnd {
                stream_id: 0,
                pieces: 0,
                bytes: 0,
                error: Some("a transfer piece before initialize".into()),
            }),
            Err(err) => {
                let error = rpc::invalid_frame(err);
                self.session
                    .send(rpc::frame_error(&ReplyId::Unknown, error))
                    .await;
                return;
            }
        };
        if let Some(end) = end {
            self.session
                .send(rpc::notification(TRANSFER_END, end))
                .await;
        }
    }

    /// `initialize {resumeSessionId}`: take that session over and serve it
    /// from now on (the `initialize` itself is then answered by it). True
    /// if a session was taken over.
    async fn resume_if_asked(
        &mut self,
        params: &serde_json::value::RawValue,
    ) -> Result<bool, RpcError> {
        // Bad params are answered by `initialize` itself.
        let Ok(params) = rpc::parse_params::<InitializeParams>(INITIALIZE, params) else {
            return Ok(false);
        };
        let Some(wanted) = params.resume_session_id else {
            return Ok(false);
        };
        if wanted == self.session.id() {
            return Ok(false);
        }
        if self.session.initialized {
            return Err(ResumeError::AlreadyInitialized(wanted).into());
        }
        let (mut resumed, attachment, took_over) = self
            .sessions
            .take_over(&wanted, self.peer.admission)
            .await?;
        // This connection's sink moves from its own (unused) session to
        // the resumed one.
        if let Some(sink) = self.session.outbox().detach(&self.link).await {
            self.link = resumed.outbox().attach(sink).await;
            resumed.set_link(self.link.clone());
            // Starts answered before now may not have reached the client:
            // one repeated identically is a retry.
            resumed.backend().set_epoch(self.link.generation());
        }
        let fresh = std::mem::replace(&mut self.session, resumed);
        self.sessions.forget(fresh.id(), &self.attachment);
        self.attachment = attachment;
        audit::session_resumed(&self.peer.address, self.session.id(), took_over);
        // It never served: no process, nothing to wait for.
        fresh.outbox().close();
        drop(fresh);
        Ok(true)
    }
}

/// The shortest keepalive tick (a zero interval disables keepalive).
const MIN_TICK: Duration = Duration::from_millis(10);

/// Send a keepalive ping from a task (one at a time): a peer that stopped
/// reading must not hold up the connection's loop.
fn ping(outbox: &Arc<Outbox<Wire>>, link: &Link, pinging: &Arc<AtomicBool>, within: Duration) {
    if pinging.swap(true, Ordering::SeqCst) {
        return;
    }
    let (outbox, link, pinging) = (outbox.clone(), link.clone(), pinging.clone());
    tokio::spawn(async move {
        let _ = tokio::time::timeout(within, outbox.send_on(&link, Wire::Ping)).await;
        pinging.store(false, Ordering::SeqCst);
    });
}
