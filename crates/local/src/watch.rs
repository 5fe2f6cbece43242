//! `fs/watch` on this machine: one inotify instance (through the `notify`
//! crate, its own fd and reader thread) per watch, whose events become
//! [`FsChange`]s in the watch's [`ChangeQueue`]: created, modified
//! (contents or metadata), removed, renamed (the two halves of a move
//! inside the watch paired by inotify's cookie; a move in or out of it has
//! only the end that is inside), and overflow (the kernel's queue, or a
//! directory of a recursive watch that could not be watched). Opens and
//! closes are not changes. Dropping the [`LocalWatch`] closes the inotify
//! fd and stops its thread.
//!
//! A directory created inside a recursive watch is reported only once it
//! is watched itself (a helper thread asks for its watch, which the
//! reader thread sets after the event that announced it), and what was
//! created in it before then is reported as created: so a client that
//! sees a new directory and writes into it is sure to see that write. In
//! the same way a directory moved inside the watch is reported as renamed
//! only once its watches carry its new path.
//!
//! Every inotify watch held counts against a [`PathBudget`] shared by a
//! session's watches, new directories of a recursive watch too: one that
//! would take it past its bound is unwatched again at once (with what is
//! below it) and reported as created plus an `overflow` change naming
//! `maxFsWatchPaths`. A directory moved in from outside counts the same
//! (with everything below it), and is unwatched again past the bound with
//! an `overflow`. A removed directory gives its watch back; the watches
//! of a directory moved out stay counted until the watch ends. (notify
//! sets a new directory's watches before we count them, so for that moment
//! a watch can hold more; the kernel's own limit still applies.)

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};

use execd_environment::ChangeQueue;
use execd_protocol::fs_watch::{ChangeKind, FsChange};
use execd_protocol::limits::Limit;
use notify::event::{CreateKind, EventKind, ModifyKind, RemoveKind, RenameMode};
use notify::{Config, Event, RecursiveMode, Watcher};

use crate::fs::FsError;

/// A watch set on this machine; dropping it ends it.
pub struct LocalWatch {
    _watcher: Arc<Mutex<notify::INotifyWatcher>>,
    /// inotify watches it held when set (see [`count_watched_paths`]).
    pub watched_paths: u64,
}

/// The inotify watches a session's watches may hold together.
#[derive(Debug)]
pub struct PathBudget {
    used: AtomicU64,
    max: u64,
}

impl PathBudget {
    pub fn new(max: u64) -> Arc<PathBudget> {
        Arc::new(PathBudget {
            used: AtomicU64::new(0),
            max,
        })
    }

    /// Watches still free.
    pub fn free(&self) -> u64 {
        self.max.saturating_sub(self.used.load(Ordering::SeqCst))
    }

    /// Take `n` watches, unless that would pass the bound.
    fn try_take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                used.checked_add(n).filter(|total| *total <= self.max)
            })
            .is_ok()
    }

    fn give_back(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                Some(used.saturating_sub(n))
            });
    }
}

/// The part of a [`PathBudget`] one watch holds; given back when the
/// watch (its handler and helper thread) is gone.
struct HeldPaths {
    budget: Arc<PathBudget>,
    held: AtomicU64,
    /// Removed directories whose first removal event has been seen (a
    /// watched directory's removal comes twice: on its own watch and on
    /// its parent's).
    half_removed: Mutex<HashSet<PathBuf>>,
    /// New directories left unwatched at the bound (their removal comes
    /// once, and gives nothing back).
    unwatched: Mutex<HashSet<PathBuf>>,
}

impl HeldPaths {
    fn take(&self, n: u64) -> bool {
        let taken = self.budget.try_take(n);
        if taken {
            self.held.fetch_add(n, Ordering::SeqCst);
        }
        taken
    }

    /// A directory of the watch was removed: its watch given back once.
    fn removed_dir(&self, dir: &Path) {
        let locked = |set: &Mutex<HashSet<PathBuf>>| {
            // Only paths are kept: a poisoned set is still consistent.
            set.lock().unwrap_or_else(|e| e.into_inner()).remove(dir)
        };
        if locked(&self.unwatched) || locked(&self.half_removed) {
            return;
        }
        self.half_removed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(dir.to_path_buf());
        self.give_back_one();
    }

    fn give_back_one(&self) {
        if self
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
                held.checked_sub(1)
            })
            .is_ok()
        {
            self.budget.give_back(1);
        }
    }
}

impl Drop for HeldPaths {
    fn drop(&mut self) {
        self.budget.give_back(*self.held.get_mut());
    }
}

fn shown(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The changes one inotify event means.
fn changes(event: Event) -> Vec<FsChange> {
    let mut paths = event.paths.iter().map(|p| shown(p));
    let first = paths.next();
    let Some(path) = first else {
        return if event.need_rescan() {
            vec![FsChange::new(ChangeKind::Overflow, String::new())]
        } else {
            Vec::new()
        };
    };
    let kind = match event.kind {
        EventKind::Create(_) => ChangeKind::Created,
        EventKind::Remove(_) => ChangeKind::Removed,
        EventKind::Modify(ModifyKind::Name(mode)) => {
            return vec![match mode {
                RenameMode::From => FsChange::renamed(Some(path), None),
                RenameMode::To => FsChange::renamed(None, Some(path)),
                RenameMode::Both => FsChange::renamed(Some(path), paths.next()),
                _ => FsChange::new(ChangeKind::Renamed, path),
            }];
        }
        EventKind::Modify(_) => ChangeKind::Modified,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => return Vec::new(),
    };
    vec![FsChange::new(kind, path)]
}

/// How many inotify watches watching `root` takes: one, and with
/// `recursive` one more per directory below it (symlinks not followed).
/// Stops counting past `max` (returns `max + 1`).
pub fn count_watched_paths(root: &Path, recursive: bool, max: u64) -> Result<u64, FsError> {
    let meta = std::fs::metadata(root).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            FsError::NotFound(shown(root))
        } else {
            FsError::Io {
                path: shown(root),
                source,
            }
        }
    })?;
    if !recursive || !meta.is_dir() {
        return Ok(1);
    }
    let mut count = 1u64;
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in read.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                count += 1;
                if count > max {
                    return Ok(count);
                }
                stack.push(entry.path());
            }
        }
    }
    Ok(count)
}

/// Watch `root` (and below it with `recursive`), queueing its changes in
/// `queue`, holding `watched_paths` (counted by [`count_watched_paths`])
/// of `budget` and more for directories created later. `Ok(Err(n))` when
/// the `n` watches do not fit the budget; a missing root is `NotFound`,
/// naming it.
pub fn watch(
    root: &Path,
    recursive: bool,
    queue: Arc<ChangeQueue>,
    watched_paths: u64,
    budget: Arc<PathBudget>,
) -> Result<Result<LocalWatch, u64>, FsError> {
    let held = Arc::new(HeldPaths {
        budget,
        held: AtomicU64::new(0),
        half_removed: Mutex::new(HashSet::new()),
        unwatched: Mutex::new(HashSet::new()),
    });
    if !held.take(watched_paths) {
        return Ok(Err(watched_paths));
    }
    let root_shown = shown(root);
    let root_shown_for_dirs = root_shown.clone();
    let events = queue.clone();
    let handler_held = held.clone();
    // New directories of a recursive watch, for the helper to count (and
    // watch first, when created here).
    let (new_dirs, new_dirs_rx) = mpsc::channel::<(PathBuf, Arrival)>();
    // The cookie of the last move out of a place in the watch: a move in
    // with another one came from outside.
    let mut moved_from = None;
    // A directory's move inside the watch has had its `To` half: its
    // `Both`, next, goes through the helper.
    let mut moving_dir = false;
    let handler = move |event: notify::Result<Event>| match event {
        Ok(event) => {
            if recursive && event.kind == EventKind::Remove(RemoveKind::Folder) {
                if let Some(dir) = event.paths.first() {
                    handler_held.removed_dir(dir);
                }
            }
            if recursive && event.kind == EventKind::Create(CreateKind::Folder) {
                if let Some(dir) = event.paths.first() {
                    let _ = new_dirs.send((dir.clone(), Arrival::Created));
                    return;
                }
            }
            if recursive {
                match event.kind {
                    EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                        moved_from = event.tracker();
                    }
                    EventKind::Modify(ModifyKind::Name(RenameMode::To))
                        if event.tracker().is_none() || event.tracker() != moved_from =>
                    {
                        // notify watches a directory moved in, and all below it.
                        if let Some(dir) = event.paths.first().filter(|p| is_real_dir(p)) {
                            let _ = new_dirs.send((dir.clone(), Arrival::MovedIn));
                        }
                    }
                    // A directory moved inside the watch: its `Both` (next)
                    // is reported by the helper once the directory's
                    // watches have their new paths.
                    EventKind::Modify(ModifyKind::Name(RenameMode::To))
                        if event.paths.first().is_some_and(|p| is_real_dir(p)) =>
                    {
                        moving_dir = true;
                        return;
                    }
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both))
                        if std::mem::take(&mut moving_dir) =>
                    {
                        if let Some(to) = event.paths.get(1).cloned() {
                            let _ = new_dirs.send((to, Arrival::MovedWithin(changes(event))));
                            return;
                        }
                    }
                    _ => {}
                }
            }
            for mut change in changes(event) {
                if change.kind == ChangeKind::Overflow {
                    change.path = root_shown.clone();
                }
                events.push(change);
            }
        }
        // A directory that could not be watched, or the read failed:
        // changes may be missing.
        Err(_) => events.push(FsChange::new(ChangeKind::Overflow, root_shown.clone())),
    };
    let io = |source: std::io::Error| FsError::Io {
        path: shown(root),
        source,
    };
    let config = Config::default().with_follow_symlinks(false);
    let mut watcher =
        notify::INotifyWatcher::new(handler, config).map_err(|err| io(notify_io(err)))?;
    let mode = if recursive {
        RecursiveMode::Recursive
    } else {
        RecursiveMode::NonRecursive
    };
    watcher.watch(root, mode).map_err(|err| match err.kind {
        notify::ErrorKind::PathNotFound => FsError::NotFound(shown(root)),
        _ => io(notify_io(err)),
    })?;
    let watcher = Arc::new(Mutex::new(watcher));
    if recursive {
        let weak = Arc::downgrade(&watcher);
        std::thread::Builder::new()
            .name("execd-watch-dirs".into())
            .spawn(move || announce_new_dirs(new_dirs_rx, weak, queue, held, root_shown_for_dirs))
            .map_err(io)?;
    }
    Ok(Ok(LocalWatch {
        _watcher: watcher,
        watched_paths,
    }))
}

/// For each new directory: make sure it is watched (the reader thread
/// answers after it has set the watches of the event that announced it)
/// and counted against the budget (else unwatched again, and an
/// `overflow` naming the limit), then, if it was created here, report it
/// and what was already created in it (one moved in was reported as
/// renamed). Ends when the watch does (its handler, holding the sender, is
/// dropped).
fn announce_new_dirs(
    new_dirs: mpsc::Receiver<(PathBuf, Arrival)>,
    watcher: Weak<Mutex<notify::INotifyWatcher>>,
    queue: Arc<ChangeQueue>,
    held: Arc<HeldPaths>,
    root_shown: String,
) {
    while let Ok((dir, arrival)) = new_dirs.recv() {
        let Some(watcher) = watcher.upgrade() else {
            return;
        };
        let Ok(mut locked) = watcher.lock() else {
            return;
        };
        let created = match arrival {
            Arrival::Created => true,
            Arrival::MovedIn => false,
            Arrival::MovedWithin(renamed) => {
                // Watched and counted already. Watching it again under its
                // new name gives its watches (and those below it) that
                // path: notify names changes by the path a watch was set
                // with. Only then the rename is reported, so a change a
                // client makes there after seeing it carries the new name.
                let _ = locked.watch(&dir, RecursiveMode::Recursive);
                drop(locked);
                for change in renamed {
                    queue.push(change);
                }
                continue;
            }
        };
        let watched = locked.watch(&dir, RecursiveMode::Recursive).is_ok();
        if watched {
            let free = held.budget.free();
            let needed = count_watched_paths(&dir, true, free).unwrap_or(1);
            if !held.take(needed) {
                let _ = locked.unwatch(&dir);
                held.unwatched
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(dir.clone());
                let mut overflow = FsChange::new(ChangeKind::Overflow, root_shown.clone());
                overflow.limit = Some(Limit::FsWatchPaths.name().to_string());
                if created {
                    queue.push(FsChange::new(ChangeKind::Created, shown(&dir)));
                }
                queue.push(overflow);
                continue;
            }
        }
        drop(locked);
        drop(watcher);
        // A directory moved in was reported as renamed, by the handler.
        if created {
            queue.push(FsChange::new(ChangeKind::Created, shown(&dir)));
            if watched {
                report_contents(&dir, &queue);
            }
        }
    }
}

/// How a directory came to be where it is in a recursive watch.
#[derive(Debug)]
enum Arrival {
    /// Made there: reported as created (with what it holds) once watched.
    Created,
    /// Moved in from outside the watch: reported as renamed at once.
    MovedIn,
    /// Moved from elsewhere in the watch: these changes (the rename)
    /// reported once its watches have their new paths.
    MovedWithin(Vec<FsChange>),
}

/// A directory, not a symlink to one.
fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir())
}

/// Report everything below `dir` as created.
fn report_contents(dir: &Path, queue: &ChangeQueue) {
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in read.flatten() {
        queue.push(FsChange::new(ChangeKind::Created, shown(&entry.path())));
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            report_contents(&entry.path(), queue);
        }
    }
}

fn notify_io(err: notify::Error) -> std::io::Error {
    match err.kind {
        notify::ErrorKind::Io(io) => io,
        notify::ErrorKind::MaxFilesWatch => std::io::Error::other(
            "the system's inotify watch limit (fs.inotify.max_user_watches) is reached",
        ),
        other => std::io::Error::other(format!("{other:?}")),
    }
}
