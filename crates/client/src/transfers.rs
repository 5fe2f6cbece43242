//! The client's side of `fs/upload` / `fs/download` streams: a table by
//! `streamId` that the reading task feeds (download pieces, the server's
//! `fs/transferAck` and `fs/transferEnd`), and the [`RemoteSink`] and
//! [`RemoteSource`] that `RemoteEnvironment::open_write`/`open_read` hand
//! out. An upload sends at most `window` pieces past the last the server
//! acknowledged (credits in a semaphore, closed when the stream fails); a
//! download acknowledges each piece as it is taken. Streams do not survive
//! a lost connection: a resume or the end of the session fails them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use execd_environment::{ByteSink, ByteSource, EnvError};
use execd_protocol::binary::{encode_piece, PieceFrame};
use execd_protocol::transfer::{
    self as tp, TransferAck, TransferCancel, TransferEnd, UploadFinishParams, UploadFinished,
};
use tokio::sync::{mpsc, Semaphore};

use crate::client::ExecServerClient;

/// How long the server may take to put a finished upload in place.
const FINISH_TIMEOUT: Duration = Duration::from_secs(600);

/// What a download's reader is handed.
pub(crate) enum DownloadEvent {
    Piece { seq: u64, data: Bytes },
    End(TransferEnd),
    Lost(String),
}

struct Upload {
    credits: Arc<Semaphore>,
    failure: Arc<Mutex<Option<String>>>,
    acked: u64,
}

enum Entry {
    Upload(Upload),
    Download(mpsc::UnboundedSender<DownloadEvent>),
}

/// The open streams of one client.
#[derive(Default)]
pub(crate) struct ClientTransfers {
    streams: Mutex<HashMap<u32, Entry>>,
    next_id: AtomicU32,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClientTransfers {
    fn new_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn remove(&self, id: u32) {
        lock(&self.streams).remove(&id);
    }

    /// A download piece from the reading task.
    pub(crate) fn piece(&self, piece: PieceFrame) {
        if let Some(Entry::Download(tx)) = lock(&self.streams).get(&piece.stream_id) {
            let _ = tx.send(DownloadEvent::Piece {
                seq: piece.seq,
                data: piece.data,
            });
        }
    }

    /// The server wrote upload pieces up to `ack.seq`.
    pub(crate) fn ack(&self, ack: TransferAck) {
        if let Some(Entry::Upload(upload)) = lock(&self.streams).get_mut(&ack.stream_id) {
            let done = ack.seq.saturating_add(1);
            if done > upload.acked {
                let more = usize::try_from(done - upload.acked).unwrap_or(usize::MAX);
                upload.acked = done;
                upload
                    .credits
                    .add_permits(more.min(Semaphore::MAX_PERMITS / 2));
            }
        }
    }

    /// A download is over, or an upload failed.
    pub(crate) fn end(&self, end: TransferEnd) {
        match lock(&self.streams).get(&end.stream_id) {
            Some(Entry::Download(tx)) => {
                let _ = tx.send(DownloadEvent::End(end));
            }
            Some(Entry::Upload(upload)) => {
                let message = end
                    .error
                    .unwrap_or_else(|| "the server ended the upload".into());
                *lock(&upload.failure) = Some(message);
                upload.credits.close();
            }
            None => {}
        }
    }

    /// The connection was lost or the session ended: every stream fails.
    pub(crate) fn fail_all(&self, reason: &str) {
        let message = format!("the connection was lost during the transfer: {reason}");
        for (_, entry) in lock(&self.streams).drain() {
            match entry {
                Entry::Download(tx) => {
                    let _ = tx.send(DownloadEvent::Lost(message.clone()));
                }
                Entry::Upload(upload) => {
                    *lock(&upload.failure) = Some(message.clone());
                    upload.credits.close();
                }
            }
        }
    }
}

/// Tell the server a stream is abandoned (from a drop: in a task).
fn cancel_later(client: &ExecServerClient, id: u32) {
    client.transfers().remove(id);
    let client = client.clone();
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _: Result<serde_json::Value, _> = client
                .call(tp::TRANSFER_CANCEL, &TransferCancel { stream_id: id })
                .await;
        });
    }
}

/// Open an upload of `path` on the server.
pub(crate) async fn open_upload(
    client: &ExecServerClient,
    path: &str,
    format: tp::TransferFormat,
    preserve: bool,
) -> Result<Box<dyn ByteSink>, EnvError> {
    let transfers = client.transfers();
    let id = transfers.new_id();
    let credits = Arc::new(Semaphore::new(0));
    let failure = Arc::new(Mutex::new(None));
    lock(&transfers.streams).insert(
        id,
        Entry::Upload(Upload {
            credits: credits.clone(),
            failure: failure.clone(),
            acked: 0,
        }),
    );
    let params = tp::UploadParams {
        stream_id: id,
        path: path.to_string(),
        format,
        preserve,
    };
    let started: tp::TransferStarted = match client.call(tp::UPLOAD, &params).await {
        Ok(started) => started,
        Err(err) => {
            transfers.remove(id);
            return Err(err.into());
        }
    };
    credits.add_permits(started.window.max(1) as usize);
    Ok(Box::new(RemoteSink {
        client: client.clone(),
        id,
        credits,
        failure,
        piece_bytes: started.piece_bytes.clamp(1, tp::MAX_PIECE_BYTES) as usize,
        sent: 0,
        taken: 0,
        finished: false,
    }))
}

/// An upload: pieces go as binary frames within the window.
struct RemoteSink {
    client: ExecServerClient,
    id: u32,
    credits: Arc<Semaphore>,
    failure: Arc<Mutex<Option<String>>>,
    piece_bytes: usize,
    sent: u64,
    taken: u64,
    finished: bool,
}

impl RemoteSink {
    fn failed(&self) -> EnvError {
        let message = lock(&self.failure)
            .clone()
            .unwrap_or_else(|| "the upload failed".into());
        EnvError::Failed(message)
    }
}

#[async_trait]
impl ByteSink for RemoteSink {
    async fn write_piece(&mut self, mut piece: Bytes) -> Result<(), EnvError> {
        while !piece.is_empty() {
            let part = piece.split_to(piece.len().min(self.piece_bytes));
            match self.credits.acquire().await {
                Ok(credit) => credit.forget(),
                Err(_) => return Err(self.failed()),
            }
            let frame = encode_piece(self.id, self.sent, &part);
            self.client.send_binary(frame).await?;
            self.sent += 1;
            self.taken += part.len() as u64;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<u64, EnvError> {
        let params = UploadFinishParams {
            stream_id: self.id,
            pieces: self.sent,
        };
        self.finished = true;
        let result: Result<UploadFinished, _> = self
            .client
            .call_with_timeout(tp::UPLOAD_FINISH, &params, FINISH_TIMEOUT)
            .await;
        self.client.transfers().remove(self.id);
        Ok(result?.bytes)
    }
}

impl Drop for RemoteSink {
    fn drop(&mut self) {
        if !self.finished {
            cancel_later(&self.client, self.id);
        }
    }
}

/// Open a download of `path` from the server.
pub(crate) async fn open_download(
    client: &ExecServerClient,
    path: &str,
    format: tp::TransferFormat,
) -> Result<Box<dyn ByteSource>, EnvError> {
    let transfers = client.transfers();
    let id = transfers.new_id();
    let (tx, rx) = mpsc::unbounded_channel();
    lock(&transfers.streams).insert(id, Entry::Download(tx));
    let params = tp::DownloadParams {
        stream_id: id,
        path: path.to_string(),
        format,
    };
    let started: Result<tp::TransferStarted, _> = client.call(tp::DOWNLOAD, &params).await;
    if let Err(err) = started {
        transfers.remove(id);
        return Err(err.into());
    }
    Ok(Box::new(RemoteSource {
        client: client.clone(),
        id,
        events: rx,
        next: 0,
        done: false,
    }))
}

/// A download: pieces in seq order, each acknowledged as it is taken.
struct RemoteSource {
    client: ExecServerClient,
    id: u32,
    events: mpsc::UnboundedReceiver<DownloadEvent>,
    next: u64,
    done: bool,
}

#[async_trait]
impl ByteSource for RemoteSource {
    async fn next_piece(&mut self) -> Result<Option<Bytes>, EnvError> {
        if self.done {
            return Ok(None);
        }
        let event = self.events.recv().await;
        match event {
            Some(DownloadEvent::Piece { seq, data }) => {
                if seq != self.next {
                    self.done = true;
                    return Err(EnvError::Protocol(format!(
                        "download stream {}: piece {seq} came where {} was due",
                        self.id, self.next
                    )));
                }
                self.next += 1;
                let ack = TransferAck {
                    stream_id: self.id,
                    seq,
                };
                self.client.notify(tp::TRANSFER_ACK, &ack).await?;
                Ok(Some(data))
            }
            Some(DownloadEvent::End(end)) => {
                self.done = true;
                self.client.transfers().remove(self.id);
                match end.error {
                    Some(error) => Err(EnvError::Failed(error)),
                    None if end.pieces != self.next => Err(EnvError::Protocol(format!(
                        "download stream {} ended after {} pieces; {} arrived",
                        self.id, end.pieces, self.next
                    ))),
                    None => Ok(None),
                }
            }
            Some(DownloadEvent::Lost(reason)) => {
                self.done = true;
                Err(EnvError::ConnectionLost(reason))
            }
            None => {
                self.done = true;
                Err(EnvError::ConnectionLost(
                    "the download stream was dropped".into(),
                ))
            }
        }
    }
}

impl Drop for RemoteSource {
    fn drop(&mut self) {
        if !self.done {
            cancel_later(&self.client, self.id);
        }
    }
}
