//! The `fs/watch` watches of one session (the methods are in
//! `methods/fs_changes.rs`): each has its own inotify instance
//! (`execd_local::watch`) feeding a coalescing queue, and a task that sends
//! the queue's batches as `fs/changed` notifications, one at a time: while
//! a send waits (a slow client, a detached session) changes coalesce, and
//! past the session's event budget they become an `overflow` change. A
//! watch ends on `fs/unwatch` or with the session (its outbox closing),
//! which drops its inotify fd. Bounded by [`WatchLimits`]: watches, inotify
//! watches (paths, directories created later under a recursive watch
//! too: [`watch::PathBudget`]) and queued changes, per session.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use execd_environment::{ChangeQueue, EnvError, EventBudget};
use execd_local::watch::{self, LocalWatch, PathBudget};
use execd_protocol::fs_watch::{self as fw, ChangedNotification, WatchResult};
use execd_protocol::limits::{Limit, LimitExceeded};
use execd_protocol::RpcError;
use execd_transport::outbox::{Outbox, Wire};
use tokio_util::sync::CancellationToken;

use crate::rpc;
use crate::shared::FsSlots;

/// Per-session bounds of `fs/watch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchLimits {
    /// Watches at once (default 64).
    pub max_watches: usize,
    /// inotify watches the session's watches hold: one per watched path,
    /// and one per directory below it for a recursive watch (default 8192);
    /// counted when a watch is set and as directories are created under a
    /// recursive one (past it, an `overflow` change naming the limit).
    pub max_watch_paths: u64,
    /// Changes waiting to be sent, after coalescing, across the session's
    /// watches (default 4096); past it a batch ends with `overflow`.
    pub max_events: usize,
    /// How long a batch waits after its first change for more to coalesce
    /// (default 0: sent as soon as the previous batch is).
    pub coalesce: Duration,
}

impl Default for WatchLimits {
    fn default() -> Self {
        WatchLimits {
            max_watches: 64,
            max_watch_paths: 8192,
            max_events: 4096,
            coalesce: Duration::ZERO,
        }
    }
}

struct Entry {
    stop: CancellationToken,
}

/// A session's watches.
pub struct FsWatches {
    table: Mutex<HashMap<String, Entry>>,
    budget: Arc<EventBudget>,
    paths: Arc<PathBudget>,
    outbox: Arc<Outbox<Wire>>,
    limits: WatchLimits,
}

impl FsWatches {
    pub fn new(outbox: Arc<Outbox<Wire>>, limits: WatchLimits) -> Arc<FsWatches> {
        Arc::new(FsWatches {
            table: Mutex::new(HashMap::new()),
            budget: EventBudget::new(limits.max_events),
            paths: PathBudget::new(limits.max_watch_paths),
            outbox,
            limits,
        })
    }

    fn table(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches set now.
    pub fn len(&self) -> usize {
        self.table().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take `id` for a new watch (refused if taken or at the limit);
    /// returns the inotify watches still free.
    fn reserve(&self, id: &str) -> Result<u64, RpcError> {
        let mut table = self.table();
        if table.contains_key(id) {
            return Err(EnvError::InvalidRequest(format!(
                "watch {id:?} already exists; pick another watchId or fs/unwatch it first"
            ))
            .into());
        }
        if table.len() >= self.limits.max_watches {
            return Err(LimitExceeded::new(
                Limit::FsWatches,
                self.limits.max_watches,
                format!("too many fs/watch watches in this session; watch {id:?} was not set"),
            )
            .into());
        }
        table.insert(
            id.to_string(),
            Entry {
                stop: CancellationToken::new(),
            },
        );
        Ok(self.paths.free())
    }

    /// Set watch `id` on `root`: counted, watched, and its changes sent
    /// from a task of its own until it ends.
    pub async fn add(
        self: &Arc<Self>,
        id: String,
        root: PathBuf,
        recursive: bool,
        slots: &FsSlots,
    ) -> Result<WatchResult, RpcError> {
        let free = self.reserve(&id)?;
        let shown = root.display().to_string();
        let queue = ChangeQueue::new(shown.clone(), self.budget.clone(), self.limits.coalesce);
        let events = queue.clone();
        let budget = self.paths.clone();
        let set = slots
            .run(move || -> Result<Result<LocalWatch, u64>, EnvError> {
                let paths = watch::count_watched_paths(&root, recursive, free)?;
                if paths > free {
                    return Ok(Err(paths));
                }
                Ok(watch::watch(&root, recursive, events, paths, budget)?)
            })
            .await;
        let local = match set {
            Ok(Ok(local)) => local,
            Ok(Err(paths)) => {
                self.table().remove(&id);
                return Err(LimitExceeded::new(
                    Limit::FsWatchPaths,
                    self.limits.max_watch_paths,
                    format!(
                        "watching {shown} would take more than the {free} inotify watches this session has left ({} counted: the path and each directory below it)",
                        paths
                    ),
                )
                .into());
            }
            Err(err) => {
                self.table().remove(&id);
                return Err(err.into());
            }
        };
        let paths = local.watched_paths;
        let stop = {
            let table = self.table();
            let Some(entry) = table.get(&id) else {
                // Unwatched while it was being set.
                return Ok(WatchResult {
                    watch_id: id,
                    watched_paths: paths,
                });
            };
            entry.stop.clone()
        };
        tokio::spawn(send_changes(
            id.clone(),
            local,
            queue,
            self.outbox.clone(),
            stop,
        ));
        Ok(WatchResult {
            watch_id: id,
            watched_paths: paths,
        })
    }

    /// End watch `id`; false if there was none.
    pub fn remove(&self, id: &str) -> bool {
        match self.table().remove(id) {
            Some(entry) => {
                entry.stop.cancel();
                true
            }
            None => false,
        }
    }
}

/// Send a watch's batches until it is unwatched or the session ends; the
/// inotify watch ends with this task.
async fn send_changes(
    watch_id: String,
    local: LocalWatch,
    queue: Arc<ChangeQueue>,
    outbox: Arc<Outbox<Wire>>,
    stop: CancellationToken,
) {
    let closing = outbox.closing_token();
    loop {
        // Biased: once unwatched, nothing more is sent.
        let batch = tokio::select! {
            biased;
            () = closing.cancelled() => break,
            () = stop.cancelled() => break,
            batch = queue.next() => batch,
        };
        let Some(Ok(changes)) = batch else {
            break;
        };
        let frame = rpc::notification(
            fw::CHANGED,
            ChangedNotification {
                watch_id: watch_id.clone(),
                changes,
            },
        );
        tokio::select! {
            biased;
            () = closing.cancelled() => break,
            () = stop.cancelled() => break,
            sent = outbox.send(frame) => if !sent { break },
        }
    }
    drop(local);
}
