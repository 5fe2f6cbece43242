//! Per-process event channels. Each process's channel is registered before
//! its start request is sent (so no early output is lost) and carries its
//! events in seq order; a gap, a reorder or a lost connection ends the
//! channel with an error instead of being papered over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, watch};

pub use crate::acks::EventReceiver;
use crate::EnvError;
use execd_protocol::event::{EventKind, ExitInfo, ProcessEvent};

/// What is known of a process's end, for waiters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExitWatch {
    /// How it exited, once it did.
    pub exit: Option<ExitInfo>,
    /// Its last event came.
    pub closed: bool,
    /// Why its events stopped early, if they did.
    pub failure: Option<EnvError>,
}

struct Route {
    events: mpsc::UnboundedSender<Result<ProcessEvent, EnvError>>,
    state: watch::Sender<ExitWatch>,
    next_seq: u64,
}

/// Routes events of many processes to one channel each.
#[derive(Default)]
pub struct EventRouter {
    routes: Mutex<HashMap<Arc<str>, Route>>,
}

impl EventRouter {
    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Route>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Open the channel for `id`. Fails if one is already open.
    pub fn register(
        &self,
        id: &str,
    ) -> Result<(EventReceiver, watch::Receiver<ExitWatch>), EnvError> {
        let mut routes = self.lock();
        if routes.contains_key(id) {
            return Err(EnvError::InvalidRequest(format!(
                "process {id} already exists"
            )));
        }
        let (events, receiver) = mpsc::unbounded_channel();
        let (state, watcher) = watch::channel(ExitWatch::default());
        routes.insert(
            Arc::from(id),
            Route {
                events,
                state,
                next_seq: 1,
            },
        );
        Ok((EventReceiver::new(receiver), watcher))
    }

    /// Forget `id` (its start failed, or its owner is gone).
    pub fn unregister(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Deliver one event; checks that seqs come in order without gaps.
    pub fn deliver(&self, event: ProcessEvent) {
        let mut routes = self.lock();
        let Some(route) = routes.get_mut(&event.process_id) else {
            return;
        };
        if event.seq != route.next_seq {
            let error = EnvError::Protocol(format!(
                "process {}: expected event seq {}, got {}",
                event.process_id, route.next_seq, event.seq
            ));
            let id = event.process_id.clone();
            if let Some(route) = routes.remove(&id) {
                fail(route, error);
            }
            return;
        }
        route.next_seq += 1;
        let finished = match &event.kind {
            EventKind::Output { .. } => false,
            EventKind::Exited(exit) => {
                let exit = exit.clone();
                route.state.send_modify(|s| s.exit = Some(exit));
                false
            }
            EventKind::Closed => {
                route.state.send_modify(|s| s.closed = true);
                true
            }
        };
        let id = event.process_id.clone();
        let gone = route.events.send(Ok(event)).is_err();
        if finished || gone {
            routes.remove(&id);
        }
    }

    /// End every open channel with `error` (e.g. the connection dropped).
    pub fn fail_all(&self, error: EnvError) {
        for (_, route) in self.lock().drain() {
            fail(route, error.clone());
        }
    }
}

/// Wait on an [`ExitWatch`] until the process exited or its events failed.
pub async fn wait_exit(mut watch: watch::Receiver<ExitWatch>) -> Result<ExitInfo, EnvError> {
    let state = watch
        .wait_for(|s| s.exit.is_some() || s.failure.is_some())
        .await
        .map_err(|_| EnvError::ConnectionLost("the process's event source is gone".into()))?;
    match (&state.exit, &state.failure) {
        (Some(exit), _) => Ok(exit.clone()),
        (None, Some(failure)) => Err(failure.clone()),
        (None, None) => Err(EnvError::Failed("no exit status".into())),
    }
}

fn fail(route: Route, error: EnvError) {
    route.state.send_modify(|s| s.failure = Some(error.clone()));
    let _ = route.events.send(Err(error));
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use execd_protocol::process::OutputStream;

    fn event(seq: u64, kind: EventKind) -> ProcessEvent {
        ProcessEvent {
            process_id: Arc::from("p"),
            seq,
            kind,
        }
    }

    fn output() -> EventKind {
        EventKind::Output {
            stream: OutputStream::Stdout,
            chunk: Bytes::from_static(b"x"),
        }
    }

    #[test]
    fn in_order_events_pass_and_closed_ends_the_route() {
        let router = EventRouter::default();
        let (mut rx, state) = router.register("p").unwrap();
        router.deliver(event(1, output()));
        router.deliver(event(
            2,
            EventKind::Exited(ExitInfo {
                code: 0,
                signal: None,
            }),
        ));
        router.deliver(event(3, EventKind::Closed));
        assert_eq!(rx.try_recv().unwrap().unwrap().seq, 1);
        assert_eq!(rx.try_recv().unwrap().unwrap().seq, 2);
        assert_eq!(rx.try_recv().unwrap().unwrap().seq, 3);
        assert!(state.borrow().closed);
        // The route is gone: the id can be registered again.
        assert!(router.register("p").is_ok());
    }

    #[test]
    fn a_gap_is_an_error() {
        let router = EventRouter::default();
        let (mut rx, state) = router.register("p").unwrap();
        router.deliver(event(1, output()));
        router.deliver(event(3, output()));
        assert!(rx.try_recv().unwrap().is_ok());
        let err = rx.try_recv().unwrap().unwrap_err();
        assert!(
            matches!(err, EnvError::Protocol(ref m) if m.contains("expected event seq 2, got 3"))
        );
        assert!(state.borrow().failure.is_some());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn duplicate_registration_is_refused() {
        let router = EventRouter::default();
        let _keep = router.register("p").unwrap();
        assert!(matches!(
            router.register("p"),
            Err(EnvError::InvalidRequest(_))
        ));
    }
}
