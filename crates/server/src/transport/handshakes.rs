//! Connections still in their WebSocket handshake. Each has the handshake
//! timeout to finish, and at most `max` wait at once: a new one pushes the
//! oldest out (its socket is closed). A flood of half-open upgrades
//! therefore holds a bounded number of descriptors and cannot lock out a
//! client that completes its handshake promptly.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

/// The connections in their handshake, oldest first.
pub struct Handshakes {
    max: usize,
    next: AtomicU64,
    waiting: Mutex<VecDeque<(u64, CancellationToken)>>,
}

impl Handshakes {
    pub fn new(max: usize) -> Arc<Handshakes> {
        Arc::new(Handshakes {
            max: max.max(1),
            next: AtomicU64::new(0),
            waiting: Mutex::new(VecDeque::new()),
        })
    }

    fn waiting(&self) -> MutexGuard<'_, VecDeque<(u64, CancellationToken)>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection starts its handshake; the oldest waiting one is
    /// pushed out if all places are taken.
    pub fn enter(self: &Arc<Self>) -> Ticket {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let pushed_out = CancellationToken::new();
        let mut waiting = self.waiting();
        while waiting.len() >= self.max {
            if let Some((_, oldest)) = waiting.pop_front() {
                oldest.cancel();
            }
        }
        waiting.push_back((id, pushed_out.clone()));
        Ticket {
            id,
            pushed_out,
            handshakes: self.clone(),
        }
    }

    /// Connections in their handshake now.
    pub fn len(&self) -> usize {
        self.waiting().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One connection's place while it shakes hands; dropping it (handshake
/// done or failed) frees the place.
pub struct Ticket {
    id: u64,
    pushed_out: CancellationToken,
    handshakes: Arc<Handshakes>,
}

impl Ticket {
    /// Resolves when a newer connection took this place.
    pub async fn pushed_out(&self) {
        self.pushed_out.cancelled().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.handshakes.waiting().retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_is_pushed_out_and_places_come_back() {
        let handshakes = Handshakes::new(2);
        let first = handshakes.enter();
        let second = handshakes.enter();
        let third = handshakes.enter();
        assert!(first.pushed_out.is_cancelled());
        assert!(!second.pushed_out.is_cancelled() && !third.pushed_out.is_cancelled());
        drop(first);
        assert_eq!(handshakes.len(), 2);
        drop(second);
        assert_eq!(handshakes.len(), 1);
        let _fourth = handshakes.enter();
        assert!(!third.pushed_out.is_cancelled());
    }
}
