//! A session's `fs/upload` and `fs/download` streams, by the client's
//! `streamId`: at most `max_transfers` at once, each with a task of its
//! own. An upload's pieces (binary frames) go through a channel of
//! `transfer_window` + 1 places to the task that writes them, in seq
//! order, and acknowledges each; a client running further ahead than the
//! window fails its upload rather than making the server hold more. A
//! download's task sends at most `transfer_window` pieces past the last
//! the client acknowledged. A stream ends with its connection: the table
//! is emptied (uploads abandoned, their temporary files removed; downloads
//! stopped).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;
use execd_environment::{ByteSink, ByteSource, EnvError};
use execd_protocol::binary::{encode_piece, PieceFrame};
use execd_protocol::limits::{Limit, LimitExceeded};
use execd_protocol::transfer::{
    TransferAck, TransferEnd, MAX_PIECE_BYTES, TRANSFER_ACK, TRANSFER_END,
};
use execd_protocol::{ErrorCode, RpcError};
use execd_transport::outbox::{Frame, Link, Outbox, Wire};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::rpc;

/// What an upload's task is handed.
pub enum UploadInput {
    Piece {
        seq: u64,
        data: Bytes,
    },
    Finish {
        pieces: u64,
        reply: oneshot::Sender<Result<u64, EnvError>>,
    },
}

enum Stream {
    /// Its sink or source is being opened.
    Opening,
    Upload(mpsc::Sender<UploadInput>),
    /// An upload that failed; `fs/uploadFinish` gets this error.
    Failed(String),
    Download {
        acked: watch::Sender<u64>,
        _stop: DropGuard,
    },
}

/// An `fs/uploadFinish` on its way to its upload's task.
pub struct Finishing {
    id: u32,
    task: mpsc::Sender<UploadInput>,
    finish: UploadInput,
    outcome: oneshot::Receiver<Result<u64, EnvError>>,
}

impl Finishing {
    /// The bytes written, once the upload is in place.
    pub async fn wait(self) -> Result<u64, EnvError> {
        let gone = || EnvError::Failed(format!("upload stream {} ended", self.id));
        self.task.send(self.finish).await.map_err(|_| gone())?;
        self.outcome.await.map_err(|_| gone())?
    }
}

/// Where a stream's frames go: the connection that opened it.
#[derive(Clone)]
pub struct Route {
    pub outbox: Arc<Outbox<Wire>>,
    pub link: Link,
}

impl Route {
    async fn notify<T: serde::Serialize>(&self, method: &str, params: T) -> bool {
        let frame = rpc::notification(method, params);
        self.outbox.send_on(&self.link, Frame::Text(frame)).await
    }
}

/// One session's streams.
pub struct Transfers {
    streams: Mutex<HashMap<u32, Stream>>,
    max: usize,
    window: u32,
}

impl Transfers {
    pub fn new(max: usize, window: u32) -> Arc<Transfers> {
        Arc::new(Transfers {
            streams: Mutex::new(HashMap::new()),
            max,
            window: window.max(1),
        })
    }

    /// Pieces in flight per stream.
    pub fn window(&self) -> u32 {
        self.window
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<u32, Stream>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Take `id` for a stream being opened.
    pub fn reserve(&self, id: u32) -> Result<(), RpcError> {
        let mut streams = self.streams();
        if streams.contains_key(&id) {
            return Err(RpcError::new(
                ErrorCode::InvalidParams,
                format!("streamId {id} is already in use on this connection"),
            ));
        }
        if streams.len() >= self.max {
            return Err(LimitExceeded::new(
                Limit::Transfers,
                self.max,
                format!("{} transfers of this connection are open", self.max),
            )
            .into());
        }
        streams.insert(id, Stream::Opening);
        Ok(())
    }

    /// Give `id` up (its opening failed, or it is over).
    pub fn release(&self, id: u32) {
        self.streams().remove(&id);
    }

    /// The upload `id` is open: run it.
    pub fn start_upload(self: &Arc<Self>, id: u32, sink: Box<dyn ByteSink>, route: Route) {
        let (tx, rx) = mpsc::channel(self.window as usize + 1);
        self.streams().insert(id, Stream::Upload(tx));
        tokio::spawn(run_upload(id, sink, rx, route, Arc::downgrade(self)));
    }

    /// The download `id` is open: run it.
    pub fn start_download(self: &Arc<Self>, id: u32, source: Box<dyn ByteSource>, route: Route) {
        let (acked, acks) = watch::channel(0u64);
        let stop = CancellationToken::new();
        self.streams().insert(
            id,
            Stream::Download {
                acked,
                _stop: stop.clone().drop_guard(),
            },
        );
        let window = u64::from(self.window);
        tokio::spawn(run_download(
            id,
            source,
            acks,
            window,
            stop,
            route,
            Arc::downgrade(self),
        ));
    }

    /// A piece from the client. The error (if any) is the `fs/transferEnd`
    /// to send back.
    pub fn deliver(&self, piece: PieceFrame) -> Option<TransferEnd> {
        let id = piece.stream_id;
        let mut streams = self.streams();
        let failure = match streams.get(&id) {
            Some(Stream::Upload(tx)) if piece.data.len() as u64 > MAX_PIECE_BYTES => format!(
                "piece {} of stream {id} has {} bytes; pieces take at most {MAX_PIECE_BYTES}",
                piece.seq,
                piece.data.len()
            ),
            Some(Stream::Upload(tx)) => match tx.try_send(UploadInput::Piece {
                seq: piece.seq,
                data: piece.data,
            }) {
                Ok(()) => return None,
                // Its task ended (it failed, and says so itself).
                Err(mpsc::error::TrySendError::Closed(_)) => return None,
                Err(mpsc::error::TrySendError::Full(_)) => format!(
                    "stream {id} sent more than {} pieces ahead of fs/transferAck",
                    self.window
                ),
            },
            Some(Stream::Failed(_)) => return None,
            Some(Stream::Opening | Stream::Download { .. }) | None => {
                return Some(TransferEnd {
                    stream_id: id,
                    pieces: 0,
                    bytes: 0,
                    error: Some(format!("no upload stream {id} is open for this piece")),
                })
            }
        };
        streams.insert(id, Stream::Failed(failure.clone()));
        Some(TransferEnd {
            stream_id: id,
            pieces: piece.seq,
            bytes: 0,
            error: Some(failure),
        })
    }

    /// `fs/transferAck` from the client (downloads).
    pub fn ack(&self, ack: TransferAck) {
        if let Some(Stream::Download { acked, .. }) = self.streams().get(&ack.stream_id) {
            acked.send_if_modified(|done| {
                let newer = ack.seq.saturating_add(1) > *done;
                if newer {
                    *done = ack.seq.saturating_add(1);
                }
                newer
            });
        }
    }

    /// Hand `fs/uploadFinish` to upload `id`'s task.
    pub fn finish(&self, id: u32, pieces: u64) -> Result<Finishing, RpcError> {
        let mut streams = self.streams();
        match streams.remove(&id) {
            Some(Stream::Upload(task)) => {
                let (reply, outcome) = oneshot::channel();
                streams.insert(id, Stream::Upload(task.clone()));
                Ok(Finishing {
                    id,
                    task,
                    finish: UploadInput::Finish { pieces, reply },
                    outcome,
                })
            }
            Some(Stream::Failed(message)) => Err(RpcError::new(ErrorCode::Internal, message)),
            other => {
                if let Some(stream) = other {
                    streams.insert(id, stream);
                }
                Err(RpcError::new(
                    ErrorCode::InvalidParams,
                    format!("no upload stream {id} is open"),
                ))
            }
        }
    }

    /// End stream `id` early; false if there was none.
    pub fn cancel(&self, id: u32) -> bool {
        self.streams().remove(&id).is_some()
    }

    /// The connection ended: every stream with it.
    pub fn cancel_all(&self) {
        self.streams().clear();
    }

    fn fail(&self, id: u32, message: String) {
        let mut streams = self.streams();
        if streams.contains_key(&id) {
            streams.insert(id, Stream::Failed(message));
        }
    }
}

async fn run_upload(
    id: u32,
    mut sink: Box<dyn ByteSink>,
    mut input: mpsc::Receiver<UploadInput>,
    route: Route,
    table: Weak<Transfers>,
) {
    let mut next = 0u64;
    let failure = loop {
        match input.recv().await {
            // Cancelled, or the connection ended: the sink is abandoned.
            None => return,
            Some(UploadInput::Piece { seq, data }) => {
                if seq != next {
                    break format!("piece {seq} of stream {id} came out of order; expected {next}");
                }
                if let Err(err) = sink.write_piece(data).await {
                    break err.to_string();
                }
                next += 1;
                route
                    .notify(TRANSFER_ACK, TransferAck { stream_id: id, seq })
                    .await;
            }
            Some(UploadInput::Finish { pieces, reply }) => {
                let outcome = if pieces != next {
                    Err(EnvError::InvalidInput(format!(
                        "fs/uploadFinish says {pieces} pieces of stream {id} were sent; {next} arrived"
                    )))
                } else {
                    sink.finish().await
                };
                if let Some(table) = table.upgrade() {
                    table.release(id);
                }
                let _ = reply.send(outcome);
                return;
            }
        }
    };
    drop(sink);
    if let Some(table) = table.upgrade() {
        table.fail(id, failure.clone());
    }
    let end = TransferEnd {
        stream_id: id,
        pieces: next,
        bytes: 0,
        error: Some(failure),
    };
    route.notify(TRANSFER_END, end).await;
}

async fn run_download(
    id: u32,
    mut source: Box<dyn ByteSource>,
    mut acked: watch::Receiver<u64>,
    window: u64,
    stop: CancellationToken,
    route: Route,
    table: Weak<Transfers>,
) {
    let (mut sent, mut bytes) = (0u64, 0u64);
    let error = loop {
        let room = acked.wait_for(|done| sent < done.saturating_add(window));
        let open = tokio::select! {
            _ = stop.cancelled() => false,
            room = room => room.is_ok(),
        };
        if !open {
            return;
        }
        let piece = tokio::select! {
            _ = stop.cancelled() => return,
            piece = source.next_piece() => piece,
        };
        match piece {
            Ok(Some(piece)) => {
                bytes += piece.len() as u64;
                let frame = encode_piece(id, sent, &piece);
                if !route
                    .outbox
                    .send_on(&route.link, Frame::Binary(frame))
                    .await
                {
                    return;
                }
                sent += 1;
            }
            Ok(None) => break None,
            Err(err) => break Some(err.to_string()),
        }
    };
    if let Some(table) = table.upgrade() {
        table.release(id);
    }
    let end = TransferEnd {
        stream_id: id,
        pieces: sent,
        bytes,
        error,
    };
    route.notify(TRANSFER_END, end).await;
}
