//! One client connection, whatever the transport: read frames and hand them
//! to the [`Session`]; everything that produces a frame (a reply, a process
//! supervisor's event) writes it straight to the connection's `Outbox`,
//! with no writer task in between. When the peer goes away (or the server
//! shuts down), every process the connection started is terminated, group
//! and all, and reaped.

use std::fmt::Display;
use std::sync::Arc;

use execd_core::outbox::Outbox;
use execd_core::{EventSink, ProcessEvent};
use futures_util::{Sink, Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::dispatch::Session;
use crate::rpc;
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
pub struct ConnectionEvents(pub Arc<Outbox>);

#[async_trait::async_trait]
impl EventSink for ConnectionEvents {
    async fn deliver(&self, event: ProcessEvent) {
        // Encoded before taking the lock: many processes encode in parallel.
        let frame = rpc::event_notification(event);
        self.0.send(frame).await;
    }
}

/// Serve one connection until the peer leaves or `shutdown` fires.
pub async fn serve_connection<I, O>(
    mut incoming: I,
    outgoing: O,
    config: ServerConfig,
    shutdown: CancellationToken,
) where
    I: Stream<Item = Inbound> + Unpin,
    O: Sink<String> + Send + 'static,
    O::Error: Display,
{
    let outbox = Outbox::new(outgoing);
    let mut session = Session::new(config, outbox.clone());
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
