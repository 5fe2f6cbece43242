//! One client connection, whatever the transport: read frames, hand them to
//! the [`Session`], and write replies and process events back through one
//! writer task. When the peer goes away (or the server shuts down), every
//! process the connection started is terminated, group and all, and reaped.

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use std::fmt::Display;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::dispatch::Session;
use crate::rpc;
use crate::ServerConfig;
use execd_core::ProcessEvent;

/// Replies waiting for the writer. Bounded: a peer that stops reading slows
/// us down instead of growing memory.
const REPLY_QUEUE: usize = 256;
/// Process events waiting for the writer; when full, supervisors stop
/// reading output, and the processes block on their full pipes.
const EVENT_QUEUE: usize = 256;

/// Frames queued behind one another before a flush.
const MAX_BATCH: usize = 64;

/// One inbound frame as the transport saw it.
#[derive(Debug)]
pub enum Inbound {
    /// A text frame (WebSocket) or line (stdio).
    Text(String),
    /// A frame that could not be taken as text; the message says why.
    Invalid(String),
}

/// Serve one connection until the peer leaves or `shutdown` fires.
pub async fn serve_connection<I, O>(
    mut incoming: I,
    outgoing: O,
    config: ServerConfig,
    shutdown: CancellationToken,
) where
    I: Stream<Item = Inbound> + Unpin,
    O: Sink<String> + Unpin + Send + 'static,
    O::Error: Display,
{
    let (replies_tx, replies_rx) = mpsc::channel(REPLY_QUEUE);
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    let mut session = Session::new(config, replies_tx, events_tx);
    let mut writer = tokio::spawn(write_frames(outgoing, replies_rx, events_rx));
    loop {
        tokio::select! {
            frame = incoming.next() => match frame {
                Some(frame) => session.handle(frame).await,
                None => break,
            },
            _ = &mut writer => break,
            _ = shutdown.cancelled() => break,
        }
    }
    debug!(
        session = session.id(),
        "connection closing; terminating its processes"
    );
    // Drop the writer (and its event queue) first so no supervisor blocks on
    // a queue nobody drains while we wait for the processes to close.
    writer.abort();
    let _ = writer.await;
    session.backend().shutdown().await;
}

async fn write_frames<O>(
    mut sink: O,
    mut replies: mpsc::Receiver<String>,
    mut events: mpsc::Receiver<ProcessEvent>,
) where
    O: Sink<String> + Unpin,
    O::Error: Display,
{
    loop {
        let frame = tokio::select! {
            Some(reply) = replies.recv() => reply,
            Some(event) = events.recv() => rpc::event_notification(event),
            else => break,
        };
        if let Err(err) = sink.feed(frame).await {
            debug!(%err, "peer stopped accepting frames");
            break;
        }
        // Queue whatever else is ready, then flush once.
        let mut batched = 0;
        while batched < MAX_BATCH {
            let frame = if let Ok(reply) = replies.try_recv() {
                reply
            } else if let Ok(event) = events.try_recv() {
                rpc::event_notification(event)
            } else {
                break;
            };
            if let Err(err) = sink.feed(frame).await {
                debug!(%err, "peer stopped accepting frames");
                return;
            }
            batched += 1;
        }
        if let Err(err) = sink.flush().await {
            debug!(%err, "peer stopped accepting frames");
            break;
        }
    }
    let _ = sink.close().await;
}
