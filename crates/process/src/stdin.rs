//! A child's stdin (or PTY input): writes go straight to the descriptor when
//! nothing is queued (no task hop for interactive typing); what the kernel
//! does not take at once is queued, in order, for a pump task that writes it
//! as the descriptor becomes writable. A program that never reads its stdin
//! therefore never blocks the caller.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use std::os::fd::OwnedFd;

use bytes::{Buf, Bytes};
use execd_protocol::process::WriteStatus;
use nix::errno::Errno;
use tokio::io::unix::AsyncFd;
use tracing::debug;

use crate::spawn::ReactorFd;

#[derive(Debug, Default)]
struct State {
    /// Bytes accepted but not yet written, oldest first.
    queue: VecDeque<Bytes>,
    /// A pump task owns the queue.
    pumping: bool,
    /// Drop the descriptor once the queue is written (EOF for the program).
    close_requested: bool,
    /// Our end, `None` once closed (by request or because the program's end is gone).
    fd: Option<ReactorFd>,
}

#[derive(Debug)]
pub struct StdinWriter {
    state: Mutex<State>,
}

/// Write as much of `queue` as the descriptor takes now. `Ok(true)` when
/// the queue is empty.
fn write_queued(fd: &AsyncFd<OwnedFd>, queue: &mut VecDeque<Bytes>) -> io::Result<bool> {
    while let Some(front) = queue.front_mut() {
        match nix::unistd::write(fd.get_ref(), front) {
            Ok(n) => {
                front.advance(n);
                if front.is_empty() {
                    queue.pop_front();
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => return Ok(false),
            Err(errno) => return Err(io::Error::from(errno)),
        }
    }
    Ok(true)
}

impl StdinWriter {
    pub fn new(fd: ReactorFd) -> Arc<StdinWriter> {
        Arc::new(StdinWriter {
            state: Mutex::new(State {
                fd: Some(fd),
                ..State::default()
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write (or queue) `chunk`. An empty chunk writes nothing and answers
    /// whether stdin is open.
    pub fn write(self: &Arc<Self>, chunk: Bytes) -> WriteStatus {
        let mut state = self.lock();
        let Some(fd) = state.fd.clone() else {
            return WriteStatus::StdinClosed;
        };
        if state.close_requested {
            return WriteStatus::StdinClosed;
        }
        if chunk.is_empty() {
            return WriteStatus::Accepted;
        }
        state.queue.push_back(chunk);
        if state.pumping {
            return WriteStatus::Accepted;
        }
        match write_queued(&fd, &mut state.queue) {
            Ok(true) => {}
            Ok(false) => {
                state.pumping = true;
                tokio::spawn(self.clone().pump(fd));
            }
            Err(err) => {
                // The program closed its stdin: what it will never read is dropped.
                debug!(%err, "stdin closed by the program");
                state.queue.clear();
                state.fd = None;
            }
        }
        WriteStatus::Accepted
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
                match write_queued(fd, &mut state.queue) {
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
            self.queue.clear();
            self.fd = None;
        }
        if self.close_requested {
            self.fd = None;
        }
    }
}
