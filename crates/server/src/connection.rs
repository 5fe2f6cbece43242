//! One client connection, whatever the transport: read frames, decode each
//! and hand its request to [`dispatch`] with the connection's [`Session`]
//! (or a response to the exec gate); everything that produces a frame (a reply, a process
//! supervisor's event) writes it straight to the connection's `Outbox`,
//! with no writer task in between. When the peer goes away (or the server
//! shuts down), every process the connection started is terminated, group
//! and all, and reaped.

use std::fmt::Display;

use execd_protocol::{Incoming, RequestId};
use execd_transport::outbox::{Frame, Outbox};
use futures_util::{Sink, Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::access::Admission;
use crate::audit;
use crate::dispatch;
use crate::methods::session::INITIALIZED;
use crate::methods::Reply;
use crate::rpc;
use crate::session::Session;
use crate::ServerConfig;

/// One inbound frame as the transport saw it.
#[derive(Debug)]
pub enum Inbound {
    /// A text frame (WebSocket) or line (stdio).
    Text(String),
    /// A frame that could not be taken as text; the message says why.
    Invalid(String),
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
    config: ServerConfig,
    shutdown: CancellationToken,
    peer: Peer,
) where
    I: Stream<Item = Inbound> + Unpin,
    O: Sink<Frame> + Send + 'static,
    O::Error: Display,
{
    let outbox = Outbox::new(outgoing);
    let mut session = Session::new(config, outbox.clone(), binary_frames);
    audit::connection_opened(&peer.address, session.id(), peer.admission);
    loop {
        tokio::select! {
            frame = incoming.next() => match frame {
                Some(frame) => handle(&mut session, frame).await,
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
    // processes to close.
    outbox.close();
    session.backend().shutdown().await;
    audit::connection_closed(&peer.address, session.id());
}

/// Handle one inbound frame: a request goes to [`dispatch`], a response to
/// the exec gate, and anything malformed is answered with an error naming
/// what was wrong.
async fn handle(session: &mut Session, frame: Inbound) {
    let text = match frame {
        Inbound::Text(text) => text,
        Inbound::Invalid(why) => return session.send(rpc::frame_error(None, why)).await,
    };
    match Incoming::parse(&text) {
        Err(err) => {
            session
                .send(rpc::frame_error(err.id.as_ref(), err.message))
                .await
        }
        Ok(Incoming::Request { id, method, params }) => {
            if let Reply::Now(result) = dispatch::route(session, &id, &method, params) {
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
}
