//! [`StartBurst`]: `process/start`s sent back to back spawn side by side.
//!
//! A spawn holds its thread until the child has exec'd (a vfork waits
//! for it), so a fan-out of a thousand starts spawned one after the other
//! on the connection's task keeps one core busy while the other idles. When
//! another frame is already waiting behind a start, the start is claimed
//! in frame order (a duplicate id is still refused at once) and spawned on
//! the blocking pool, at most `--max-concurrent-spawns` at a time (16: more
//! than the cores, since a spawning thread mostly waits for its child), while the
//! connection reads on. A start with nothing behind it is spawned inline,
//! which keeps a lone start's latency. Every request that is not a start
//! first waits until the starts before it have been answered, so it sees
//! processes and replies exactly as if the starts had run one by one.

use std::collections::VecDeque;

use tokio::task::JoinHandle;

/// The starts of one connection running on the blocking pool.
pub struct StartBurst {
    /// The tasks that spawn and answer them, oldest first.
    running: VecDeque<JoinHandle<()>>,
    limit: usize,
    /// Another frame is waiting behind the request being routed now (set by
    /// the connection around dispatch).
    more_waiting: bool,
}

impl StartBurst {
    /// At most `limit` starts side by side (`--max-concurrent-spawns`); 1
    /// spawns one at a time.
    pub fn new(limit: usize) -> Self {
        StartBurst {
            running: VecDeque::new(),
            limit: limit.max(1),
            more_waiting: false,
        }
    }

    /// Whether the request routed next has another frame behind it.
    pub fn set_more_waiting(&mut self, more: bool) {
        self.more_waiting = more;
    }

    /// True when the start being routed now goes to the blocking pool.
    pub fn side_by_side(&self) -> bool {
        self.more_waiting && self.limit > 1
    }

    /// Wait until another start may run side by side.
    pub async fn room(&mut self) {
        while self.running.len() >= self.limit {
            self.settle_oldest().await;
        }
    }

    /// A start now running on its own task.
    pub fn push(&mut self, task: JoinHandle<()>) {
        self.running.retain(|task| !task.is_finished());
        self.running.push_back(task);
    }

    /// Wait until every start running side by side has been answered.
    pub async fn settle(&mut self) {
        while !self.running.is_empty() {
            self.settle_oldest().await;
        }
    }

    async fn settle_oldest(&mut self) {
        if let Some(task) = self.running.pop_front() {
            // A panicked task answered nothing more; nothing to wait for.
            let _ = task.await;
        }
    }
}
