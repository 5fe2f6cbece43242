//! [`FileWriters`]: the small files of a tree unpacked into a fresh
//! directory, created by a few threads at once.
//!
//! Creating a file (an `openat` that allocates an inode, then its mode and
//! times) is most of unpacking a tree of small files, and files of
//! different names do not depend on each other. The unpacking thread parses
//! the stream, reads each small file's bytes and hands the file to the
//! writers; it waits for them ([`FileWriters::settle`]) before an entry
//! whose name, or a parent of it, was handed out since (a name seen twice
//! is then replaced in archive order, as before), and at the end. Only a
//! fresh directory that nobody else writes into is filled this way.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::SystemTime;

use crate::fs::FsError;

/// Files up to this size are handed to the writers (bytes read first).
pub(crate) const SMALL_FILE: u64 = 64 * 1024;
/// Files waiting for a writer at most (so at most 4 MiB of their bytes).
const QUEUED: usize = 64;

/// One file for a writer: its bytes, mode and (with `-p`) times.
pub(crate) struct SmallFile {
    pub path: PathBuf,
    pub data: Vec<u8>,
    pub mode: u32,
    pub times: Option<(SystemTime, SystemTime)>,
}

/// Creates the new file `path` (its name free) with its bytes, mode and times.
pub(crate) type Fill =
    fn(&Path, &[u8], u32, Option<(SystemTime, SystemTime)>) -> Result<(), FsError>;

/// A few threads creating the small files of one tree.
pub(crate) struct FileWriters<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    fill: Fill,
    threads: usize,
    running: Option<Running<'scope>>,
    /// Names handed out since the writers last settled.
    handed_out: HashSet<PathBuf>,
    failure: Arc<Mutex<Option<FsError>>>,
}

struct Running<'scope> {
    jobs: SyncSender<SmallFile>,
    writers: Vec<ScopedJoinHandle<'scope, ()>>,
}

impl<'scope, 'env> FileWriters<'scope, 'env> {
    /// Writers (one per core, two to four) started when the first file comes.
    pub fn new(scope: &'scope Scope<'scope, 'env>, fill: Fill) -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 4);
        FileWriters {
            scope,
            fill,
            threads,
            running: None,
            handed_out: HashSet::new(),
            failure: Arc::new(Mutex::new(None)),
        }
    }

    /// True when the entry at `relative` must wait for the writers: it, or
    /// a parent of it, was handed out since they last settled.
    pub fn touches(&self, relative: &Path) -> bool {
        !self.handed_out.is_empty()
            && relative
                .ancestors()
                .any(|name| !name.as_os_str().is_empty() && self.handed_out.contains(name))
    }

    /// Hand `file` (named `relative` in the tree) to a writer.
    pub fn write(&mut self, relative: PathBuf, file: SmallFile) -> Result<(), FsError> {
        self.failed()?;
        self.handed_out.insert(relative);
        let running = self.running.get_or_insert_with(|| {
            let (jobs, queue) = sync_channel::<SmallFile>(QUEUED);
            let queue = Arc::new(Mutex::new(queue));
            let writers = (0..self.threads)
                .map(|_| {
                    let (queue, failure, fill) = (queue.clone(), self.failure.clone(), self.fill);
                    self.scope
                        .spawn(move || write_files(&queue, &failure, fill))
                })
                .collect();
            Running { jobs, writers }
        });
        if let Err(unsent) = running.jobs.send(file) {
            // Every writer stopped: one failed, and its error is the answer;
            // this file was never written, so it is never an `Ok`.
            self.settle()?;
            return Err(FsError::Refused(format!(
                "{} was not written: the tree's writers stopped",
                unsent.0.path.display()
            )));
        }
        Ok(())
    }

    /// Wait until every file handed out is written; the first failure.
    pub fn settle(&mut self) -> Result<(), FsError> {
        if let Some(Running { jobs, writers }) = self.running.take() {
            drop(jobs);
            for writer in writers {
                // A writer that panicked wrote nothing more; its files are
                // missing, which the failure below (or the caller's check)
                // reports.
                if writer.join().is_err() {
                    self.failure
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(FsError::Refused(
                            "a thread writing the tree's files failed".into(),
                        ));
                }
            }
        }
        self.handed_out.clear();
        self.failed()
    }

    fn failed(&self) -> Result<(), FsError> {
        match self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }
}

/// One writer: files from the queue until it closes or a write fails.
fn write_files(queue: &Mutex<Receiver<SmallFile>>, failure: &Mutex<Option<FsError>>, fill: Fill) {
    loop {
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(file) = next else { return };
        if let Err(err) = fill(&file.path, &file.data, file.mode, file.times) {
            failure
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert(err);
            return;
        }
    }
}

/// A file's bytes from a tar entry of `size` bytes.
pub(crate) fn read_small(
    entry: &mut impl std::io::Read,
    size: u64,
    path: &Path,
) -> Result<Vec<u8>, FsError> {
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    entry
        .read_to_end(&mut data)
        .map_err(crate::fs::io_error(path))?;
    Ok(data)
}
