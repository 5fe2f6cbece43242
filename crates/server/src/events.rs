//! [`ConnectionEvents`]: the connection as the process supervisors' event
//! sink. Each event is encoded by its supervisor (as a JSON notification, or
//! as a binary output frame when the client asked for them) and written
//! straight to the connection's `Outbox`; events that are ready together
//! (`exited` and `closed`) go out in one write. Output bytes and exits are
//! counted in the metrics on the way.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use execd_process::output_log::EventSink;
use execd_protocol::binary;
use execd_protocol::event::{EventKind, ProcessEvent};
use execd_transport::outbox::{Frame, Outbox, Wire};

use crate::metrics::Metrics;
use crate::rpc;

/// Supervisors deliver process events straight into the connection.
pub struct ConnectionEvents {
    outbox: Arc<Outbox<Wire>>,
    /// The client asked for binary output frames (and the transport has them).
    binary: AtomicBool,
    metrics: Arc<Metrics>,
}

impl ConnectionEvents {
    pub fn new(outbox: Arc<Outbox<Wire>>, metrics: Arc<Metrics>) -> Arc<ConnectionEvents> {
        Arc::new(ConnectionEvents {
            outbox,
            metrics,
            binary: AtomicBool::new(false),
        })
    }

    /// Output as binary frames (or JSON again: a resumed session follows
    /// what its new connection asked for).
    pub fn use_binary_output(&self, binary: bool) {
        self.binary.store(binary, Ordering::Relaxed);
    }

    /// The frame of one event: a JSON notification, or a binary output frame.
    /// Output bytes and exits are counted here, once per event.
    fn encode(&self, event: ProcessEvent) -> Frame {
        match &event.kind {
            EventKind::Output { stream, chunk } => self.metrics.output(*stream, chunk.len()),
            EventKind::Exited(exit) => self
                .metrics
                .process_exited(exit.code, exit.signal.as_deref()),
            EventKind::Closed => {}
        }
        let binary = match &event.kind {
            EventKind::Output { stream, chunk } if self.binary.load(Ordering::Relaxed) => {
                binary::encode_output(&event.process_id, event.seq, *stream, chunk)
            }
            _ => None,
        };
        match binary {
            Some(bytes) => Frame::Binary(bytes),
            None => Frame::Text(rpc::event_notification(event)),
        }
    }
}

#[async_trait::async_trait]
impl EventSink for ConnectionEvents {
    async fn deliver(&self, event: ProcessEvent) {
        // Encoded before taking the lock: many processes encode in parallel.
        let frame = self.encode(event);
        self.outbox.send_frame(frame).await;
    }

    async fn deliver_all(&self, events: Vec<ProcessEvent>) {
        let frames = events
            .into_iter()
            .map(|event| Wire::from(self.encode(event)))
            .collect();
        self.outbox.send_frames(frames).await;
    }
}
