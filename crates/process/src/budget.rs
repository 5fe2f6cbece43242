//! What every process table of one server shares: the count of processes
//! not yet closed (a server-wide cap, next to each table's own) and the
//! budget of retained output across all processes of all tables.
//!
//! A process holds a [`ProcessSlot`] from the moment its id is claimed
//! until it has closed. Retained output is counted here as it is kept and
//! released; when the total passes the budget, the processes that closed
//! longest ago lose their retained output first (their records stay, a
//! read sees the seq gap), and only when no closed process retains
//! anything does the process adding output drop its own oldest chunks.
//!
//! Freed chunks go back to the allocator, which keeps freed memory for
//! reuse; every [`TRIM_EVERY`] bytes released, [`release_freed_memory`]
//! hands what it keeps back to the kernel, so the server's resident size
//! follows the budget down as well as up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use execd_protocol::limits::{Limit, LimitExceeded};

/// What the budget can take retained output back from: a closed process's
/// output log.
pub trait Retained: Send + Sync {
    /// Drop every retained chunk; the bytes released.
    fn drop_retained(&self) -> usize;
}

/// Shared by every table of one server (or one local environment).
#[derive(Debug)]
pub struct SharedBudget {
    max_processes: usize,
    processes: AtomicUsize,
    max_retained_bytes: usize,
    retained_bytes: AtomicUsize,
    /// Logs of closed processes that retain output, oldest close first
    /// (entries whose log is gone are skipped and pruned).
    closed: Mutex<ClosedLogs>,
    /// Bytes released for the budget since memory was last handed back.
    released_since_trim: AtomicUsize,
}

/// Memory is handed back to the kernel after this much retained output was
/// released to make room.
pub const TRIM_EVERY: usize = 32 * 1024 * 1024;

/// Hand the memory the allocator keeps after frees back to the kernel
/// (glibc's `malloc_trim`; elsewhere nothing to do). Costs a walk of the
/// free lists: call it after large releases, not per chunk.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only inspects and releases the allocator's own
    // free memory; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[derive(Debug, Default)]
struct ClosedLogs {
    logs: VecDeque<Weak<dyn Retained>>,
    /// Prune dead entries when the queue reaches this length.
    prune_at: usize,
}

const MIN_PRUNE_AT: usize = 1024;

impl SharedBudget {
    /// At most `max_processes` processes not yet closed, and
    /// `max_retained_bytes` of retained output, across every table.
    pub fn new(max_processes: usize, max_retained_bytes: usize) -> Arc<SharedBudget> {
        Arc::new(SharedBudget {
            max_processes,
            processes: AtomicUsize::new(0),
            max_retained_bytes,
            retained_bytes: AtomicUsize::new(0),
            closed: Mutex::new(ClosedLogs {
                logs: VecDeque::new(),
                prune_at: MIN_PRUNE_AT,
            }),
            released_since_trim: AtomicUsize::new(0),
        })
    }

    /// No server-wide limit (each table's own limits still hold).
    pub fn unlimited() -> Arc<SharedBudget> {
        SharedBudget::new(usize::MAX, usize::MAX)
    }

    /// Processes not yet closed, server-wide.
    pub fn processes(&self) -> usize {
        self.processes.load(Ordering::SeqCst)
    }

    /// Bytes of output retained, server-wide.
    pub fn retained_bytes(&self) -> usize {
        self.retained_bytes.load(Ordering::SeqCst)
    }

    /// Claim a slot for one more process of a table that has `table` live
    /// processes and may have `table_max`.
    pub fn claim(
        self: &Arc<Self>,
        table: &Arc<AtomicUsize>,
        table_max: usize,
    ) -> Result<ProcessSlot, LimitExceeded> {
        if !increment_below(table, table_max) {
            return Err(LimitExceeded::new(
                Limit::ProcessesPerConnection,
                table_max,
                format!("cannot start another process: {table_max} processes of this connection are still running"),
            ));
        }
        if !increment_below(&self.processes, self.max_processes) {
            table.fetch_sub(1, Ordering::SeqCst);
            return Err(LimitExceeded::new(
                Limit::Processes,
                self.max_processes,
                format!(
                    "cannot start another process: {} processes are running on this server",
                    self.max_processes
                ),
            ));
        }
        Ok(ProcessSlot {
            budget: self.clone(),
            table: table.clone(),
        })
    }

    fn closed(&self) -> MutexGuard<'_, ClosedLogs> {
        self.closed.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn add_retained(&self, bytes: usize) {
        self.retained_bytes.fetch_add(bytes, Ordering::SeqCst);
    }

    pub(crate) fn release_retained(&self, bytes: usize) {
        self.retained_bytes.fetch_sub(bytes, Ordering::SeqCst);
    }

    /// `bytes` of retained output were freed (dropped to make room, or
    /// with their process): past [`TRIM_EVERY`] since the last time, the
    /// allocator hands its free memory back to the kernel.
    pub(crate) fn count_freed(&self, bytes: usize) {
        let total = self.released_since_trim.fetch_add(bytes, Ordering::SeqCst) + bytes;
        if total >= TRIM_EVERY && self.released_since_trim.swap(0, Ordering::SeqCst) > 0 {
            release_freed_memory();
        }
    }

    pub(crate) fn over_budget(&self) -> bool {
        self.retained_bytes() > self.max_retained_bytes
    }

    /// A closed process's log, which retains output, joins the eviction queue.
    pub(crate) fn closed_log(&self, log: Weak<dyn Retained>) {
        let mut closed = self.closed();
        closed.logs.push_back(log);
        if closed.logs.len() >= closed.prune_at {
            closed.logs.retain(|log| log.strong_count() > 0);
            closed.prune_at = (closed.logs.len() * 2).max(MIN_PRUNE_AT);
        }
    }

    /// Drop the retained output of closed processes, oldest close first,
    /// until the total is within the budget or none is left. Returns the
    /// bytes released.
    pub(crate) fn evict_closed(&self) -> usize {
        let mut released = 0;
        while self.over_budget() {
            let Some(log) = self.closed().logs.pop_front() else {
                break;
            };
            if let Some(log) = log.upgrade() {
                released += log.drop_retained();
            }
        }
        if released > 0 {
            self.count_freed(released);
        }
        released
    }
}

/// Add one to `counter` unless it is at `max` already.
fn increment_below(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

/// One process's place under the process limits, from the claim of its id
/// until it has closed (or failed to start).
#[derive(Debug)]
pub struct ProcessSlot {
    budget: Arc<SharedBudget>,
    table: Arc<AtomicUsize>,
}

impl Drop for ProcessSlot {
    fn drop(&mut self) {
        self.table.fetch_sub(1, Ordering::SeqCst);
        self.budget.processes.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output_log::OutputLog;
    use bytes::Bytes;
    use execd_protocol::process::OutputStream;

    #[test]
    fn slots_count_per_table_and_server_wide() {
        let budget = SharedBudget::new(3, usize::MAX);
        let (a, b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let a1 = budget.claim(&a, 2).unwrap();
        let _a2 = budget.claim(&a, 2).unwrap();
        let err = budget.claim(&a, 2).unwrap_err();
        assert_eq!(err.limit, Limit::ProcessesPerConnection);
        let _b1 = budget.claim(&b, 2).unwrap();
        let err = budget.claim(&b, 2).unwrap_err();
        assert_eq!(err.limit, Limit::Processes);
        assert!(err.to_string().contains("the limit is 3"), "{err}");
        assert_eq!(b.load(Ordering::SeqCst), 1, "a refused claim takes nothing");
        drop(a1);
        assert!(budget.claim(&b, 2).is_ok());
    }

    #[test]
    fn closed_logs_lose_their_output_first_oldest_first() {
        let budget = SharedBudget::new(usize::MAX, 10);
        let log = |id: &str| Arc::new(OutputLog::with_budget(Arc::from(id), 100, budget.clone()));
        let (old, newer, live) = (log("old"), log("newer"), log("live"));
        let four = || Bytes::from_static(b"1234");
        old.push_output(OutputStream::Stdout, four());
        old.push_closed();
        newer.push_output(OutputStream::Stdout, four());
        newer.push_closed();
        assert_eq!(budget.retained_bytes(), 8);
        // 12 > 10: the oldest closed log goes, the live one keeps its chunk.
        live.push_output(OutputStream::Stdout, four());
        assert_eq!(budget.retained_bytes(), 8);
        assert!(old.snapshot(0, usize::MAX).chunks.is_empty());
        assert_eq!(newer.snapshot(0, usize::MAX).chunks.len(), 1);
        // Over again with nothing closed left but `newer`, then nothing
        // closed at all: the live process drops its own oldest chunk.
        live.push_output(OutputStream::Stdout, four());
        assert!(newer.snapshot(0, usize::MAX).chunks.is_empty());
        live.push_output(OutputStream::Stdout, four());
        live.push_output(OutputStream::Stdout, four());
        assert!(budget.retained_bytes() <= 10);
        let seqs: Vec<u64> = live
            .snapshot(0, usize::MAX)
            .chunks
            .iter()
            .map(|c| c.seq)
            .collect();
        assert_eq!(seqs, vec![3, 4]);
        drop(live);
        assert_eq!(
            budget.retained_bytes(),
            0,
            "a dropped log releases its bytes"
        );
    }
}
