//! Watching files, the same on both backends: a watch's changes wait in a
//! [`ChangeQueue`] until its consumer takes them as a batch. While they
//! wait they are coalesced (one entry per path: a file created then
//! written is one `created`; the two halves of a rename become one
//! `renamed`), and they are bounded by an [`EventBudget`] shared by the
//! watches of one owner (a server session, a client): a change that finds
//! the budget spent is dropped and the next batch ends with an `overflow`
//! change instead, so nothing is lost silently. A batch holding half of a
//! rename waits [`RENAME_PAIRING`] for the other half, which inotify
//! reports right after it when both ends are watched. [`FileWatch`] is what a
//! harness holds; dropping it ends the watch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use execd_protocol::fs_watch::{ChangeKind, FsChange};
use execd_protocol::limits::Limit;
use indexmap::IndexMap;
use tokio::sync::Notify;

use crate::EnvError;

/// How long a batch holding half of a rename waits for the other half.
pub const RENAME_PAIRING: Duration = Duration::from_millis(5);

/// Changes that may wait (after coalescing) across an owner's watches.
#[derive(Debug)]
pub struct EventBudget {
    used: AtomicUsize,
    max: usize,
}

impl EventBudget {
    pub fn new(max: usize) -> Arc<EventBudget> {
        Arc::new(EventBudget {
            used: AtomicUsize::new(0),
            max,
        })
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Changes waiting now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn take(&self) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used < self.max).then_some(used + 1)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

#[derive(Default)]
struct Waiting {
    /// By coalescing key, in the order first seen.
    changes: IndexMap<String, FsChange>,
    /// Changes were lost: the limit that dropped them, if one did.
    overflow: Option<Option<String>>,
    /// The watch ended (with why, if it failed).
    ended: Option<Option<EnvError>>,
}

/// The changes of one watch waiting for its consumer.
pub struct ChangeQueue {
    /// The watched path (what an `overflow` change names).
    root: String,
    waiting: Mutex<Waiting>,
    wake: Notify,
    budget: Arc<EventBudget>,
    /// How long a batch waits after its first change for more to coalesce.
    coalesce: Duration,
}

/// The coalescing key: creations, writes and removals of a path share one
/// entry; each half of a rename has its own until the other half comes.
fn key(change: &FsChange) -> String {
    match (change.kind, &change.from, &change.to) {
        (ChangeKind::Renamed, Some(from), None) => format!("from\0{from}"),
        (ChangeKind::Renamed, None, Some(to)) => format!("to\0{to}"),
        (ChangeKind::Renamed, Some(from), Some(to)) => format!("both\0{from}\0{to}"),
        _ => format!("path\0{}", change.path),
    }
}

impl ChangeQueue {
    pub fn new(root: impl Into<String>, budget: Arc<EventBudget>, coalesce: Duration) -> Arc<Self> {
        Arc::new(ChangeQueue {
            root: root.into(),
            waiting: Mutex::new(Waiting::default()),
            wake: Notify::new(),
            budget,
            coalesce,
        })
    }

    fn waiting(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue one change, coalesced with what waits; an `overflow` marks the
    /// queue (its `limit`, if any, is kept).
    pub fn push(&self, change: FsChange) {
        let mut waiting = self.waiting();
        if waiting.ended.is_some() {
            return;
        }
        if change.kind == ChangeKind::Overflow {
            waiting.overflow = Some(change.limit);
            drop(waiting);
            self.wake.notify_one();
            return;
        }
        if let (Some(from), Some(to)) = (&change.from, &change.to) {
            // The halves of this rename, if they still wait, are this one.
            for half in [format!("from\0{from}"), format!("to\0{to}")] {
                if waiting.changes.shift_remove(&half).is_some() {
                    self.budget.give_back(1);
                }
            }
        }
        let key = key(&change);
        if let Some(earlier) = waiting.changes.get_mut(&key) {
            // Created, then written: still just created.
            if !(earlier.kind == ChangeKind::Created && change.kind == ChangeKind::Modified) {
                *earlier = change;
            }
        } else if self.budget.take() {
            waiting.changes.insert(key, change);
        } else {
            waiting.overflow = Some(Some(Limit::FsWatchEvents.name().to_string()));
        }
        drop(waiting);
        self.wake.notify_one();
    }

    /// The watch is over: the consumer gets what waits, then `error` (or
    /// the end).
    pub fn end(&self, error: Option<EnvError>) {
        let mut waiting = self.waiting();
        if waiting.ended.is_none() {
            waiting.ended = Some(error);
        }
        drop(waiting);
        self.wake.notify_one();
    }

    fn take(&self) -> Option<Vec<FsChange>> {
        let mut waiting = self.waiting();
        if waiting.changes.is_empty() && waiting.overflow.is_none() {
            return None;
        }
        let changes = std::mem::take(&mut waiting.changes);
        self.budget.give_back(changes.len());
        let mut batch: Vec<FsChange> = changes.into_values().collect();
        if let Some(limit) = waiting.overflow.take() {
            let mut overflow = FsChange::new(ChangeKind::Overflow, self.root.clone());
            overflow.limit = limit;
            batch.push(overflow);
        }
        Some(batch)
    }

    fn has_waiting(&self) -> bool {
        let waiting = self.waiting();
        !waiting.changes.is_empty() || waiting.overflow.is_some()
    }

    /// Half of a rename waits: its other half is likely on its way.
    fn has_half_rename(&self) -> bool {
        self.waiting()
            .changes
            .keys()
            .any(|k| k.starts_with("from\0") || k.starts_with("to\0"))
    }

    /// The next batch (waiting for one); after the end, `None` (or the
    /// error the watch ended with, once).
    pub async fn next(&self) -> Option<Result<Vec<FsChange>, EnvError>> {
        loop {
            if self.has_waiting() {
                if !self.coalesce.is_zero() {
                    tokio::time::sleep(self.coalesce).await;
                }
                // The two halves of a move come from one read of the
                // kernel's queue: give the second a moment to pair up.
                if self.has_half_rename() {
                    tokio::time::sleep(RENAME_PAIRING).await;
                }
                if let Some(batch) = self.take() {
                    return Some(Ok(batch));
                }
            }
            if let Some(ended) = self.waiting().ended.as_mut() {
                return ended.take().map(Err);
            }
            self.wake.notified().await;
        }
    }
}

impl Drop for ChangeQueue {
    fn drop(&mut self) {
        let waiting = self.waiting.get_mut().unwrap_or_else(|e| e.into_inner());
        self.budget.give_back(waiting.changes.len());
    }
}

/// A watch a harness holds: its batches of changes, in order. Dropping it
/// ends the watch (its inotify watches, or the server's).
pub struct FileWatch {
    id: String,
    queue: Arc<ChangeQueue>,
    _stop: Box<dyn Send + Sync>,
}

impl FileWatch {
    /// A watch whose changes arrive in `queue`; `stop` is dropped with it.
    pub fn new(id: String, queue: Arc<ChangeQueue>, stop: impl Send + Sync + 'static) -> Self {
        FileWatch {
            id,
            queue,
            _stop: Box::new(stop),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The next batch of changes; `None` once the watch has ended.
    pub async fn next(&mut self) -> Option<Result<Vec<FsChange>, EnvError>> {
        self.queue.next().await
    }
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatch").field("id", &self.id).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: ChangeKind, path: &str) -> FsChange {
        FsChange::new(kind, path)
    }

    #[tokio::test]
    async fn coalesces_pairs_renames_and_reports_overflow() {
        let budget = EventBudget::new(3);
        let queue = ChangeQueue::new("/w", budget.clone(), Duration::ZERO);
        queue.push(change(ChangeKind::Created, "/w/a"));
        queue.push(change(ChangeKind::Modified, "/w/a"));
        queue.push(FsChange::renamed(Some("/w/b".into()), None));
        queue.push(FsChange::renamed(None, Some("/w/c".into())));
        queue.push(FsChange::renamed(Some("/w/b".into()), Some("/w/c".into())));
        assert_eq!(budget.used(), 2);
        let batch = queue.next().await.expect("batch").expect("ok");
        assert_eq!(batch[0], change(ChangeKind::Created, "/w/a"));
        assert_eq!(batch[1].from.as_deref(), Some("/w/b"));
        assert_eq!(batch[1].to.as_deref(), Some("/w/c"));
        assert_eq!(batch.len(), 2);
        assert_eq!(budget.used(), 0);
        for i in 0..5 {
            queue.push(change(ChangeKind::Created, &format!("/w/{i}")));
        }
        let batch = queue.next().await.expect("batch").expect("ok");
        assert_eq!(batch.len(), 4);
        assert_eq!(batch[3].kind, ChangeKind::Overflow);
        assert_eq!(batch[3].path, "/w");
        assert_eq!(batch[3].limit.as_deref(), Some("maxFsWatchEvents"));
        queue.end(None);
        assert!(queue.next().await.is_none());
    }
}
