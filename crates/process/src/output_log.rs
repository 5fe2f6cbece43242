//! Per-process event numbering and bounded output retention.
//!
//! Every event of a process (output chunks, then `exited`, then `closed`)
//! gets the next seq from one counter starting at 1. Output chunks are kept
//! for `process/read` up to a byte cap; the oldest go first, and their seq
//! numbers are never reused, so a reader sees a gap rather than renumbering.
//! Every log also counts its retained bytes against the server-wide
//! [`SharedBudget`], which may take a closed log's output back.
//!
//! Flow control: a log with an output window counts the output bytes the
//! client has not acknowledged (`process/ack`); the supervisor reads no
//! more while they fill the window ([`OutputLog::wait_room`]), and those
//! chunks are never evicted (neither by the cap nor by the budget), so a
//! resumed client can always read them again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::budget::{Retained, SharedBudget};

use bytes::Bytes;
pub use execd_protocol::event::{EventKind, ExitInfo, ProcessEvent};
use execd_protocol::process::OutputStream;
use tokio::sync::watch;

/// Where a process's supervisor delivers its events, in seq order.
/// Delivery may wait (flow control); it must not fail.
#[async_trait::async_trait]
pub trait EventSink: Send + Sync + 'static {
    async fn deliver(&self, event: ProcessEvent);

    /// Several events that are ready together (`exited` and `closed` of a
    /// process whose output ended with it), in order; a sink may write
    /// them at once (one write, one wakeup of the client).
    async fn deliver_all(&self, events: Vec<ProcessEvent>) {
        for event in events {
            self.deliver(event).await;
        }
    }
}

/// A bounded channel as an event sink; a closed receiver drops events.
#[async_trait::async_trait]
impl EventSink for tokio::sync::mpsc::Sender<ProcessEvent> {
    async fn deliver(&self, event: ProcessEvent) {
        let _ = self.send(event).await;
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedChunk {
    pub seq: u64,
    pub stream: OutputStream,
    pub chunk: Bytes,
}

/// What a `process/read` sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSnapshot {
    pub chunks: Vec<RetainedChunk>,
    pub next_seq: u64,
    pub exit: Option<ExitInfo>,
    pub closed: bool,
    pub failure: Option<String>,
    /// The seq of `exited`, once the process exited.
    pub exited_seq: Option<u64>,
    /// The seq of `closed`, once the process closed.
    pub closed_seq: Option<u64>,
}

/// An acknowledgement the log cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error("seq {seq} of process {process_id} has not been sent yet (the last seq is {last})")]
    Ahead {
        process_id: String,
        seq: u64,
        last: u64,
    },
}

/// A process's flow control as `process/list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowState {
    pub window: Option<u64>,
    pub acked_seq: u64,
    pub unacked_bytes: u64,
    pub next_seq: u64,
}

#[derive(Debug)]
struct LogState {
    next_seq: u64,
    chunks: VecDeque<RetainedChunk>,
    retained_bytes: usize,
    exit: Option<ExitInfo>,
    closed: bool,
    failure: Option<String>,
    exited_seq: Option<u64>,
    closed_seq: Option<u64>,
    /// Output bytes not acknowledged may not pass this (none: no flow control).
    window: Option<u64>,
    /// Every event up to this seq was acknowledged.
    acked_seq: u64,
    /// Output bytes of chunks after `acked_seq` (counted with a window only).
    unacked_bytes: u64,
}

impl LogState {
    /// The oldest retained chunk may not be dropped: it is not acknowledged.
    fn front_unacked(&self) -> bool {
        self.window.is_some() && self.chunks.front().is_some_and(|c| c.seq > self.acked_seq)
    }
}

/// The event counter and retained output of one process.
#[derive(Debug)]
pub struct OutputLog {
    process_id: Arc<str>,
    cap_bytes: usize,
    budget: Arc<SharedBudget>,
    state: Mutex<LogState>,
    /// Bumped on every new event, so long-polls can wait without missing one.
    version: watch::Sender<u64>,
    /// Bumped on every acknowledgement (or lifted window): room may have come.
    acks: watch::Sender<u64>,
}

impl OutputLog {
    /// A log retaining up to `cap_bytes`, with no server-wide budget.
    pub fn new(process_id: Arc<str>, cap_bytes: usize) -> Self {
        OutputLog::with_budget(process_id, cap_bytes, SharedBudget::unlimited())
    }

    /// A log retaining up to `cap_bytes`, counted against `budget`.
    pub fn with_budget(process_id: Arc<str>, cap_bytes: usize, budget: Arc<SharedBudget>) -> Self {
        OutputLog {
            process_id,
            cap_bytes,
            budget,
            state: Mutex::new(LogState {
                next_seq: 1,
                chunks: VecDeque::new(),
                retained_bytes: 0,
                exit: None,
                closed: false,
                failure: None,
                exited_seq: None,
                closed_seq: None,
                window: None,
                acked_seq: 0,
                unacked_bytes: 0,
            }),
            version: watch::Sender::new(0),
            acks: watch::Sender::new(0),
        }
    }

    /// Hold the output unacknowledged by the client below `window` bytes.
    pub fn set_window(&self, window: Option<u64>) {
        self.lock().window = window;
    }

    /// No flow control any more (the owner is going away): a supervisor
    /// waiting for room goes on, and every chunk may be evicted again.
    pub fn lift_window(&self) {
        {
            let mut state = self.lock();
            state.window = None;
            state.unacked_bytes = 0;
        }
        self.acks.send_modify(|v| *v += 1);
    }

    /// The client consumed every event up to `seq`. Acks at or below the
    /// current one are ignored.
    pub fn ack(&self, seq: u64) -> Result<(), AckError> {
        {
            let mut state = self.lock();
            let last = state.next_seq - 1;
            if seq > last {
                return Err(AckError::Ahead {
                    process_id: self.process_id.to_string(),
                    seq,
                    last,
                });
            }
            if seq <= state.acked_seq {
                return Ok(());
            }
            if state.window.is_some() {
                let from = state.chunks.partition_point(|c| c.seq <= state.acked_seq);
                let to = state.chunks.partition_point(|c| c.seq <= seq);
                let bytes: usize = state.chunks.range(from..to).map(|c| c.chunk.len()).sum();
                state.unacked_bytes = state.unacked_bytes.saturating_sub(bytes as u64);
            }
            state.acked_seq = seq;
            // What the window held past the cap may go now.
            self.drop_oldest_while(&mut state, |state| state.retained_bytes > self.cap_bytes);
        }
        self.acks.send_modify(|v| *v += 1);
        Ok(())
    }

    /// How many more output bytes may be read now (`usize::MAX` without a
    /// window); waits while the window is full.
    pub async fn wait_room(&self) -> usize {
        let mut acks = self.acks.subscribe();
        loop {
            {
                let state = self.lock();
                match state.window {
                    None => return usize::MAX,
                    Some(window) if state.unacked_bytes < window => {
                        return usize::try_from(window - state.unacked_bytes).unwrap_or(usize::MAX);
                    }
                    Some(_) => {}
                }
            }
            if acks.changed().await.is_err() {
                return usize::MAX;
            }
        }
    }

    /// The window, the acknowledged seq and the seq to come.
    pub fn flow(&self) -> FlowState {
        let state = self.lock();
        FlowState {
            window: state.window,
            acked_seq: state.acked_seq,
            unacked_bytes: state.unacked_bytes,
            next_seq: state.next_seq,
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogState> {
        // A poisoned lock only means another thread panicked mid-update of
        // plain data; the data is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn numbered(&self, state: &mut LogState, kind: EventKind) -> ProcessEvent {
        let seq = state.next_seq;
        state.next_seq += 1;
        self.version.send_modify(|v| *v += 1);
        ProcessEvent {
            process_id: self.process_id.clone(),
            seq,
            kind,
        }
    }

    /// Number and retain an output chunk.
    pub fn push_output(&self, stream: OutputStream, chunk: Bytes) -> ProcessEvent {
        let event = {
            let mut state = self.lock();
            let seq = state.next_seq;
            if state.window.is_some() {
                state.unacked_bytes += chunk.len() as u64;
            }
            state.retained_bytes += chunk.len();
            self.budget.add_retained(chunk.len());
            state.chunks.push_back(RetainedChunk {
                seq,
                stream,
                chunk: chunk.clone(),
            });
            self.drop_oldest_while(&mut state, |state| state.retained_bytes > self.cap_bytes);
            self.numbered(&mut state, EventKind::Output { stream, chunk })
        };
        if self.budget.over_budget() {
            self.budget.evict_closed();
            // Nothing closed retains output any more: this process pays.
            let released = {
                let mut state = self.lock();
                let before = state.retained_bytes;
                self.drop_oldest_while(&mut state, |_| self.budget.over_budget());
                before - state.retained_bytes
            };
            if released > 0 {
                self.budget.count_freed(released);
            }
        }
        event
    }

    /// Drop the oldest chunks while `over` holds, keeping the newest.
    fn drop_oldest_while(&self, state: &mut LogState, over: impl Fn(&LogState) -> bool) {
        while state.chunks.len() > 1 && !state.front_unacked() && over(state) {
            if let Some(old) = state.chunks.pop_front() {
                state.retained_bytes -= old.chunk.len();
                self.budget.release_retained(old.chunk.len());
            }
        }
    }

    pub fn push_exited(&self, exit: ExitInfo) -> ProcessEvent {
        let mut state = self.lock();
        state.exit = Some(exit.clone());
        state.exited_seq = Some(state.next_seq);
        self.numbered(&mut state, EventKind::Exited(exit))
    }

    /// The last event. A log that still retains output becomes a candidate
    /// for the server-wide budget's eviction.
    pub fn push_closed(self: &Arc<Self>) -> ProcessEvent {
        let (event, retains) = {
            let mut state = self.lock();
            state.closed = true;
            state.closed_seq = Some(state.next_seq);
            let event = self.numbered(&mut state, EventKind::Closed);
            (event, state.retained_bytes > 0)
        };
        if retains {
            let log: std::sync::Weak<OutputLog> = Arc::downgrade(self);
            self.budget.closed_log(log);
            if self.budget.over_budget() {
                self.budget.evict_closed();
            }
        }
        event
    }

    /// Record why the process failed outside its own control (e.g. an I/O error).
    pub fn set_failure(&self, failure: String) {
        self.lock().failure.get_or_insert(failure);
        self.version.send_modify(|v| *v += 1);
    }

    pub fn exit(&self) -> Option<ExitInfo> {
        self.lock().exit.clone()
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Retained chunks with seq > `after_seq`, up to `max_bytes` of data (but
    /// always at least one chunk if any is available).
    pub fn snapshot(&self, after_seq: u64, max_bytes: usize) -> ReadSnapshot {
        let state = self.lock();
        let mut chunks = Vec::new();
        let mut total = 0usize;
        // Chunks are ordered by seq; skip the ones already seen.
        let start = state.chunks.partition_point(|c| c.seq <= after_seq);
        for retained in state.chunks.iter().skip(start) {
            if !chunks.is_empty() && total + retained.chunk.len() > max_bytes {
                break;
            }
            total += retained.chunk.len();
            chunks.push(retained.clone());
        }
        let next_seq = chunks.last().map_or(state.next_seq, |last| last.seq + 1);
        ReadSnapshot {
            chunks,
            next_seq,
            exit: state.exit.clone(),
            closed: state.closed,
            failure: state.failure.clone(),
            exited_seq: state.exited_seq,
            closed_seq: state.closed_seq,
        }
    }

    /// True when a read after `after_seq` would see something new: a chunk,
    /// the exit, the close or a failure.
    pub fn has_news_after(&self, after_seq: u64) -> bool {
        let state = self.lock();
        state.next_seq > after_seq + 1 || state.failure.is_some()
    }

    /// A receiver that changes whenever an event is added.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }
}

impl Drop for OutputLog {
    fn drop(&mut self) {
        let mut state = self.lock();
        let retained = std::mem::take(&mut state.retained_bytes);
        // Freed here, before the release is counted, so that a trim the
        // count triggers hands these chunks back too.
        state.chunks = VecDeque::new();
        drop(state);
        self.budget.release_retained(retained);
        self.budget.count_freed(retained);
    }
}

/// The server-wide budget takes a closed log's output back through this.
impl Retained for OutputLog {
    fn drop_retained(&self) -> usize {
        let mut state = self.lock();
        if state.window.is_some() {
            // Unacknowledged chunks stay; the acknowledged ones go.
            let keep_from = state.chunks.partition_point(|c| c.seq <= state.acked_seq);
            let released: usize = state.chunks.drain(..keep_from).map(|c| c.chunk.len()).sum();
            state.retained_bytes -= released;
            self.budget.release_retained(released);
            return released;
        }
        let released = std::mem::take(&mut state.retained_bytes);
        state.chunks = VecDeque::new();
        self.budget.release_retained(released);
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(cap: usize) -> Arc<OutputLog> {
        Arc::new(OutputLog::new(Arc::from("p"), cap))
    }

    #[test]
    fn seq_is_shared_and_contiguous() {
        let log = log(1024);
        assert_eq!(
            log.push_output(OutputStream::Stdout, Bytes::from_static(b"a"))
                .seq,
            1
        );
        assert_eq!(
            log.push_output(OutputStream::Stderr, Bytes::from_static(b"b"))
                .seq,
            2
        );
        let exited = log.push_exited(ExitInfo {
            code: 3,
            signal: None,
        });
        assert_eq!(exited.seq, 3);
        assert_eq!(log.push_closed().seq, 4);
        let snap = log.snapshot(0, usize::MAX);
        assert_eq!(snap.chunks.len(), 2);
        // The seq after the last chunk returned ...
        assert_eq!(snap.next_seq, 3);
        // ... and with nothing left to return, the process's next seq.
        assert_eq!(log.snapshot(2, usize::MAX).next_seq, 5);
        assert!(snap.closed);
        assert_eq!(snap.exit.map(|e| e.code), Some(3));
    }

    #[test]
    fn oldest_chunks_are_dropped_and_seq_gap_is_visible() {
        let log = log(10);
        for _ in 0..5 {
            log.push_output(OutputStream::Stdout, Bytes::from_static(b"1234"));
        }
        let snap = log.snapshot(0, usize::MAX);
        let seqs: Vec<u64> = snap.chunks.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, vec![4, 5]);
    }

    #[test]
    fn unacked_chunks_of_a_windowed_log_are_kept_and_fill_the_window() {
        let log = log(4);
        log.set_window(Some(10));
        for _ in 0..3 {
            log.push_output(OutputStream::Stdout, Bytes::from_static(b"1234"));
        }
        // Over the cap of 4, but nothing acknowledged: all three stay.
        assert_eq!(log.snapshot(0, usize::MAX).chunks.len(), 3);
        assert_eq!(log.flow().unacked_bytes, 12);
        assert!(log.ack(4).is_err(), "seq 4 was never sent");
        log.ack(2).unwrap();
        assert_eq!(log.flow().unacked_bytes, 4);
        let seqs: Vec<u64> = log
            .snapshot(0, usize::MAX)
            .chunks
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(seqs, vec![3], "acknowledged chunks past the cap went");
        log.ack(1).unwrap();
        assert_eq!(log.flow().acked_seq, 2, "an older ack is ignored");
    }

    #[test]
    fn max_bytes_limits_but_returns_at_least_one_chunk() {
        let log = log(1024);
        for _ in 0..3 {
            log.push_output(OutputStream::Stdout, Bytes::from_static(b"12345678"));
        }
        let snap = log.snapshot(0, 1);
        assert_eq!(snap.chunks.len(), 1);
        assert_eq!(snap.next_seq, 2);
        let snap = log.snapshot(1, 16);
        assert_eq!(snap.chunks.len(), 2);
        assert_eq!(snap.next_seq, 4);
        assert!(!log.has_news_after(3));
        assert!(log.has_news_after(2));
    }
}
