//! Streams of this machine's files ([`ByteSource`], [`ByteSink`]): each
//! runs on a blocking thread of its own, joined to its async side by a
//! channel of a few pieces, so memory stays bounded whatever the size. A
//! file is written under a temporary name in its directory
//! (`.NAME.execd-PID-N.part`) and renamed over its name only when the
//! stream is finished; a stream dropped unfinished removes it. Trees are
//! tar streams ([`crate::tree`]).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use execd_environment::transfer::{
    ByteSink, ByteSource, TransferFormat, WriteOptions, PIECE_BYTES,
};
use execd_environment::EnvError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::fs::{self, io_error, FsError};
use crate::temp_file::TempFile;

/// Pieces queued between a stream's thread and its async side.
const QUEUED_PIECES: usize = 4;

/// What a source thread hands over.
enum Produced {
    Piece(Bytes),
    Done,
    Failed(EnvError),
}

/// A source whose pieces a blocking thread produces.
struct ThreadSource {
    pieces: mpsc::Receiver<Produced>,
    done: bool,
}

#[async_trait]
impl ByteSource for ThreadSource {
    async fn next_piece(&mut self) -> Result<Option<Bytes>, EnvError> {
        if self.done {
            return Ok(None);
        }
        match self.pieces.recv().await {
            Some(Produced::Piece(piece)) => Ok(Some(piece)),
            Some(Produced::Done) => {
                self.done = true;
                Ok(None)
            }
            Some(Produced::Failed(err)) => Err(err),
            None => Err(EnvError::Failed("the reading thread stopped".into())),
        }
    }
}

/// `io::Write` into a source's channel, a piece at a time.
struct PieceWriter {
    buffer: BytesMut,
    pieces: mpsc::Sender<Produced>,
}

impl PieceWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let piece = self.buffer.split().freeze();
        self.buffer.reserve(PIECE_BYTES);
        self.pieces
            .blocking_send(Produced::Piece(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the stream was dropped"))
    }
}

impl Write for PieceWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = PIECE_BYTES - self.buffer.len();
        let taken = data.len().min(room);
        self.buffer.extend_from_slice(&data[..taken]);
        if self.buffer.len() >= PIECE_BYTES {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Run `produce` on a blocking thread, writing into the returned source.
fn spawn_source(
    produce: impl FnOnce(&mut PieceWriter) -> Result<(), FsError> + Send + 'static,
) -> Box<dyn ByteSource> {
    let (tx, rx) = mpsc::channel(QUEUED_PIECES);
    tokio::task::spawn_blocking(move || {
        let mut writer = PieceWriter {
            buffer: BytesMut::with_capacity(PIECE_BYTES),
            pieces: tx.clone(),
        };
        let outcome = produce(&mut writer).and_then(|()| {
            writer.flush().map_err(|source| FsError::Io {
                path: "stream".into(),
                source,
            })
        });
        let last = match outcome {
            Ok(()) => Produced::Done,
            Err(err) => Produced::Failed(err.into()),
        };
        let _ = tx.blocking_send(last);
    });
    Box::new(ThreadSource {
        pieces: rx,
        done: false,
    })
}

/// What a sink thread is handed.
enum Taken {
    Piece(Bytes),
    Finish,
}

/// `io::Read` over a sink's channel: the end of the data is `Finish`; a
/// channel closed without it is an abandoned stream (an error).
pub(crate) struct PieceReader {
    pieces: mpsc::Receiver<Taken>,
    current: Bytes,
    finished: bool,
}

impl PieceReader {
    /// The rest of the current piece, or the next one; empty at the end.
    /// A file is written a whole piece at a time from here: no copy
    /// through a small buffer, and large writes let the page cache use
    /// large folios.
    fn next_piece(&mut self) -> io::Result<Bytes> {
        while self.current.is_empty() {
            if self.finished {
                return Ok(Bytes::new());
            }
            match self.pieces.blocking_recv() {
                Some(Taken::Piece(piece)) => self.current = piece,
                Some(Taken::Finish) => self.finished = true,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the stream was abandoned before it was finished",
                    ))
                }
            }
        }
        Ok(std::mem::take(&mut self.current))
    }

    /// Wait until the current piece has data (false at the end).
    fn fill(&mut self) -> io::Result<bool> {
        if self.current.is_empty() {
            self.current = self.next_piece()?;
        }
        Ok(!self.current.is_empty())
    }
}

impl Read for PieceReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if !self.fill()? {
            return Ok(0);
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

/// A sink whose pieces a blocking thread consumes.
struct ThreadSink {
    pieces: mpsc::Sender<Taken>,
    thread: Option<JoinHandle<Result<(), FsError>>>,
    taken: u64,
}

impl ThreadSink {
    /// How the thread ended (`Ok` only if it took everything it needed).
    async fn join(&mut self) -> Result<(), EnvError> {
        let Some(thread) = self.thread.take() else {
            return Err(EnvError::Failed("the stream has already failed".into()));
        };
        match thread.await {
            Ok(result) => result.map_err(EnvError::from),
            Err(err) => Err(EnvError::Failed(format!(
                "the writing thread failed: {err}"
            ))),
        }
    }
}

#[async_trait]
impl ByteSink for ThreadSink {
    async fn write_piece(&mut self, piece: Bytes) -> Result<(), EnvError> {
        let length = piece.len() as u64;
        if self.pieces.send(Taken::Piece(piece)).await.is_err() {
            // The thread stopped early: say why.
            return Err(match self.join().await {
                Err(err) => err,
                Ok(()) => EnvError::InvalidInput("data past the end of the stream".into()),
            });
        }
        self.taken += length;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<u64, EnvError> {
        let _ = self.pieces.send(Taken::Finish).await;
        self.join().await?;
        Ok(self.taken)
    }
}

/// Run `consume` on a blocking thread, reading what the returned sink takes.
fn spawn_sink(
    consume: impl FnOnce(&mut PieceReader) -> Result<(), FsError> + Send + 'static,
) -> Box<dyn ByteSink> {
    let (tx, rx) = mpsc::channel(QUEUED_PIECES);
    let thread = tokio::task::spawn_blocking(move || {
        let mut reader = PieceReader {
            pieces: rx,
            current: Bytes::new(),
            finished: false,
        };
        consume(&mut reader)
    });
    Box::new(ThreadSink {
        pieces: tx,
        thread: Some(thread),
        taken: 0,
    })
}

/// A stream of the file or tree at `path`.
pub async fn open_read(
    path: &str,
    format: TransferFormat,
) -> Result<Box<dyn ByteSource>, EnvError> {
    let path = fs::absolute(path)?;
    match format {
        TransferFormat::File => {
            let opened = path.clone();
            let (file, _) = tokio::task::spawn_blocking(move || fs::open_regular(&opened))
                .await
                .map_err(|err| EnvError::Failed(format!("filesystem task failed: {err}")))??;
            Ok(spawn_source(move |out| read_file_into(file, &path, out)))
        }
        TransferFormat::Tree => {
            let checked = path.clone();
            tokio::task::spawn_blocking(move || crate::tree::check_root(&checked))
                .await
                .map_err(|err| EnvError::Failed(format!("filesystem task failed: {err}")))??;
            Ok(spawn_source(move |out| crate::tree::build(&path, out)))
        }
    }
}

fn read_file_into(file: File, path: &Path, out: &mut PieceWriter) -> Result<(), FsError> {
    loop {
        // `read_to_end` reads into the piece's spare capacity: no zeroing
        // of a whole piece before every read.
        let mut piece = Vec::with_capacity(PIECE_BYTES);
        (&file)
            .take(PIECE_BYTES as u64)
            .read_to_end(&mut piece)
            .map_err(io_error(path))?;
        let filled = piece.len();
        if filled == 0 {
            return Ok(());
        }
        out.pieces
            .blocking_send(Produced::Piece(Bytes::from(piece)))
            .map_err(|_| io_error(path)(io::Error::other("the stream was dropped")))?;
        if filled < PIECE_BYTES {
            return Ok(());
        }
    }
}

/// A sink that writes the file or unpacks the tree at `path`.
pub async fn open_write(path: &str, options: WriteOptions) -> Result<Box<dyn ByteSink>, EnvError> {
    let path = fs::absolute(path)?;
    match options.format {
        TransferFormat::File => {
            let target = path.clone();
            let temp = tokio::task::spawn_blocking(move || TempFile::create(&target))
                .await
                .map_err(|err| EnvError::Failed(format!("filesystem task failed: {err}")))??;
            Ok(spawn_sink(move |input| fill_and_rename(temp, input, &path)))
        }
        TransferFormat::Tree => {
            let target = tokio::task::spawn_blocking(move || crate::tree::prepare_root(&path))
                .await
                .map_err(|err| EnvError::Failed(format!("filesystem task failed: {err}")))??;
            Ok(spawn_sink(move |input| {
                crate::tree::unpack_into(target, input, options.preserve)
            }))
        }
    }
}

/// Copy `input` into `temp`, keep the mode of a file it replaces, and
/// rename it to `target`.
fn fill_and_rename(
    mut temp: TempFile,
    input: &mut PieceReader,
    target: &Path,
) -> Result<(), FsError> {
    let file = temp
        .file
        .as_mut()
        .ok_or_else(|| FsError::Refused("no file".into()))?;
    loop {
        let piece = input.next_piece().map_err(io_error(target))?;
        if piece.is_empty() {
            break;
        }
        file.write_all(&piece).map_err(io_error(target))?;
    }
    if let Ok(meta) = std::fs::metadata(target) {
        let mode = meta.permissions().mode() & fs::MODE_BITS;
        let _ = file.set_permissions(std::fs::Permissions::from_mode(mode));
    }
    temp.rename_to(target)
}
