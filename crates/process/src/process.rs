//! One running process: the supervisor task that turns its output and exit
//! into numbered events, its stdin queue, and signalling its process tree.
//!
//! Event order per process is the order the supervisor emits them: output
//! chunks as read; on exit, whatever the pipes already hold is drained
//! first, then `exited`; when every output descriptor reached EOF (the
//! process and every descendant closed it), `closed`. A process with an
//! output window is read only while its log has room (see
//! [`crate::output_log`]): past it the program blocks in its writes.

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use execd_protocol::process::{OutputStream, TerminalSize, WriteStatus};
use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tracing::debug;

use execd_policy::tree::Escalated;

use crate::budget::ProcessSlot;
use crate::output_log::{EventSink, ExitInfo, OutputLog, ProcessEvent};
use crate::signal::name_of;
use crate::spawn::{set_window_size, ReactorFd, Spawned};
use crate::stdin::{StdinFull, StdinWriter};
use crate::write_ids::WriteIds;

/// Largest single read from a child's output.
const MAX_READ: usize = 1024 * 1024;
/// Read size when the kernel does not say how much is waiting.
const FALLBACK_READ: usize = 16 * 1024;

/// The live descriptors of a process, released when it closes.
#[derive(Debug, Default)]
struct LiveIo {
    stdin: Option<Arc<StdinWriter>>,
    pty: Option<ReactorFd>,
}

/// A process started by a [`crate::ProcessTable`].
#[derive(Debug)]
pub struct Process {
    id: Arc<str>,
    /// Process group id (= pid of the child); for PTYs also the session id.
    pgid: i32,
    tty: bool,
    log: Arc<OutputLog>,
    io: Mutex<LiveIo>,
    terminating: AtomicBool,
    /// Process groups of escalated commands run for this tree.
    escalated: Option<Escalated>,
    /// How `/proc` names the write side of the output (see
    /// [`crate::procfs::output_link`]), to find holders outside the tree.
    output_links: Vec<String>,
    /// Recent `writeId`s and their results.
    write_ids: Mutex<WriteIds>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("process {0} has no terminal to resize")]
    NotATerminal(String),
    #[error("process {0} has already closed")]
    Closed(String),
    #[error("cannot resize the terminal of process {id}: {source}")]
    Resize { id: String, source: io::Error },
}

impl Process {
    /// Take ownership of a freshly spawned child and start supervising it.
    /// Events go to `events` (closed receivers are tolerated) and into
    /// `log`; `slot` is held until the process has closed; at most
    /// `max_stdin_queue` bytes wait for its stdin.
    pub fn start(
        id: Arc<str>,
        spawned: Spawned,
        log: OutputLog,
        slot: ProcessSlot,
        max_stdin_queue: usize,
        events: Arc<dyn EventSink>,
    ) -> Arc<Process> {
        let Spawned {
            child,
            pid,
            stdin,
            outputs,
            pty,
            escalated,
            // Taken by the table, which serves it.
            proxy_listener: _,
        } = spawned;
        let stdin = stdin.map(|fd| StdinWriter::new(fd, id.clone(), max_stdin_queue));
        let output_links = outputs
            .iter()
            .filter_map(|(_, fd)| crate::procfs::output_link(fd.get_ref().as_fd()))
            .collect();
        let process = Arc::new(Process {
            log: Arc::new(log),
            id,
            pgid: pid,
            tty: pty.is_some(),
            io: Mutex::new(LiveIo { stdin, pty }),
            terminating: AtomicBool::new(false),
            escalated,
            output_links,
            write_ids: Mutex::new(WriteIds::default()),
        });
        let outputs = outputs
            .into_iter()
            .map(|(stream, fd)| OutputPipe {
                grow: stream == OutputStream::Stdout,
                stream,
                fd,
            })
            .collect();
        tokio::spawn(supervise(process.clone(), child, outputs, slot, events));
        process
    }

    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The child's pid (also its process group id).
    pub fn pid(&self) -> i32 {
        self.pgid
    }

    pub fn log(&self) -> &Arc<OutputLog> {
        &self.log
    }

    /// Started on a terminal.
    pub fn tty(&self) -> bool {
        self.tty
    }

    /// A write with a `writeId`: a remembered id returns its first result
    /// and writes nothing; otherwise `write` runs and a result that wrote
    /// (or found stdin closed) is remembered.
    pub fn write_once(
        &self,
        write_id: &str,
        write: impl FnOnce() -> Result<WriteStatus, StdinFull>,
    ) -> Result<WriteStatus, StdinFull> {
        let mut ids = self.write_ids.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = ids.get(write_id) {
            return Ok(status);
        }
        let status = write()?;
        if matches!(status, WriteStatus::Accepted | WriteStatus::StdinClosed) {
            ids.remember(write_id, status);
        }
        Ok(status)
    }

    fn live(&self) -> MutexGuard<'_, LiveIo> {
        self.io.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue bytes for the process's stdin (or terminal input), unless
    /// the queue is full.
    pub fn write(&self, chunk: Bytes) -> Result<WriteStatus, StdinFull> {
        let stdin = self.live().stdin.clone();
        stdin.map_or(Ok(WriteStatus::StdinClosed), |stdin| stdin.write(chunk))
    }

    /// EOF for the program: a pipe's write end is closed; a terminal stays
    /// open (it is also the output) and gets its end-of-file character
    /// (VEOF, ^D), which a program reading in canonical mode takes as EOF.
    pub fn close_stdin(&self) {
        if self.tty {
            let stdin = self.live().stdin.clone();
            if let Some(stdin) = stdin {
                // EOF is never refused: one byte past a full queue.
                stdin.write_unbounded(Bytes::from_static(b"\x04"));
            }
        } else if let Some(stdin) = self.live().stdin.take() {
            stdin.close();
        }
    }

    pub fn resize(&self, size: TerminalSize) -> Result<(), ControlError> {
        let live = self.live();
        let Some(pty) = &live.pty else {
            return Err(if self.tty {
                ControlError::Closed(self.id.to_string())
            } else {
                ControlError::NotATerminal(self.id.to_string())
            });
        };
        set_window_size(pty.get_ref().as_fd(), size).map_err(|source| ControlError::Resize {
            id: self.id.to_string(),
            source,
        })
    }

    /// Send a signal to the whole process tree (group, or session for PTYs).
    /// Returns false if the process had already exited.
    pub fn signal(&self, signal: Signal) -> bool {
        if self.log.is_closed() {
            return false;
        }
        // Decided before signalling: the signal may end it at once.
        let running = self.log.exit().is_none();
        self.signal_all(signal);
        running
    }

    /// SIGTERM the tree now, SIGKILL whatever is left after `grace`.
    /// Returns true if the process itself was still running.
    pub fn terminate(self: &Arc<Self>, grace: Duration) -> bool {
        let running = self.signal(Signal::SIGTERM);
        if !self.log.is_closed() && !self.terminating.swap(true, Ordering::SeqCst) {
            let process = self.clone();
            tokio::spawn(async move {
                if tokio::time::timeout(grace, process.closed()).await.is_err() {
                    debug!(id = %process.id, "grace period over; killing the process tree");
                    process.signal_all(Signal::SIGKILL);
                    process.kill_output_holders().await;
                }
            });
        }
        running
    }

    /// SIGKILL the tree at once (used when the owner goes away).
    pub fn kill(&self) {
        if !self.log.is_closed() {
            self.signal_all(Signal::SIGKILL);
        }
    }

    /// SIGKILL every process still holding the output: a descendant that
    /// left the group and session (`setsid`) would otherwise keep `closed`
    /// from ever coming. (A holder found here could exit and its pid be
    /// reused before the signal, as with any pid-based kill; the window is
    /// one `/proc` scan.)
    async fn kill_output_holders(&self) {
        let links = self.output_links.clone();
        let scan = tokio::task::spawn_blocking(move || {
            for pid in crate::procfs::holders(&links) {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        });
        if let Err(err) = scan.await {
            debug!(id = %self.id, %err, "scanning for output holders failed");
        }
    }

    /// Signal the tree and the groups of its escalated commands.
    fn signal_all(&self, signal: Signal) {
        signal_tree(self.pgid, self.tty, signal);
        let groups: Vec<i32> = self
            .escalated
            .as_ref()
            .and_then(|groups| groups.lock().ok().map(|g| g.iter().copied().collect()))
            .unwrap_or_default();
        for group in groups {
            signal_tree(group, false, signal);
        }
    }

    /// Resolves once the process has closed (its last event was emitted).
    pub async fn closed(&self) {
        let mut version = self.log.subscribe();
        while !self.log.is_closed() {
            if version.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Signal a process group; for a PTY process also every process left in its
/// session (interactive shells put jobs in groups of their own).
fn signal_tree(pgid: i32, whole_session: bool, signal: Signal) {
    match nix::sys::signal::killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(err) => debug!(pgid, %err, "killpg failed"),
    }
    if whole_session {
        for pid in crate::procfs::session_members(pgid) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
        }
    }
}

/// Our read end of one output source. It holds no buffer: each read
/// allocates exactly what is waiting, which becomes the chunk without a copy.
struct OutputPipe {
    stream: OutputStream,
    fd: ReactorFd,
    /// A stdout pipe not yet grown (see [`crate::spawn::grow_stdout_pipe`]).
    grow: bool,
}

/// The outcome of one read: data, or the end of the source.
enum ReadOutcome {
    Data(Bytes),
    Eof,
}

impl OutputPipe {
    /// Wait for data (at most `room` bytes). Cancel-safe: bytes are
    /// consumed only inside `try_io`.
    async fn read(&mut self, room: usize) -> io::Result<ReadOutcome> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| read_available(fd, room)) {
                Ok(Ok(read)) => {
                    // A short read emptied the source: waiting for the next
                    // readiness event saves the read that would only say
                    // EAGAIN (and, on a PTY, a wait for the TTY's flush
                    // work). Data arriving after the read raises a new event,
                    // which this clear does not erase.
                    if read.drained {
                        guard.clear_ready();
                    }
                    self.grow_when_full(&read.outcome);
                    return Ok(read.outcome);
                }
                Ok(Err(err)) => return Err(err),
                Err(_would_block) => continue,
            }
        }
    }

    /// A read that found a stdout pipe full (bulk output) grows it, once.
    fn grow_when_full(&mut self, outcome: &ReadOutcome) {
        if self.grow
            && matches!(outcome, ReadOutcome::Data(chunk) if chunk.len() >= crate::spawn::DEFAULT_PIPE_BYTES)
        {
            self.grow = false;
            crate::spawn::grow_stdout_pipe(self.fd.get_ref().as_fd());
        }
    }

    /// Read what is there without waiting; `None` when nothing is.
    fn read_now(&mut self, room: usize) -> io::Result<Option<ReadOutcome>> {
        match read_available(&self.fd, room) {
            Ok(read) => {
                self.grow_when_full(&read.outcome);
                Ok(Some(read.outcome))
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// One read, and whether it left the source empty.
struct PipeRead {
    outcome: ReadOutcome,
    /// The read got less than it asked for: nothing was left behind.
    drained: bool,
}

/// One read of whatever is waiting (at most `MAX_READ` and `room`), sized by FIONREAD.
fn read_available(
    fd: &tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
    room: usize,
) -> io::Result<PipeRead> {
    use std::os::fd::AsRawFd;
    let mut waiting: libc::c_int = 0;
    // SAFETY: FIONREAD stores one `c_int` through the valid pointer.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut waiting) };
    // One byte more than is waiting, so a read that comes back short proves
    // the source empty.
    let want = match usize::try_from(waiting) {
        Ok(n) if rc == 0 && n > 0 => n.min(MAX_READ - 1) + 1,
        _ => FALLBACK_READ,
    }
    .min(room.max(1));
    let mut buf = bytes::BytesMut::with_capacity(want);
    let n = read_into_spare(fd, &mut buf, want)?;
    if n == 0 {
        return Ok(PipeRead {
            outcome: ReadOutcome::Eof,
            drained: false,
        });
    }
    // Do not keep a mostly empty allocation alive in the retained log.
    let chunk = if n < want / 2 {
        Bytes::copy_from_slice(&buf)
    } else {
        buf.freeze()
    };
    Ok(PipeRead {
        outcome: ReadOutcome::Data(chunk),
        drained: n < want,
    })
}

/// Read up to `want` bytes into `buf`'s spare capacity (no zeroing first)
/// and extend its length by what was read.
fn read_into_spare(
    fd: &tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
    buf: &mut bytes::BytesMut,
    want: usize,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let spare = buf.spare_capacity_mut();
    let want = want.min(spare.len());
    loop {
        // SAFETY: the kernel writes at most `want` bytes into memory we own
        // (spare capacity); only the bytes it reports are marked initialised.
        let n = unsafe { libc::read(fd.as_raw_fd(), spare.as_mut_ptr().cast(), want) };
        if n >= 0 {
            let n = n as usize;
            // SAFETY: `read` initialised exactly `n` bytes of the spare capacity.
            unsafe { buf.set_len(buf.len() + n) };
            return Ok(n);
        }
        match Errno::last() {
            Errno::EINTR => continue,
            // A PTY master reads EIO once every slave descriptor is closed.
            Errno::EIO => return Ok(0),
            errno => return Err(io::Error::from(errno)),
        }
    }
}

/// Waits for room in the output window, then for data on one optional
/// source; never resolves for `None`.
async fn read_some(pipe: &mut Option<OutputPipe>, log: &OutputLog) -> io::Result<ReadOutcome> {
    match pipe {
        Some(pipe) => {
            let room = log.wait_room().await;
            pipe.read(room).await
        }
        None => std::future::pending().await,
    }
}

struct Supervisor {
    process: Arc<Process>,
    events: Arc<dyn EventSink>,
}

impl Supervisor {
    async fn emit(&self, event: ProcessEvent) {
        // A sink whose consumer is gone drops events; we keep draining anyway
        // so the child never blocks on a full pipe.
        self.events.deliver(event).await;
    }

    /// Handle one read result; returns false when the source is finished.
    async fn on_read(&self, stream: OutputStream, result: io::Result<ReadOutcome>) -> bool {
        match result {
            Ok(ReadOutcome::Data(chunk)) => {
                self.emit(self.process.log.push_output(stream, chunk)).await;
                true
            }
            Ok(ReadOutcome::Eof) => false,
            Err(err) => {
                self.process
                    .log
                    .set_failure(format!("reading {stream:?} failed: {err}"));
                false
            }
        }
    }

    /// Emit whatever a source holds right now, without waiting.
    async fn drain_now(&self, slot: &mut Option<OutputPipe>) {
        while let Some(pipe) = slot {
            let stream = pipe.stream;
            let room = self.process.log.wait_room().await;
            let more = match pipe.read_now(room) {
                Ok(None) => return,
                Ok(Some(outcome)) => self.on_read(stream, Ok(outcome)).await,
                Err(err) => self.on_read(stream, Err(err)).await,
            };
            if !more {
                *slot = None;
            }
        }
    }
}

async fn supervise(
    process: Arc<Process>,
    mut child: crate::spawn::Child,
    outputs: Vec<OutputPipe>,
    slot: ProcessSlot,
    events: Arc<dyn EventSink>,
) {
    let log = process.log.clone();
    let supervisor = Supervisor { process, events };
    // At most two sources: stdout + stderr, or the PTY master alone.
    let mut outputs = outputs.into_iter();
    let (first, second) = (&mut outputs.next(), &mut outputs.next());
    let mut exited = false;
    // `exited` of a process whose output ended with it, held back to go
    // out together with `closed`.
    let mut last_words = None;
    while !exited || first.is_some() || second.is_some() {
        tokio::select! {
            status = child.wait(), if !exited => {
                exited = true;
                // Everything the process wrote before exiting is in the pipe
                // (or terminal) buffer now: send it before `exited`.
                supervisor.drain_now(first).await;
                supervisor.drain_now(second).await;
                let exit = match status {
                    Ok(status) => exit_info(status),
                    Err(err) => {
                        supervisor.process.log.set_failure(format!("waiting for the process failed: {err}"));
                        ExitInfo { code: -1, signal: None }
                    }
                };
                let event = supervisor.process.log.push_exited(exit);
                if first.is_some() || second.is_some() {
                    supervisor.emit(event).await;
                } else {
                    last_words = Some(event);
                }
            }
            result = read_some(first, &log) => {
                let stream = first.as_ref().map_or(OutputStream::Stdout, |p| p.stream);
                if !supervisor.on_read(stream, result).await {
                    *first = None;
                }
            }
            result = read_some(second, &log) => {
                let stream = second.as_ref().map_or(OutputStream::Stderr, |p| p.stream);
                if !supervisor.on_read(stream, result).await {
                    *second = None;
                }
            }
        }
    }
    // Release stdin and the terminal before announcing `closed`.
    *supervisor.process.live() = LiveIo::default();
    let closed = supervisor.process.log.push_closed();
    // Free the slot before the client can see `closed` and start another.
    drop(slot);
    match last_words {
        Some(exited) => supervisor.events.deliver_all(vec![exited, closed]).await,
        None => supervisor.emit(closed).await,
    }
}

fn exit_info(status: std::process::ExitStatus) -> ExitInfo {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitInfo { code, signal: None },
        (None, Some(signo)) => ExitInfo {
            code: -1,
            signal: Some(name_of(signo)),
        },
        (None, None) => ExitInfo {
            code: -1,
            signal: None,
        },
    }
}
