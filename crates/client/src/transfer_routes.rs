//! The client's table of open `fs/upload` / `fs/download` streams, by
//! `streamId`, that the reading task feeds: download pieces, the server's
//! `fs/transferAck` (credits back to an upload) and `fs/transferEnd`.
//! Streams do not survive a lost connection: a resume or the end of the
//! session fails them all. The streams themselves are in `transfers`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use execd_protocol::binary::PieceFrame;
use execd_protocol::transfer::{TransferAck, TransferEnd};
use tokio::sync::{mpsc, Semaphore};

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

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl ClientTransfers {
    fn new_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A new upload: `credits` get the server's acks, `failure` its error.
    pub(crate) fn add_upload(
        &self,
        credits: Arc<Semaphore>,
        failure: Arc<Mutex<Option<String>>>,
    ) -> u32 {
        let id = self.new_id();
        let upload = Upload {
            credits,
            failure,
            acked: 0,
        };
        lock(&self.streams).insert(id, Entry::Upload(upload));
        id
    }

    /// A new download, its pieces and end sent to `events`.
    pub(crate) fn add_download(&self, events: mpsc::UnboundedSender<DownloadEvent>) -> u32 {
        let id = self.new_id();
        lock(&self.streams).insert(id, Entry::Download(events));
        id
    }

    pub(crate) fn remove(&self, id: u32) {
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
