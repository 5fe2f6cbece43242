//! `ManagedProcess`: the one type a harness keeps for a long-running
//! command, whichever backend runs it. It consumes the process's events and
//! keeps a consistent state (exited? exit code, closed, failure) and a
//! capped copy of the output that keeps the head and the tail.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use execd_protocol::process::{StartParams, WriteStatus};
use tokio::sync::watch;

use crate::router::EventReceiver;
use crate::traits::{Environment, ExecProcess, StartedProcess};
use crate::EnvError;
use execd_protocol::event::EventKind;

/// Output kept up to a byte limit: the first half of the limit from the
/// start, the rest from the end, and a count of what was dropped between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputCap {
    limit: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    dropped: u64,
}

impl OutputCap {
    /// Keep up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        OutputCap {
            limit,
            head: Vec::new(),
            tail: VecDeque::new(),
            dropped: 0,
        }
    }

    fn head_limit(&self) -> usize {
        self.limit / 2
    }

    /// Append output.
    pub fn push(&mut self, mut data: &[u8]) {
        let room = self.head_limit().saturating_sub(self.head.len());
        if room > 0 {
            let take = room.min(data.len());
            self.head.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        let tail_limit = self.limit - self.head_limit();
        if data.len() >= tail_limit {
            self.dropped += (self.tail.len() + data.len() - tail_limit) as u64;
            self.tail.clear();
            self.tail.extend(&data[data.len() - tail_limit..]);
            return;
        }
        let overflow = (self.tail.len() + data.len()).saturating_sub(tail_limit);
        self.tail.drain(..overflow);
        self.dropped += overflow as u64;
        self.tail.extend(data);
    }

    /// The kept start of the output.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// The kept end of the output.
    pub fn tail(&self) -> Vec<u8> {
        self.tail.iter().copied().collect()
    }

    /// Bytes dropped between head and tail.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Every byte seen, kept or not.
    pub fn total(&self) -> u64 {
        (self.head.len() + self.tail.len()) as u64 + self.dropped
    }

    /// Head and tail joined, with a marker saying how much was dropped.
    pub fn render(&self) -> Vec<u8> {
        let mut out = self.head.clone();
        if self.dropped > 0 {
            out.extend_from_slice(
                format!("\n[... {} bytes dropped ...]\n", self.dropped).as_bytes(),
            );
        }
        out.extend(self.tail.iter());
        out
    }
}

/// What is known about a managed process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessState {
    /// The process exited.
    pub exited: bool,
    /// The exit code; -1 when a signal ended the process.
    pub exit_code: Option<i32>,
    /// The signal's name when a signal ended the process.
    pub signal: Option<String>,
    /// All output was delivered and the process's resources are released.
    pub closed: bool,
    /// Why the process's events stopped early (e.g. the connection dropped).
    pub failure: Option<String>,
}

impl ProcessState {
    /// Nothing more will happen: closed, or failed.
    pub fn is_finished(&self) -> bool {
        self.closed || self.failure.is_some()
    }
}

struct Inner {
    state: ProcessState,
    output: OutputCap,
    /// Output since the last `write_stdin` began.
    recent: OutputCap,
}

struct Shared {
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut Inner)) {
        change(&mut self.lock());
        self.changed.send_modify(|v| *v += 1);
    }
}

/// A running (or finished) process under management.
pub struct ManagedProcess {
    process: Arc<dyn ExecProcess>,
    shared: Arc<Shared>,
    /// Serialises `write_stdin` calls, whose output windows must not overlap.
    interaction: tokio::sync::Mutex<()>,
}

impl ManagedProcess {
    /// Start `params` in `env` and manage it, keeping up to `output_cap` bytes of output.
    pub async fn start(
        env: &Environment,
        params: StartParams,
        output_cap: usize,
    ) -> Result<ManagedProcess, EnvError> {
        let started = env.exec.start(params).await?;
        Ok(ManagedProcess::new(started, output_cap))
    }

    /// Manage an already started process (must be called inside a tokio runtime).
    pub fn new(started: StartedProcess, output_cap: usize) -> ManagedProcess {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                state: ProcessState::default(),
                output: OutputCap::new(output_cap),
                recent: OutputCap::new(output_cap),
            }),
            changed: watch::Sender::new(0),
        });
        tokio::spawn(pump(started.events, shared.clone()));
        ManagedProcess {
            process: started.process,
            shared,
            interaction: tokio::sync::Mutex::new(()),
        }
    }

    /// The process id.
    pub fn id(&self) -> &str {
        self.process.id()
    }

    /// The underlying process handle (signals, resize, `read`).
    pub fn process(&self) -> &Arc<dyn ExecProcess> {
        &self.process
    }

    /// A snapshot of what is known.
    pub fn state(&self) -> ProcessState {
        self.shared.lock().state.clone()
    }

    /// All output so far (merged streams), capped.
    pub fn output(&self) -> OutputCap {
        self.shared.lock().output.clone()
    }

    /// Write to stdin; the status is a result, not an error.
    pub async fn write(&self, data: impl Into<Bytes>) -> Result<WriteStatus, EnvError> {
        self.process.write(data.into()).await
    }

    /// Write `data` (if any), then collect the output that arrives for up to
    /// `collect_for`, returning early once the process is finished.
    pub async fn write_stdin(
        &self,
        data: &[u8],
        collect_for: Duration,
    ) -> Result<OutputCap, EnvError> {
        let _turn = self.interaction.lock().await;
        let limit = self.shared.lock().output.limit;
        self.shared.lock().recent = OutputCap::new(limit);
        if !data.is_empty() {
            match self.process.write(Bytes::copy_from_slice(data)).await? {
                WriteStatus::Accepted => {}
                other => {
                    return Err(EnvError::InvalidRequest(format!(
                        "cannot write to process {}: {other:?}",
                        self.id()
                    )))
                }
            }
        }
        let _ = tokio::time::timeout(collect_for, self.finished()).await;
        let mut inner = self.shared.lock();
        Ok(std::mem::replace(&mut inner.recent, OutputCap::new(limit)))
    }

    async fn finished(&self) {
        let mut changed = self.shared.changed.subscribe();
        while !self.state().is_finished() {
            if changed.changed().await.is_err() {
                return;
            }
        }
    }

    /// Wait until the process is finished (closed, or failed) and return its state.
    pub async fn wait(&self) -> ProcessState {
        self.finished().await;
        self.state()
    }

    /// SIGTERM, then SIGKILL after the grace period; true if it was running.
    pub async fn terminate(&self) -> Result<bool, EnvError> {
        self.process.terminate().await
    }
}

impl Drop for ManagedProcess {
    /// A process nobody manages any more is terminated (best effort).
    fn drop(&mut self) {
        if self.state().is_finished() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let process = self.process.clone();
            runtime.spawn(async move {
                let _ = process.terminate().await;
            });
        }
    }
}

async fn pump(mut events: EventReceiver, shared: Arc<Shared>) {
    while let Some(event) = events.recv().await {
        shared.update(|inner| match event {
            Ok(event) => match event.kind {
                EventKind::Output { chunk, .. } => {
                    inner.output.push(&chunk);
                    inner.recent.push(&chunk);
                }
                EventKind::Exited(exit) => {
                    inner.state.exited = true;
                    inner.state.exit_code = Some(exit.code);
                    inner.state.signal = exit.signal;
                }
                EventKind::Closed => inner.state.closed = true,
            },
            Err(err) => inner.state.failure = Some(err.to_string()),
        });
    }
    shared.update(|inner| {
        if !inner.state.is_finished() {
            inner.state.failure = Some("the process's events ended before it closed".into());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_keeps_head_and_tail_and_counts_the_gap() {
        let mut cap = OutputCap::new(8);
        cap.push(b"abcdef");
        assert_eq!(cap.render(), b"abcdef");
        cap.push(b"ghijkl");
        assert_eq!(cap.head(), b"abcd");
        assert_eq!(cap.tail(), b"ijkl");
        assert_eq!(cap.dropped(), 4);
        assert_eq!(cap.total(), 12);
        cap.push(&[b'z'; 100]);
        assert_eq!(cap.tail(), b"zzzz");
        assert_eq!(cap.dropped(), 104);
        assert!(String::from_utf8_lossy(&cap.render()).contains("[... 104 bytes dropped ...]"));
    }
}
