//! Per-process event channels. Each process's channel is registered before
//! its start request is sent (so no early output is lost) and carries its
//! events in seq order; a gap, a reorder or a lost connection ends the
//! channel with an error instead of being papered over. Across a resumed
//! connection a channel *catches up*: events from the catch-up read and the
//! live stream are merged by seq (duplicates dropped, early ones held until
//! the gap before them is filled), so the receiver sees no gap and no repeat.

use std::collections::{BTreeMap, HashMap};
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
    /// Since a resume: events already delivered are dropped, not an error.
    resumed: bool,
    /// While catching up: events past a gap, held until it is filled.
    held: Option<BTreeMap<u64, ProcessEvent>>,
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
                resumed: false,
                held: None,
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
        let id = event.process_id.clone();
        if event.seq < route.next_seq && route.resumed {
            return;
        }
        if event.seq != route.next_seq {
            if let Some(held) = route.held.as_mut().filter(|_| event.seq > route.next_seq) {
                held.insert(event.seq, event);
                return;
            }
            let error = gap(&id, route.next_seq, event.seq);
            if let Some(route) = routes.remove(&id) {
                fail(route, error);
            }
            return;
        }
        let mut next = Some(event);
        while let Some(event) = next {
            if pass(route, event) {
                routes.remove(&id);
                return;
            }
            next = route
                .held
                .as_mut()
                .and_then(|held| next_held(held, route.next_seq));
        }
    }

    /// The connection is being resumed: every open channel holds events
    /// past a gap instead of failing, until [`EventRouter::caught_up`].
    /// Returns each channel's next expected seq (what to read after).
    pub fn catch_up_all(&self) -> Vec<(Arc<str>, u64)> {
        let mut routes = self.lock();
        routes
            .iter_mut()
            .map(|(id, route)| {
                route.resumed = true;
                route.held.get_or_insert_with(BTreeMap::new);
                (id.clone(), route.next_seq)
            })
            .collect()
    }

    /// The next seq `id` expects and the first seq it holds past a gap
    /// (`None` if the channel is gone).
    pub fn progress(&self, id: &str) -> Option<(u64, Option<u64>)> {
        let routes = self.lock();
        let route = routes.get(id)?;
        let first_held = route
            .held
            .as_ref()
            .and_then(|h| h.range(route.next_seq..).next().map(|(seq, _)| *seq));
        Some((route.next_seq, first_held))
    }

    /// `id` has caught up: anything still held past a gap means events
    /// were lost (e.g. evicted from the server's retained log), which ends
    /// the channel with an error.
    pub fn caught_up(&self, id: &str) {
        let mut routes = self.lock();
        let Some(route) = routes.get_mut(id) else {
            return;
        };
        let mut held = route.held.take().unwrap_or_default();
        let held = held.split_off(&route.next_seq);
        if let Some(&first) = held.keys().next() {
            let error = gap(id, route.next_seq, first);
            if let Some(route) = routes.remove(id) {
                fail(route, error);
            }
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

/// Drop held events already delivered; take the one due next, if held.
fn next_held(held: &mut BTreeMap<u64, ProcessEvent>, next_seq: u64) -> Option<ProcessEvent> {
    *held = held.split_off(&next_seq);
    held.remove(&next_seq)
}

/// Pass one in-order event to its channel; true if the channel is done.
fn pass(route: &mut Route, event: ProcessEvent) -> bool {
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
    let gone = route.events.send(Ok(event)).is_err();
    finished || gone
}

fn gap(id: &str, expected: u64, got: u64) -> EnvError {
    EnvError::Protocol(format!(
        "process {id}: expected event seq {expected}, got {got}"
    ))
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

    /// Catch-up read and live events interleaved, with repeats: the
    /// receiver sees each seq once, in order.
    #[test]
    fn catching_up_merges_by_seq() {
        let router = EventRouter::default();
        let (mut rx, _state) = router.register("p").unwrap();
        router.deliver(event(1, output()));
        assert_eq!(router.catch_up_all(), vec![(Arc::from("p"), 2)]);
        router.deliver(event(5, output())); // live, early: held
        router.deliver(event(4, output()));
        assert_eq!(router.progress("p"), Some((2, Some(4))));
        for seq in [1, 2, 3, 4] {
            router.deliver(event(seq, output())); // the catch-up read
        }
        router.deliver(event(5, output())); // a live repeat
        router.caught_up("p");
        router.deliver(event(6, EventKind::Closed));
        let seqs: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|e| e.unwrap().seq)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_gap_left_after_catching_up_is_an_error() {
        let router = EventRouter::default();
        let (mut rx, _state) = router.register("p").unwrap();
        router.catch_up_all();
        router.deliver(event(3, output()));
        router.caught_up("p");
        let err = rx.try_recv().unwrap().unwrap_err();
        assert!(
            matches!(err, EnvError::Protocol(ref m) if m.contains("expected event seq 1, got 3"))
        );
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
