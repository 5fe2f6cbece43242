//! One client connection, whatever the transport: read frames, decode each
//! and hand its request to [`dispatch`] with the connection's [`Session`]
//! (or a response to the exec gate); everything that produces a frame (a reply, a process
//! supervisor's event) writes it straight to the connection's `Outbox`,
//! with no writer task in between. When the peer goes away (or the server
//! shuts down), every process the connection started is terminated, group
//! and all, and reaped.
//!
//! Server shutdown closes the connection's `Outbox` at once, so a reply
//! that waits on a client that stopped reading gives up and the connection
//! ends within the processes' grace period; a WebSocket peer gets a close
//! frame (1001, [`SHUTDOWN_REASON`]) before its processes are terminated.

use std::fmt::Display;
use std::sync::Arc;

use execd_protocol::{Incoming, ReplyId, RequestId, RpcError};
use execd_transport::outbox::{Frame, Outbox};
use futures_util::{Sink, Stream, StreamExt};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::access::Admission;
use crate::audit;
use crate::dispatch::{self, Request};
use crate::methods::session::INITIALIZED;
use crate::methods::Reply;
use crate::rpc;
use crate::session::Session;
use crate::shared::Shared;

/// The close reason (WebSocket code 1001) every connection gets when the
/// server shuts down; clients print it.
pub const SHUTDOWN_REASON: &str =
    "execd serve is stopping; the processes of this connection are being terminated";
/// How long the close reason may take to reach a peer.
const SHUTDOWN_NOTICE_TIME: std::time::Duration = std::time::Duration::from_secs(1);

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
}

/// Who is on the other end, for the audit trail.
#[derive(Debug, Clone)]
pub struct Peer {
    /// `IP:PORT`, or `stdio`.
    pub address: String,
    /// How the connection was admitted.
    pub admission: Admission,
}

/// Serve one connection until the peer leaves or `shutdown` fires.
/// `binary_frames`: the transport can carry binary frames (WebSocket).
pub async fn serve_connection<I, O>(
    mut incoming: I,
    outgoing: O,
    binary_frames: bool,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    peer: Peer,
) where
    I: Stream<Item = Inbound> + Unpin,
    O: Sink<Frame> + Send + 'static,
    O::Error: Display,
{
    let outbox = Outbox::closing_with(outgoing, &shutdown);
    let mut session = Session::new(shared, outbox.clone(), binary_frames);
    audit::connection_opened(&peer.address, session.id(), peer.admission);
    loop {
        tokio::select! {
            frame = incoming.next() => match frame {
                Some(frame) => {
                    if !handle(&mut session, frame).await {
                        break;
                    }
                }
                None => break,
            },
            _ = outbox.closed() => break,
            _ = shutdown.cancelled() => break,
        }
    }
    debug!(
        session = session.id(),
        "connection closing; terminating its processes"
    );
    // No supervisor may wait on a peer that is gone while we wait for the
    // processes to close. A server shutting down tells the peer why first.
    if shutdown.is_cancelled() {
        outbox
            .finish_going_away(SHUTDOWN_REASON, SHUTDOWN_NOTICE_TIME)
            .await;
    }
    outbox.close();
    session.backend().shutdown().await;
    audit::connection_closed(&peer.address, session.id());
    drop(session);
    // What the connection's processes retained is freed now: hand it back
    // to the kernel rather than keep it for reuse.
    execd_process::budget::release_freed_memory();
}

/// Handle one inbound frame: a request goes to [`dispatch`], a response to
/// the exec gate, and anything malformed is answered with an error naming
/// what was wrong. False when the connection cannot go on.
async fn handle(session: &mut Session, frame: Inbound) -> bool {
    let text = match frame {
        Inbound::Text(text) => text,
        Inbound::Invalid(error) => {
            session
                .send(rpc::frame_error(&ReplyId::Unknown, error))
                .await;
            return true;
        }
        Inbound::Fatal(error) => {
            session
                .send(rpc::frame_error(&ReplyId::Unknown, error))
                .await;
            return false;
        }
    };
    match Incoming::parse_raw(&text) {
        Err(err) => {
            let error = rpc::invalid_frame(err.message);
            session.send(rpc::frame_error(&err.id, error)).await
        }
        Ok(Incoming::Request { id, method, params }) => {
            let request = Request {
                id: &id,
                method: &method,
                params,
                frame: &text,
            };
            if let Reply::Now(result) = dispatch::route(session, &request) {
                session.send(rpc::response(&id, result)).await;
            }
        }
        Ok(Incoming::Notification { method, .. }) => {
            if method != INITIALIZED {
                debug!(%method, "ignoring unknown notification");
            }
        }
        Ok(Incoming::Response { id, result }) => {
            let ours = match id {
                RequestId::Int(n) => session.gate().answer(n, result),
                RequestId::Str(_) => false,
            };
            if !ours {
                debug!(%id, "ignoring a response to no request of ours");
            }
        }
    }
    true
}
