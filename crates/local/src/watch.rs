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
//! sees a new directory and writes into it is sure to see that write.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};

use execd_environment::ChangeQueue;
use execd_protocol::fs_watch::{ChangeKind, FsChange};
use notify::event::{CreateKind, EventKind, ModifyKind, RenameMode};
use notify::{Config, Event, RecursiveMode, Watcher};

use crate::fs::FsError;

/// A watch set on this machine; dropping it ends it.
pub struct LocalWatch {
    _watcher: Arc<Mutex<notify::INotifyWatcher>>,
    /// inotify watches it holds (see [`count_watched_paths`]).
    pub watched_paths: u64,
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
/// `queue`. A missing root is `NotFound`, naming it.
pub fn watch(
    root: &Path,
    recursive: bool,
    queue: Arc<ChangeQueue>,
    watched_paths: u64,
) -> Result<LocalWatch, FsError> {
    let root_shown = shown(root);
    let events = queue.clone();
    // New directories of a recursive watch, for the helper to watch first.
    let (new_dirs, new_dirs_rx) = mpsc::channel::<PathBuf>();
    let handler = move |event: notify::Result<Event>| match event {
        Ok(event) => {
            if recursive && event.kind == EventKind::Create(CreateKind::Folder) {
                if let Some(dir) = event.paths.first() {
                    let _ = new_dirs.send(dir.clone());
                    return;
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
            .spawn(move || announce_new_dirs(new_dirs_rx, weak, queue))
            .map_err(io)?;
    }
    Ok(LocalWatch {
        _watcher: watcher,
        watched_paths,
    })
}

/// For each new directory: make sure it is watched (the reader thread
/// answers after it has set the watches of the event that announced it),
/// then report it, and what was already created in it. Ends when the
/// watch does (its handler, holding the sender, is dropped).
fn announce_new_dirs(
    new_dirs: mpsc::Receiver<PathBuf>,
    watcher: Weak<Mutex<notify::INotifyWatcher>>,
    queue: Arc<ChangeQueue>,
) {
    while let Ok(dir) = new_dirs.recv() {
        let Some(watcher) = watcher.upgrade() else {
            return;
        };
        let watched = watcher
            .lock()
            .map(|mut w| w.watch(&dir, RecursiveMode::Recursive).is_ok())
            .unwrap_or(false);
        drop(watcher);
        queue.push(FsChange::new(ChangeKind::Created, shown(&dir)));
        if watched {
            report_contents(&dir, &queue);
        }
    }
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
