//! `Outbox`: the sending half of a connection, shared by every producer of
//! frames (no writer task in between, so no extra wakeup per frame).
//!
//! A frame is written and flushed by its producer while holding the lock, so
//! frames never interleave and each producer's frames keep their order. A
//! peer that stops reading makes producers wait (flow control); once the
//! connection is closing, every send returns at once. An outbox made with
//! [`Outbox::closing_with`] also closes when its parent token is cancelled
//! (server shutdown), so no producer waits on a peer that stopped reading.

use std::fmt::Display;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt};
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// One outgoing frame: JSON text, or a binary frame (see
/// `execd_protocol::binary`), which only WebSocket connections carry, or
/// the closing frame of a server going away, with its reason (WebSocket
/// close code 1001; a line transport just ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(bytes::Bytes),
    GoingAway(String),
}

type BoxSink = Pin<Box<dyn Sink<Frame, Error = String> + Send>>;

/// The sending half of a connection, shared by every producer of frames.
/// A frame is written and flushed by its producer while holding the lock, so
/// frames never interleave, and each producer's frames keep their order.
/// A peer that stops reading makes producers wait (flow control); once the
/// connection is closing, every send returns at once.
pub struct Outbox {
    sink: tokio::sync::Mutex<BoxSink>,
    closing: CancellationToken,
}

impl Outbox {
    pub fn new<O>(sink: O) -> Arc<Outbox>
    where
        O: Sink<Frame> + Send + 'static,
        O::Error: Display,
    {
        Self::with_token(sink, CancellationToken::new())
    }

    /// An outbox that also closes when `parent` is cancelled.
    pub fn closing_with<O>(sink: O, parent: &CancellationToken) -> Arc<Outbox>
    where
        O: Sink<Frame> + Send + 'static,
        O::Error: Display,
    {
        Self::with_token(sink, parent.child_token())
    }

    fn with_token<O>(sink: O, closing: CancellationToken) -> Arc<Outbox>
    where
        O: Sink<Frame> + Send + 'static,
        O::Error: Display,
    {
        let sink: BoxSink = Box::pin(sink.sink_map_err(|err| err.to_string()));
        Arc::new(Outbox {
            sink: tokio::sync::Mutex::new(sink),
            closing,
        })
    }

    /// Send one text frame. False if the connection is closing or the peer is gone.
    pub async fn send(&self, frame: String) -> bool {
        self.send_frame(Frame::Text(frame)).await
    }

    /// Send one frame of either kind.
    pub async fn send_frame(&self, frame: Frame) -> bool {
        let sent = tokio::select! {
            biased;
            _ = self.closing.cancelled() => return false,
            sent = async { self.sink.lock().await.send(frame).await } => sent,
        };
        match sent {
            Ok(()) => true,
            Err(err) => {
                debug!(%err, "peer stopped accepting frames");
                self.closing.cancel();
                false
            }
        }
    }

    /// Make every pending and future send return at once.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// A token cancelled when the connection starts closing.
    pub fn closing_token(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// Resolves once the connection is closing.
    pub async fn closed(&self) {
        self.closing.cancelled().await;
    }
}

impl Outbox {
    /// Close the sink politely (e.g. a WebSocket close frame), bounded in time.
    pub async fn finish(&self) {
        self.closing.cancel();
        let close = async { self.sink.lock().await.close().await };
        let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
    }

    /// Tell the peer why the connection ends ([`Frame::GoingAway`]) and
    /// close the sink, within `within`; every other send stops at once.
    pub async fn finish_going_away(&self, reason: &str, within: Duration) {
        self.closing.cancel();
        let close = async {
            let mut sink = self.sink.lock().await;
            if let Err(err) = sink.send(Frame::GoingAway(reason.to_string())).await {
                debug!(%err, "cannot send the close reason");
            }
            let _ = sink.close().await;
        };
        let _ = tokio::time::timeout(within, close).await;
    }
}
