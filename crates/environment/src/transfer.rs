//! Streams of file data: a [`ByteSource`] gives a file's bytes (or a
//! directory tree as a tar stream) piece by piece, a [`ByteSink`] takes
//! them and puts the result in place under its name only when finished
//! (dropping a sink unfinished leaves nothing under that name). Both the
//! local filesystem and a remote one (binary `fs/upload`/`fs/download`
//! streams) provide them through [`crate::FileSystem::open_read`] and
//! [`crate::FileSystem::open_write`]; [`pump`] moves one into the other.

use async_trait::async_trait;
use bytes::Bytes;

use crate::EnvError;
pub use execd_protocol::transfer::TransferFormat;

/// The pieces a source gives, at most.
pub const PIECE_BYTES: usize = execd_protocol::transfer::MAX_PIECE_BYTES as usize;

/// Bytes in order, a piece at a time.
#[async_trait]
pub trait ByteSource: Send {
    /// The next piece, or `None` at the end.
    async fn next_piece(&mut self) -> Result<Option<Bytes>, EnvError>;
}

/// Where a stream goes. Nothing is under the final name until
/// [`ByteSink::finish`] succeeds; dropping it unfinished abandons the
/// stream and removes what was written.
#[async_trait]
pub trait ByteSink: Send {
    /// Take the next piece (of any size).
    async fn write_piece(&mut self, piece: Bytes) -> Result<(), EnvError>;
    /// Everything was written: put it in place. Returns the bytes taken.
    async fn finish(self: Box<Self>) -> Result<u64, EnvError>;
}

/// How a stream is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// File or tree.
    pub format: TransferFormat,
    /// Trees: also keep times and the setuid, setgid and sticky bits of
    /// every entry (permission bits are always kept).
    pub preserve: bool,
}

impl WriteOptions {
    /// A single file.
    pub fn file() -> Self {
        WriteOptions::default()
    }

    /// A tree; `preserve` as `cp -p`.
    pub fn tree(preserve: bool) -> Self {
        WriteOptions {
            format: TransferFormat::Tree,
            preserve,
        }
    }
}

/// Move every piece of `source` into `sink` and finish it; `progress` gets
/// the bytes moved so far. Returns the total.
pub async fn pump(
    mut source: Box<dyn ByteSource>,
    mut sink: Box<dyn ByteSink>,
    mut progress: impl FnMut(u64) + Send,
) -> Result<u64, EnvError> {
    let mut moved = 0u64;
    while let Some(piece) = source.next_piece().await? {
        moved += piece.len() as u64;
        sink.write_piece(piece).await?;
        progress(moved);
    }
    sink.finish().await
}
