//! The environment traits. A harness holds an [`Environment`] and never
//! needs to know whether it runs here or behind an execd server.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use execd_protocol::fs::{DirectoryEntry, Metadata, SetMetadataParams};
use execd_protocol::process::{ReadResult, StartParams, TerminalSize, WriteStatus};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::router::EventReceiver;
use crate::transfer::{ByteSink, ByteSource, TransferFormat, WriteOptions};
use crate::watch::FileWatch;
use crate::EnvError;
use execd_protocol::codex::fs::{WalkOutcome, WalkParams};
use execd_protocol::event::ExitInfo;

/// Bytes moved per request by the streaming file helpers.
pub const STREAM_CHUNK: u64 = 4 * 1024 * 1024;

/// Starts processes.
#[async_trait]
pub trait ExecBackend: Send + Sync {
    /// Start a process. Its event channel is open before the process runs,
    /// so no output is missed.
    async fn start(&self, params: StartParams) -> Result<StartedProcess, EnvError>;
}

/// A started process and the channel of its events (seq order; ends after
/// `Closed`, or with an error if the events cannot be trusted any more).
pub struct StartedProcess {
    /// The process.
    pub process: Arc<dyn ExecProcess>,
    /// Its events, in seq order.
    pub events: EventReceiver,
}

/// One process, local or remote.
#[async_trait]
pub trait ExecProcess: Send + Sync {
    /// The process id.
    fn id(&self) -> &str;
    /// Retained output after `after_seq` (see `process/read`).
    async fn read(
        &self,
        after_seq: u64,
        max_bytes: Option<u64>,
        wait_ms: Option<u64>,
    ) -> Result<ReadResult, EnvError>;
    /// Write to stdin.
    async fn write(&self, chunk: Bytes) -> Result<WriteStatus, EnvError>;
    /// Send EOF to a pipe process's stdin.
    async fn close_stdin(&self) -> Result<WriteStatus, EnvError>;
    /// Resize the terminal of a PTY process.
    async fn resize(&self, size: TerminalSize) -> Result<(), EnvError>;
    /// Signal the process tree by name (`INT`, `TERM`, ...); true if it was running.
    async fn signal(&self, signal: &str) -> Result<bool, EnvError>;
    /// SIGTERM, then SIGKILL after a grace period; true if it was running.
    async fn terminate(&self) -> Result<bool, EnvError>;
    /// Wait until the process has exited.
    async fn wait(&self) -> Result<ExitInfo, EnvError>;
}

/// Files. Every path is absolute.
#[async_trait]
pub trait FileSystem: Send + Sync {
    /// The whole file.
    async fn read_file(&self, path: &str) -> Result<Vec<u8>, EnvError>;
    /// Up to `length` bytes from `offset`, and whether that reached the end.
    async fn read_range(
        &self,
        path: &str,
        offset: u64,
        length: u64,
    ) -> Result<(Vec<u8>, bool), EnvError>;
    /// Replace the file (creating it).
    async fn write_file(&self, path: &str, data: Vec<u8>) -> Result<(), EnvError>;
    /// Append to the file (creating it).
    async fn append_file(&self, path: &str, data: Vec<u8>) -> Result<(), EnvError>;
    /// Create a directory (and its parents with `recursive`).
    async fn create_directory(&self, path: &str, recursive: bool) -> Result<(), EnvError>;
    /// What the path is.
    async fn metadata(&self, path: &str) -> Result<Metadata, EnvError>;
    /// Set the permission bits and times that `params` gives (symlinks
    /// followed). Not every filesystem can: the default refuses.
    async fn set_metadata(&self, params: SetMetadataParams) -> Result<(), EnvError> {
        Err(EnvError::Unsupported(format!(
            "cannot set the metadata of {}: this filesystem does not support it",
            params.path
        )))
    }
    /// A directory's entries.
    async fn read_directory(&self, path: &str) -> Result<Vec<DirectoryEntry>, EnvError>;
    /// Remove a file, or a tree with `recursive`; `force` ignores a missing path.
    async fn remove(&self, path: &str, recursive: bool, force: bool) -> Result<(), EnvError>;
    /// Copy a file, or a tree with `recursive`.
    async fn copy(&self, source: &str, destination: &str, recursive: bool) -> Result<(), EnvError>;
    /// Move `source` to `destination` atomically (`rename(2)`); both on one
    /// filesystem. The default refuses.
    async fn rename(&self, source: &str, destination: &str) -> Result<(), EnvError> {
        Err(EnvError::Unsupported(format!(
            "cannot rename {source} to {destination}: this filesystem does not support it"
        )))
    }
    /// A recursive listing (`fs/walk`, with its extensions: metadata,
    /// symlinks, pages). The default refuses.
    async fn walk(&self, params: WalkParams) -> Result<WalkOutcome, EnvError> {
        Err(EnvError::Unsupported(format!(
            "cannot walk {}: this filesystem does not support it",
            params.path
        )))
    }
    /// Watch `path` (and below it with `recursive`): its changes come as
    /// batches from the returned [`FileWatch`]. The default refuses.
    async fn watch(&self, path: &str, recursive: bool) -> Result<FileWatch, EnvError> {
        let _ = recursive;
        Err(EnvError::Unsupported(format!(
            "cannot watch {path}: this filesystem does not support it"
        )))
    }

    /// Stream a file's bytes, or a directory tree as tar (`format`).
    /// Filesystems without streams refuse (`Unsupported`).
    async fn open_read(
        &self,
        path: &str,
        format: TransferFormat,
    ) -> Result<Box<dyn ByteSource>, EnvError> {
        let _ = format;
        Err(EnvError::Unsupported(format!(
            "cannot stream {path}: this filesystem has no streams"
        )))
    }
    /// Write a stream to `path` (a file, or a tree unpacked into the
    /// directory `path`, created if missing): in place only when the sink
    /// is finished. Filesystems without streams refuse (`Unsupported`).
    async fn open_write(
        &self,
        path: &str,
        options: WriteOptions,
    ) -> Result<Box<dyn ByteSink>, EnvError> {
        let _ = options;
        Err(EnvError::Unsupported(format!(
            "cannot stream to {path}: this filesystem has no streams"
        )))
    }
}

/// An exec backend and a filesystem that belong together.
#[derive(Clone)]
pub struct Environment {
    /// Starts processes.
    pub exec: Arc<dyn ExecBackend>,
    /// Its files.
    pub fs: Arc<dyn FileSystem>,
    /// True when this environment is behind an execd server.
    pub remote: bool,
}

/// Stream a file into `writer` in bounded pieces; `progress` gets the bytes
/// done so far. Returns the total.
pub async fn read_file_to<W: AsyncWrite + Unpin + ?Sized>(
    fs: &dyn FileSystem,
    path: &str,
    writer: &mut W,
    mut progress: impl FnMut(u64) + Send,
) -> Result<u64, EnvError> {
    let failed = |err: std::io::Error| EnvError::Failed(format!("writing {path}: {err}"));
    match fs.open_read(path, TransferFormat::File).await {
        Ok(mut source) => {
            let mut total = 0u64;
            while let Some(piece) = source.next_piece().await? {
                writer.write_all(&piece).await.map_err(failed)?;
                total += piece.len() as u64;
                progress(total);
            }
            writer.flush().await.map_err(failed)?;
            return Ok(total);
        }
        Err(EnvError::Unsupported(_)) => {}
        Err(err) => return Err(err),
    }
    let mut offset = 0;
    loop {
        let (data, eof) = fs.read_range(path, offset, STREAM_CHUNK).await?;
        writer
            .write_all(&data)
            .await
            .map_err(|err| EnvError::Failed(format!("writing {path}: {err}")))?;
        offset += data.len() as u64;
        progress(offset);
        if eof || data.is_empty() {
            break;
        }
    }
    writer
        .flush()
        .await
        .map_err(|err| EnvError::Failed(format!("writing {path}: {err}")))?;
    Ok(offset)
}

/// Stream `reader` into a file (replacing it) in bounded pieces.
pub async fn write_file_from<R: AsyncRead + Unpin + ?Sized>(
    fs: &dyn FileSystem,
    path: &str,
    reader: &mut R,
    mut progress: impl FnMut(u64) + Send,
) -> Result<u64, EnvError> {
    let failed =
        |err: std::io::Error| EnvError::Failed(format!("reading the source of {path}: {err}"));
    match fs.open_write(path, WriteOptions::file()).await {
        Ok(mut sink) => {
            let mut total = 0u64;
            loop {
                let mut piece = bytes::BytesMut::with_capacity(crate::transfer::PIECE_BYTES);
                while piece.len() < crate::transfer::PIECE_BYTES {
                    if reader.read_buf(&mut piece).await.map_err(failed)? == 0 {
                        break;
                    }
                }
                if piece.is_empty() {
                    return sink.finish().await;
                }
                total += piece.len() as u64;
                sink.write_piece(piece.freeze()).await?;
                progress(total);
            }
        }
        Err(EnvError::Unsupported(_)) => {}
        Err(err) => return Err(err),
    }
    let mut total = 0u64;
    let mut first = true;
    loop {
        let mut piece = Vec::with_capacity(STREAM_CHUNK as usize);
        let n = (&mut *reader)
            .take(STREAM_CHUNK)
            .read_to_end(&mut piece)
            .await
            .map_err(|err| EnvError::Failed(format!("reading the source of {path}: {err}")))?;
        if first {
            fs.write_file(path, piece).await?;
            first = false;
        } else if n > 0 {
            fs.append_file(path, piece).await?;
        }
        total += n as u64;
        progress(total);
        if n == 0 || (n as u64) < STREAM_CHUNK {
            return Ok(total);
        }
    }
}
