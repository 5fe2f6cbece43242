//! The server's requests to this client (`exec/approve`, `network/approve`),
//! by id. After a resume the server sends every request still waiting for
//! its answer again, since the lost connection may have swallowed it (or
//! the answer): a request still being decided is not decided a second time,
//! and one already answered gets the same reply again.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use execd_protocol::RequestId;

/// Replies remembered for requests repeated after a resume (the server
/// keeps at most 256 waiting per session).
const REMEMBERED: usize = 256;

/// What an arriving request is.
pub(crate) enum Seen {
    /// Not seen before: decide it.
    New,
    /// Being decided: its reply goes out when it is ready.
    Deciding,
    /// Answered already: this reply again.
    Answered(String),
}

#[derive(Default)]
pub(crate) struct Asks {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    deciding: HashSet<RequestId>,
    answered: VecDeque<(RequestId, String)>,
}

impl Asks {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request arrived; a new one is marked as being decided.
    pub(crate) fn arrived(&self, id: &RequestId) -> Seen {
        let mut inner = self.inner();
        if inner.deciding.contains(id) {
            return Seen::Deciding;
        }
        if let Some((_, reply)) = inner.answered.iter().find(|(known, _)| known == id) {
            return Seen::Answered(reply.clone());
        }
        inner.deciding.insert(id.clone());
        Seen::New
    }

    /// `reply` answers request `id`: remembered for a repeat.
    pub(crate) fn answered(&self, id: &RequestId, reply: &str) {
        let mut inner = self.inner();
        inner.deciding.remove(id);
        if inner.answered.len() == REMEMBERED {
            inner.answered.pop_front();
        }
        inner.answered.push_back((id.clone(), reply.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_decided_once_and_answered_alike_when_repeated() {
        let asks = Asks::default();
        let id = RequestId::Int(7);
        assert!(matches!(asks.arrived(&id), Seen::New));
        assert!(matches!(asks.arrived(&id), Seen::Deciding));
        asks.answered(&id, "reply");
        assert!(matches!(asks.arrived(&id), Seen::Answered(reply) if reply == "reply"));
        assert!(matches!(asks.arrived(&RequestId::Int(8)), Seen::New));
    }

    #[test]
    fn only_the_latest_replies_are_remembered() {
        let asks = Asks::default();
        for n in 0..=REMEMBERED as i64 {
            let id = RequestId::Int(n);
            assert!(matches!(asks.arrived(&id), Seen::New));
            asks.answered(&id, "reply");
        }
        assert!(matches!(asks.arrived(&RequestId::Int(0)), Seen::New));
        let last = RequestId::Int(REMEMBERED as i64);
        assert!(matches!(asks.arrived(&last), Seen::Answered(_)));
    }
}
