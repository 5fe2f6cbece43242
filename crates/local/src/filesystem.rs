//! [`LocalFileSystem`]: this machine's files behind the environment's
//! `FileSystem` trait; each operation (`crate::fs`) runs on the blocking pool.
//! Watches (`crate::watch`) each get their own queue bound
//! ([`LOCAL_WATCH_EVENTS`]); walks are bounded only by their own limits.

use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use execd_environment::{
    ByteSink, ByteSource, ChangeQueue, EnvError, EventBudget, FileSystem, FileWatch,
    TransferFormat, WriteOptions,
};
use execd_protocol::codex::fs::{WalkOutcome, WalkParams};
use execd_protocol::fs::{DirectoryEntry, Metadata, SetMetadataParams};

use crate::walk_params::{self, WalkCeilings};

use crate::fs::{self, FsError};

impl From<FsError> for EnvError {
    fn from(err: FsError) -> EnvError {
        let message = err.to_string();
        match err {
            FsError::RelativePath(_)
            | FsError::IsDirectory(_)
            | FsError::NotRegular { .. }
            | FsError::Refused(_) => EnvError::InvalidInput(message),
            FsError::TooLarge(limit) => EnvError::LimitExceeded(limit),
            FsError::NotFound(_) => EnvError::NotFound(message),
            FsError::Io { .. } => EnvError::Failed(message),
        }
    }
}

/// Changes one local watch may hold waiting (after coalescing) before it
/// reports an overflow.
pub const LOCAL_WATCH_EVENTS: usize = 4096;

/// Local watch ids: `local-watch-N`.
static NEXT_WATCH: AtomicU64 = AtomicU64::new(1);

/// This machine's filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFileSystem;

/// Run a blocking filesystem call off the async threads.
async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, EnvError> {
    match tokio::task::spawn_blocking(op).await {
        Ok(result) => result.map_err(EnvError::from),
        Err(err) => Err(EnvError::Failed(format!("filesystem task failed: {err}"))),
    }
}

#[async_trait]
impl FileSystem for LocalFileSystem {
    async fn read_file(&self, path: &str) -> Result<Vec<u8>, EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::read_file(&path, u64::MAX)).await
    }

    async fn read_range(
        &self,
        path: &str,
        offset: u64,
        length: u64,
    ) -> Result<(Vec<u8>, bool), EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::read_range(&path, offset, Some(length), u64::MAX)).await
    }

    async fn write_file(&self, path: &str, data: Vec<u8>) -> Result<(), EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::write_file(&path, &data)).await
    }

    async fn append_file(&self, path: &str, data: Vec<u8>) -> Result<(), EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::append_file(&path, &data)).await
    }

    async fn create_directory(&self, path: &str, recursive: bool) -> Result<(), EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::create_directory(&path, recursive)).await
    }

    async fn metadata(&self, path: &str) -> Result<Metadata, EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::metadata(&path)).await
    }

    async fn set_metadata(&self, params: SetMetadataParams) -> Result<(), EnvError> {
        let path = fs::absolute(&params.path)?;
        let change = fs::MetadataChange {
            mode: params.mode,
            modified_at_ms: params.modified_at_ms,
            accessed_at_ms: params.accessed_at_ms,
        };
        blocking(move || fs::set_metadata(&path, change)).await
    }

    async fn read_directory(&self, path: &str) -> Result<Vec<DirectoryEntry>, EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::read_directory(&path)).await
    }

    async fn remove(&self, path: &str, recursive: bool, force: bool) -> Result<(), EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::remove(&path, recursive, force)).await
    }

    async fn copy(&self, source: &str, destination: &str, recursive: bool) -> Result<(), EnvError> {
        let source = fs::absolute(source)?;
        let destination = fs::absolute(destination)?;
        blocking(move || fs::copy(&source, &destination, recursive)).await
    }

    async fn rename(&self, source: &str, destination: &str) -> Result<(), EnvError> {
        let source = fs::absolute(source)?;
        let destination = fs::absolute(destination)?;
        blocking(move || crate::rename::rename(&source, &destination)).await
    }

    async fn walk(&self, params: WalkParams) -> Result<WalkOutcome, EnvError> {
        let root = fs::absolute(&params.path)?;
        let ceilings = WalkCeilings {
            max_depth: u32::MAX,
            max_directories: u64::MAX,
            max_entries: u64::MAX,
        };
        let (limits, shape) = walk_params::plan(&params, ceilings)
            .map_err(|err| EnvError::InvalidInput(format!("fs/walk: {err}")))?;
        let walked = blocking(move || crate::walk::walk_with(&root, limits, shape)).await?;
        Ok(walk_params::outcome(walked, shape, |p| {
            p.display().to_string()
        }))
    }

    async fn watch(&self, path: &str, recursive: bool) -> Result<FileWatch, EnvError> {
        let root = fs::absolute(path)?;
        let queue = ChangeQueue::new(path, EventBudget::new(LOCAL_WATCH_EVENTS), Duration::ZERO);
        let events = queue.clone();
        let watch = blocking(move || {
            let paths = crate::watch::count_watched_paths(&root, recursive, u64::MAX)?;
            let budget = crate::watch::PathBudget::new(u64::MAX);
            crate::watch::watch(&root, recursive, events, paths, budget).map(|set| {
                set.unwrap_or_else(|_| unreachable!("an unbounded budget always has room"))
            })
        })
        .await?;
        let id = format!("local-watch-{}", NEXT_WATCH.fetch_add(1, Ordering::Relaxed));
        Ok(FileWatch::new(id, queue, watch))
    }

    async fn open_read(
        &self,
        path: &str,
        format: TransferFormat,
    ) -> Result<Box<dyn ByteSource>, EnvError> {
        crate::transfer::open_read(path, format).await
    }

    async fn open_write(
        &self,
        path: &str,
        options: WriteOptions,
    ) -> Result<Box<dyn ByteSink>, EnvError> {
        crate::transfer::open_write(path, options).await
    }
}
