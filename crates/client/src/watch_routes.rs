//! The client's side of `fs/watch`: each watch's `fs/changed` batches go
//! into its own [`ChangeQueue`] (registered before `fs/watch` is sent, so
//! no change is missed), coalesced again while the harness has not taken
//! them and bounded by one budget per client ([`CLIENT_WATCH_EVENTS`]):
//! the same queue the local environment uses, so both behave alike. A
//! session that ends ends every watch with its error. Watches survive a
//! resumed connection (the server keeps them with the session).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use execd_environment::{ChangeQueue, EnvError, EventBudget};
use execd_protocol::fs_watch::ChangedNotification;

/// Changes a client holds waiting (after coalescing) across its watches
/// before they become an `overflow`.
pub const CLIENT_WATCH_EVENTS: usize = 65_536;

pub(crate) struct WatchRoutes {
    routes: Mutex<HashMap<String, Arc<ChangeQueue>>>,
    pub(crate) budget: Arc<EventBudget>,
}

impl Default for WatchRoutes {
    fn default() -> Self {
        WatchRoutes {
            routes: Mutex::new(HashMap::new()),
            budget: EventBudget::new(CLIENT_WATCH_EVENTS),
        }
    }
}

impl WatchRoutes {
    fn routes(&self) -> MutexGuard<'_, HashMap<String, Arc<ChangeQueue>>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn register(&self, id: &str, queue: Arc<ChangeQueue>) {
        self.routes().insert(id.to_string(), queue);
    }

    pub(crate) fn unregister(&self, id: &str) {
        if let Some(queue) = self.routes().remove(id) {
            queue.end(None);
        }
    }

    /// Queue a notification's changes for its watch (unknown ids: dropped).
    pub(crate) fn deliver(&self, changed: ChangedNotification) {
        let Some(queue) = self.routes().get(&changed.watch_id).cloned() else {
            return;
        };
        for change in changed.changes {
            queue.push(change);
        }
    }

    /// The session is over: every watch ends with `error`.
    pub(crate) fn end_all(&self, error: &EnvError) {
        for (_, queue) in self.routes().drain() {
            queue.end(Some(error.clone()));
        }
    }
}
