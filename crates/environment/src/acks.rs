//! [`EventReceiver`]: one process's event channel as its consumer sees it,
//! and the acknowledgement hook ([`EventAck`]) of flow control: a process
//! started with an `outputWindow` has its receiver tell the backend, in
//! batches, which events the consumer has taken (a local environment acks
//! its process table; a remote one sends `process/ack`), so the supervisor
//! reads on. Batches: an ack goes out once a quarter of the window of
//! consumed output is unacknowledged.

use std::sync::Arc;

use execd_protocol::event::{EventKind, ProcessEvent};
use tokio::sync::mpsc;

use crate::EnvError;

/// Told when the consumer of a process's events has taken them.
pub trait EventAck: Send + Sync {
    /// Every event of `process_id` up to `seq` was consumed. Called from the
    /// consumer's task: must not block (send the ack from a task if it has
    /// to wait).
    fn ack(&self, process_id: &str, seq: u64);
}

/// What a receiver acks through, and when.
struct Acking {
    hook: Arc<dyn EventAck>,
    /// Ack once this many consumed output bytes are unacknowledged.
    batch: u64,
    consumed: u64,
}

/// One process's events (seq order; ends after `Closed`, or with an error
/// if the events cannot be trusted any more). With an ack hook, taking an
/// event acknowledges it (batched).
pub struct EventReceiver {
    events: mpsc::UnboundedReceiver<Result<ProcessEvent, EnvError>>,
    acking: Option<Acking>,
}

impl EventReceiver {
    pub fn new(events: mpsc::UnboundedReceiver<Result<ProcessEvent, EnvError>>) -> Self {
        EventReceiver {
            events,
            acking: None,
        }
    }

    /// Acknowledge taken events through `hook`, a batch at a time, for a
    /// process whose output window is `window` bytes.
    pub fn acking(mut self, hook: Arc<dyn EventAck>, window: u64) -> Self {
        self.acking = Some(Acking {
            hook,
            batch: (window / 4).max(1),
            consumed: 0,
        });
        self
    }

    /// The next event; `None` once the channel ended.
    pub async fn recv(&mut self) -> Option<Result<ProcessEvent, EnvError>> {
        let event = self.events.recv().await;
        self.taken(&event);
        event
    }

    /// The next event if one is waiting.
    pub fn try_recv(
        &mut self,
    ) -> Result<Result<ProcessEvent, EnvError>, mpsc::error::TryRecvError> {
        let event = self.events.try_recv();
        if let Ok(event) = &event {
            self.take(event);
        }
        event
    }

    fn taken(&mut self, event: &Option<Result<ProcessEvent, EnvError>>) {
        if let Some(event) = event {
            self.take(event);
        }
    }

    fn take(&mut self, event: &Result<ProcessEvent, EnvError>) {
        let (Some(acking), Ok(event)) = (&mut self.acking, event) else {
            return;
        };
        if let EventKind::Output { chunk, .. } = &event.kind {
            acking.consumed += chunk.len() as u64;
            if acking.consumed >= acking.batch {
                acking.consumed = 0;
                acking.hook.ack(&event.process_id, event.seq);
            }
        }
    }
}
