//! `Outbox`: the sending half of a connection, shared by every producer of
//! frames (no writer task in between, so no extra wakeup per frame).
//!
//! A frame is written and flushed by its producer while holding the lock, so
//! frames never interleave and each producer's frames keep their order. A
//! peer that stops reading makes producers wait (flow control); once the
//! outbox is closing, every send returns at once. An outbox made with
//! [`Outbox::closing_with`] also closes when its parent token is cancelled
//! (server shutdown), so no producer waits on a peer that stopped reading.
//!
//! An outbox can outlive its connection (a server session that waits for a
//! resume): [`Outbox::detach`] takes the connection's sink away (a send in
//! progress on it gives up at once, which also frees a producer stuck on a
//! half-open peer), sends meanwhile wait, and [`Outbox::attach`] gives it a
//! new one. Each attached sink is a [`Link`]: [`Outbox::send_on`] sends
//! only on a given link (a reply belongs to the connection that asked).

use std::fmt::Display;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Sink, SinkExt};
use tokio::sync::watch;
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
}

/// What a server puts on a WebSocket: data frames and the control frames
/// it sends itself (keepalive pings; a close with a code of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    Data(Frame),
    Ping,
    Close { code: u16, reason: String },
}

impl From<Frame> for Wire {
    fn from(frame: Frame) -> Wire {
        Wire::Data(frame)
    }
}

/// The sink of one connection, type-erased.
pub type BoxSink<F> = Pin<Box<dyn Sink<F, Error = String> + Send>>;

/// Erase a sink's type (its errors become text).
pub fn boxed<F, O>(sink: O) -> BoxSink<F>
where
    O: Sink<F> + Send + 'static,
    O::Error: Display,
{
    Box::pin(TextErrors(Box::pin(sink)))
}

/// A sink whose errors become text every time it fails. (`sink_map_err`
/// takes its function once and panics on a second error, and a broken
/// connection's sink fails again when it is closed or sent a close frame.)
struct TextErrors<O>(Pin<Box<O>>);

impl<F, O> Sink<F> for TextErrors<O>
where
    O: Sink<F>,
    O::Error: Display,
{
    type Error = String;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        self.0
            .as_mut()
            .poll_ready(cx)
            .map_err(|err| err.to_string())
    }

    fn start_send(mut self: Pin<&mut Self>, item: F) -> Result<(), String> {
        self.0
            .as_mut()
            .start_send(item)
            .map_err(|err| err.to_string())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        self.0
            .as_mut()
            .poll_flush(cx)
            .map_err(|err| err.to_string())
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        self.0
            .as_mut()
            .poll_close(cx)
            .map_err(|err| err.to_string())
    }
}

/// Feed `frames` to `sink` and flush once.
async fn write_all<F>(sink: &mut BoxSink<F>, frames: Vec<F>) -> Result<(), String> {
    for frame in frames {
        sink.feed(frame).await?;
    }
    sink.flush().await
}

/// One attached sink: its generation and a token cancelled once it is
/// lost (a send to it failed) or detached.
#[derive(Debug, Clone)]
pub struct Link {
    generation: u64,
    lost: CancellationToken,
}

impl Link {
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Resolves once the link is lost or detached.
    pub async fn lost(&self) {
        self.lost.cancelled().await
    }

    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }
}

struct Attached<F> {
    sink: BoxSink<F>,
    link: Link,
}

/// The sending half of a connection (or of a session across connections),
/// shared by every producer of frames.
pub struct Outbox<F = Frame> {
    slot: tokio::sync::Mutex<Option<Attached<F>>>,
    /// The link attached now, for senders waiting while detached.
    current: watch::Sender<Option<Link>>,
    closing: CancellationToken,
    generations: AtomicU64,
    /// Made to outlive its sinks: a failed send loses the link only
    /// (otherwise it closes the whole outbox, as a connection's does).
    detachable: bool,
}

/// What became of one attempt to send on a link.
enum Attempt<F> {
    Sent,
    /// The link failed, was detached or the outbox is closing.
    Failed,
    /// Another link is attached now: the frames are still ours.
    Stale(F),
}

impl<F: Send + 'static> Outbox<F> {
    pub fn new<O>(sink: O) -> Arc<Outbox<F>>
    where
        O: Sink<F> + Send + 'static,
        O::Error: Display,
    {
        Self::with_token(Some(boxed(sink)), CancellationToken::new(), false)
    }

    /// An outbox that also closes when `parent` is cancelled.
    pub fn closing_with<O>(sink: O, parent: &CancellationToken) -> Arc<Outbox<F>>
    where
        O: Sink<F> + Send + 'static,
        O::Error: Display,
    {
        Self::with_token(Some(boxed(sink)), parent.child_token(), false)
    }

    /// An outbox with no sink yet (see [`Outbox::attach`]) that closes when
    /// `parent` is cancelled.
    pub fn detached_closing_with(parent: &CancellationToken) -> Arc<Outbox<F>> {
        Self::with_token(None, parent.child_token(), true)
    }

    fn with_token(
        sink: Option<BoxSink<F>>,
        closing: CancellationToken,
        detachable: bool,
    ) -> Arc<Outbox<F>> {
        let outbox = Outbox {
            slot: tokio::sync::Mutex::new(None),
            current: watch::Sender::new(None),
            closing,
            generations: AtomicU64::new(0),
            detachable,
        };
        if let Some(sink) = sink {
            let link = outbox.new_link();
            outbox.current.send_replace(Some(link.clone()));
            *outbox.slot.try_lock().expect("a new outbox is not locked") =
                Some(Attached { sink, link });
        }
        Arc::new(outbox)
    }

    fn new_link(&self) -> Link {
        Link {
            generation: self.generations.fetch_add(1, Ordering::Relaxed),
            lost: CancellationToken::new(),
        }
    }

    /// Give the outbox a (new) sink; a link still attached is detached
    /// first. Sends waiting for a sink go on it.
    pub async fn attach(&self, sink: BoxSink<F>) -> Link {
        if let Some(old) = self.link() {
            // Its sink is dropped: whoever wanted it detaches it first.
            drop(self.detach(&old).await);
        }
        let link = self.new_link();
        *self.slot.lock().await = Some(Attached {
            sink,
            link: link.clone(),
        });
        self.current.send_replace(Some(link.clone()));
        link
    }

    /// Take `link`'s sink away (if it is still attached): a send in progress
    /// on it gives up at once; later sends wait for the next attach.
    pub async fn detach(&self, link: &Link) -> Option<BoxSink<F>> {
        link.lost.cancel();
        self.current.send_if_modified(|current| {
            let ours = current
                .as_ref()
                .is_some_and(|now| now.generation == link.generation);
            if ours {
                *current = None;
            }
            ours
        });
        let mut slot = self.slot.lock().await;
        if slot
            .as_ref()
            .is_some_and(|attached| attached.link.generation == link.generation)
        {
            return slot.take().map(|attached| attached.sink);
        }
        None
    }

    /// The link attached now.
    pub fn link(&self) -> Option<Link> {
        self.current.borrow().clone()
    }

    /// Send one text frame. False if the outbox is closing or the peer is gone.
    pub async fn send(&self, frame: String) -> bool
    where
        F: From<Frame>,
    {
        self.send_frame(Frame::Text(frame)).await
    }

    /// Send one frame on whatever link is attached, waiting for one while
    /// none is. False if the outbox is closing or the frame was lost with
    /// its link.
    pub async fn send_frame(&self, frame: impl Into<F>) -> bool {
        self.send_frames(vec![frame.into()]).await
    }

    /// Send frames in order, written together and flushed once (one write
    /// to the peer when they fit the sink's buffer), as [`Outbox::send_frame`].
    pub async fn send_frames(&self, mut frames: Vec<F>) -> bool {
        let mut current = self.current.subscribe();
        loop {
            let link = current.borrow_and_update().clone();
            match link {
                Some(link) if !link.is_lost() => match self.attempt(&link, frames).await {
                    Attempt::Sent => return true,
                    Attempt::Failed => return false,
                    Attempt::Stale(back) => frames = back,
                },
                _ => {
                    tokio::select! {
                        biased;
                        _ = self.closing.cancelled() => return false,
                        changed = current.changed() => if changed.is_err() {
                            return false;
                        },
                    }
                }
            }
        }
    }

    /// Send one frame on `link` only: false at once if another (or no)
    /// link is attached.
    pub async fn send_on(&self, link: &Link, frame: impl Into<F>) -> bool {
        if link.is_lost() {
            return false;
        }
        matches!(self.attempt(link, vec![frame.into()]).await, Attempt::Sent)
    }

    async fn attempt(&self, link: &Link, frames: Vec<F>) -> Attempt<Vec<F>> {
        let sent = tokio::select! {
            biased;
            _ = self.closing.cancelled() => return Attempt::Failed,
            _ = link.lost.cancelled() => return Attempt::Failed,
            sent = async {
                let mut slot = self.slot.lock().await;
                match slot.as_mut() {
                    Some(attached) if attached.link.generation == link.generation => {
                        Ok(write_all(&mut attached.sink, frames).await)
                    }
                    _ => Err(frames),
                }
            } => sent,
        };
        match sent {
            Ok(Ok(())) => Attempt::Sent,
            Ok(Err(err)) => {
                debug!(%err, "peer stopped accepting frames");
                link.lost.cancel();
                if !self.detachable {
                    self.closing.cancel();
                }
                Attempt::Failed
            }
            Err(frames) => Attempt::Stale(frames),
        }
    }

    /// Make every pending and future send return at once.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// A token cancelled when the outbox starts closing.
    pub fn closing_token(&self) -> CancellationToken {
        self.closing.clone()
    }

    /// Resolves once the outbox is closing.
    pub async fn closed(&self) {
        self.closing.cancelled().await;
    }

    /// Resolves once the outbox is closing or the link attached now is
    /// lost (a connection whose outbox never detaches: the same thing).
    pub async fn closed_or_lost(&self) {
        match self.link() {
            Some(link) => tokio::select! {
                _ = self.closing.cancelled() => {}
                _ = link.lost() => {}
            },
            None => self.closing.cancelled().await,
        }
    }

    /// Close the sink politely (e.g. a WebSocket close frame), bounded in time.
    pub async fn finish(&self) {
        self.closing.cancel();
        let close = async {
            if let Some(attached) = self.slot.lock().await.as_mut() {
                let _ = attached.sink.close().await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), close).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sink of a reset connection: every use fails.
    struct Reset;

    impl Sink<Frame> for Reset {
        type Error = &'static str;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Err("connection reset"))
        }
        fn start_send(self: Pin<&mut Self>, _: Frame) -> Result<(), Self::Error> {
            Err("connection reset")
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Err("connection reset"))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Err("connection reset"))
        }
    }

    /// A broken connection's sink fails on every use (a close frame after
    /// a failed send, then the close); the boxed sink says so each time
    /// instead of panicking on the second failure as `sink_map_err` does.
    #[tokio::test]
    async fn a_failing_sink_fails_every_time() {
        let mut sink = boxed(Reset);
        for _ in 0..3 {
            let err = sink.send(Frame::Text("x".into())).await.unwrap_err();
            assert_eq!(err, "connection reset");
        }
        assert_eq!(sink.close().await.unwrap_err(), "connection reset");
    }
}
