//! One client connection, whatever the transport: read frames and hand them
//! to the [`Session`]; everything that produces a frame (a reply, a process
//! supervisor's event) writes it straight to the connection's `Outbox`,
//! with no writer task in between. When the peer goes away (or the server
//! shuts down), every process the connection started is terminated, group
//! and all, and reaped.

use std::fmt::Display;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};

use execd_process::output_log::EventSink;
use execd_protocol::binary;
use execd_protocol::event::{EventKind, ProcessEvent};
use execd_transport::outbox::{Frame, Outbox};
use futures_util::{Sink, Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::debug;

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

/// Supervisors deliver process events straight into the connection.
pub struct ConnectionEvents {
    outbox: Arc<Outbox>,
    /// The client asked for binary output frames (and the transport has them).
    binary: AtomicBool,
}

impl ConnectionEvents {
    pub fn new(outbox: Arc<Outbox>) -> Arc<ConnectionEvents> {
        Arc::new(ConnectionEvents {
            outbox,
            binary: AtomicBool::new(false),
        })
    }

    pub fn use_binary_output(&self) {
        self.binary.store(true, Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl EventSink for ConnectionEvents {
    async fn deliver(&self, event: ProcessEvent) {
        // Encoded before taking the lock: many processes encode in parallel.
        let binary = match &event.kind {
            EventKind::Output { stream, chunk } if self.binary.load(Ordering::Relaxed) => {
                binary::encode_output(&event.process_id, event.seq, *stream, chunk)
            }
            _ => None,
        };
        let frame = match binary {
            Some(bytes) => Frame::Binary(bytes),
            None => Frame::Text(rpc::event_notification(event)),
        };
        self.outbox.send_frame(frame).await;
    }
}

/// Serve one connection until the peer leaves or `shutdown` fires.
/// `binary_frames`: the transport can carry binary frames (WebSocket).
pub async fn serve_connection<I, O>(
    mut incoming: I,
    outgoing: O,
    binary_frames: bool,
    config: ServerConfig,
    shutdown: CancellationToken,
) where
    I: Stream<Item = Inbound> + Unpin,
    O: Sink<Frame> + Send + 'static,
    O::Error: Display,
{
    let outbox = Outbox::new(outgoing);
    let mut session = Session::new(config, outbox.clone(), binary_frames);
    loop {
        tokio::select! {
            frame = incoming.next() => match frame {
                Some(frame) => session.handle(frame).await,
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
}
