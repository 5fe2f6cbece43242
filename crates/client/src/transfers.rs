//! The client's side of `fs/upload` / `fs/download` streams: the
//! [`RemoteSink`] and [`RemoteSource`] that
//! `RemoteEnvironment::open_write`/`open_read` hand out (their table of
//! open streams is `transfer_routes`). An upload sends at most `window` pieces past the last the server
//! acknowledged (credits in a semaphore, closed when the stream fails); a
//! download acknowledges each piece as it is taken. Streams do not survive
//! a lost connection: a resume or the end of the session fails them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use execd_environment::{ByteSink, ByteSource, EnvError};
use execd_protocol::binary::encode_piece;
use execd_protocol::transfer::{
    self as tp, TransferAck, TransferCancel, UploadFinishParams, UploadFinished,
};
use tokio::sync::{mpsc, Semaphore};

use crate::client::ExecServerClient;
use crate::transfer_routes::{lock, DownloadEvent};

/// How long the server may take to put a finished upload in place.
const FINISH_TIMEOUT: Duration = Duration::from_secs(600);

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
    let credits = Arc::new(Semaphore::new(0));
    let failure = Arc::new(Mutex::new(None));
    let id = transfers.add_upload(credits.clone(), failure.clone());
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
    let (tx, rx) = mpsc::unbounded_channel();
    let id = transfers.add_download(tx);
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
