//! A child's stdin (or PTY input): writes go straight to the descriptor when
//! nothing is queued (no task hop for interactive typing); what the kernel
//! does not take at once is queued, in order, for a pump task that writes it
//! as the descriptor becomes writable. A program that never reads its stdin
//! therefore never blocks the caller.
//!
//! The queue is bounded: a write that finds bytes queued and would take
//! the queue past its limit is refused whole ([`StdinFull`]), so nothing is
//! buffered without bound and the caller may retry the same chunk later. A
//! write to an empty queue is always taken, so one chunk larger than the
//! limit still goes through (the frame size bounds it).

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use std::os::fd::OwnedFd;

use bytes::{Buf, Bytes};
use execd_protocol::limits::{Limit, LimitExceeded};
use execd_protocol::process::WriteStatus;
use nix::errno::Errno;
use tokio::io::unix::AsyncFd;
use tracing::debug;

use crate::spawn::ReactorFd;

#[derive(Debug, Default)]
struct State {
    /// Bytes accepted but not yet written, oldest first.
    queue: VecDeque<Bytes>,
    /// Their total.
    queued_bytes: usize,
    /// A pump task owns the queue.
    pumping: bool,
    /// Drop the descriptor once the queue is written (EOF for the program).
    close_requested: bool,
    /// Our end, `None` once closed (by request or because the program's end is gone).
    fd: Option<ReactorFd>,
}

#[derive(Debug)]
pub struct StdinWriter {
    process_id: Arc<str>,
    max_queued: usize,
    state: Mutex<State>,
}

/// A write refused because the process's stdin queue is full.
#[derive(Debug, Clone, thiserror::Error)]
#[error("stdin of process {process_id} is full: {queued} bytes are queued and this write adds {chunk}; nothing was written, retry once the program has read some")]
pub struct StdinFull {
    pub process_id: String,
    pub queued: usize,
    pub chunk: usize,
    pub limit: usize,
}

impl From<StdinFull> for LimitExceeded {
    fn from(full: StdinFull) -> LimitExceeded {
        LimitExceeded::new(Limit::StdinQueueBytes, full.limit, &full)
    }
}

impl State {
    /// Write as much of the queue as the descriptor takes now. `Ok(true)`
    /// when the queue is empty.
    fn write_queued(&mut self, fd: &AsyncFd<OwnedFd>) -> io::Result<bool> {
        while let Some(front) = self.queue.front_mut() {
            match nix::unistd::write(fd.get_ref(), front) {
                Ok(n) => {
                    front.advance(n);
                    self.queued_bytes -= n;
                    if front.is_empty() {
                        self.queue.pop_front();
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Ok(false),
                Err(errno) => return Err(io::Error::from(errno)),
            }
        }
        Ok(true)
    }

    /// Forget what is queued (the program will never read it).
    fn drop_queue(&mut self) {
        self.queue.clear();
        self.queued_bytes = 0;
    }
}

impl StdinWriter {
    /// Stdin of process `process_id`, queueing at most `max_queued` bytes.
    pub fn new(fd: ReactorFd, process_id: Arc<str>, max_queued: usize) -> Arc<StdinWriter> {
        Arc::new(StdinWriter {
            process_id,
            max_queued,
            state: Mutex::new(State {
                fd: Some(fd),
                ..State::default()
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write (or queue) `chunk`, unless bytes are queued and it would take
    /// the queue past its limit. An empty chunk writes nothing and answers
    /// whether stdin is open.
    pub fn write(self: &Arc<Self>, chunk: Bytes) -> Result<WriteStatus, StdinFull> {
        self.push(chunk, true)
    }

    /// Write (or queue) `chunk` whatever is queued (a terminal's EOF byte).
    pub fn write_unbounded(self: &Arc<Self>, chunk: Bytes) -> WriteStatus {
        self.push(chunk, false).unwrap_or(WriteStatus::Accepted)
    }

    fn push(self: &Arc<Self>, chunk: Bytes, bounded: bool) -> Result<WriteStatus, StdinFull> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(fd) = state.fd.clone() else {
            return Ok(WriteStatus::StdinClosed);
        };
        if state.close_requested {
            return Ok(WriteStatus::StdinClosed);
        }
        if chunk.is_empty() {
            return Ok(WriteStatus::Accepted);
        }
        let queued = state.queued_bytes;
        if bounded && queued > 0 && queued.saturating_add(chunk.len()) > self.max_queued {
            return Err(StdinFull {
                process_id: self.process_id.to_string(),
                queued,
                chunk: chunk.len(),
                limit: self.max_queued,
            });
        }
        state.queued_bytes += chunk.len();
        state.queue.push_back(chunk);
        if state.pumping {
            return Ok(WriteStatus::Accepted);
        }
        match state.write_queued(&fd) {
            Ok(true) => {}
            Ok(false) => {
                state.pumping = true;
                tokio::spawn(self.clone().pump(fd));
            }
            Err(err) => {
                // The program closed its stdin: what it will never read is dropped.
                debug!(%err, "stdin closed by the program");
                state.drop_queue();
                state.fd = None;
            }
        }
        Ok(WriteStatus::Accepted)
    }

    /// EOF after whatever is queued.
    pub fn close(&self) {
        let mut state = self.lock();
        state.close_requested = true;
        if !state.pumping {
            state.fd = None;
        }
    }

    /// Write the queue as the descriptor becomes writable. The decision to
    /// stop is taken under the same lock as the last write, so a chunk queued
    /// meanwhile is never stranded.
    async fn pump(self: Arc<Self>, fd: ReactorFd) {
        loop {
            let mut guard = match fd.writable().await {
                Ok(guard) => guard,
                Err(err) => {
                    debug!(%err, "stdin descriptor failed");
                    self.lock().stop(true);
                    return;
                }
            };
            let outcome = guard.try_io(|fd| {
                let mut state = self.lock();
                match state.write_queued(fd) {
                    Ok(true) => state.stop(false),
                    Ok(false) => return Err(io::ErrorKind::WouldBlock.into()),
                    Err(err) => {
                        debug!(%err, "stdin closed by the program");
                        state.stop(true);
                    }
                }
                Ok(())
            });
            if outcome.is_ok() {
                return;
            }
        }
    }
}

impl State {
    /// The pump is done: the queue is written, or the program's end is gone.
    fn stop(&mut self, failed: bool) {
        self.pumping = false;
        if failed {
            self.drop_queue();
            self.fd = None;
        }
        if self.close_requested {
            self.fd = None;
        }
    }
}
