//! [`Sessions`]: every session of a server by id, attached to its
//! connection or detached, waiting for a resume.
//!
//! A connection that ends cleanly (close frame, stdio EOF, shutdown) ends
//! its session at once. One that is lost (no close frame, a failed send,
//! missed keepalives) leaves its session detached for the server's
//! `detach_grace`: its processes run on, their events wait in the
//! session's outbox, and `initialize {resumeSessionId}` on a new
//! connection takes the session over ([`Sessions::take_over`]). A session
//! still attached to another (half-open) connection is taken from it: that
//! connection is told to let go ([`Attachment::taken_over`]) and hands the
//! session over as it ends. A session not resumed within the grace, or the
//! oldest past `max_detached_sessions`, ends (processes terminated and
//! reaped), audited as `session.ended`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use execd_protocol::{ErrorCode, RpcError};
use serde_json::json;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::access::Admission;
use crate::audit;
use crate::session::Session;

/// How long a resume waits for the old connection to let go of the session.
const HANDOVER_WAIT: Duration = Duration::from_secs(10);

/// Why `initialize {resumeSessionId}` failed.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// No such session (never was, ended, or admitted differently).
    #[error("unknown or expired session {0:?}")]
    Unknown(String),
    /// The old connection did not hand the session over in time.
    #[error("session {0:?} is still held by its previous connection; try again")]
    Busy(String),
    /// This connection already has a session of its own.
    #[error("initialize was already answered on this connection; resume session {0:?} on a new connection")]
    AlreadyInitialized(String),
}

impl From<ResumeError> for RpcError {
    fn from(err: ResumeError) -> RpcError {
        let id = match &err {
            ResumeError::Unknown(id)
            | ResumeError::Busy(id)
            | ResumeError::AlreadyInitialized(id) => id.clone(),
        };
        let mut error = RpcError::new(ErrorCode::InvalidRequest, err.to_string());
        error.data = Some(json!({ "sessionId": id }));
        error
    }
}

/// How a connection ended, which decides what becomes of its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Close frame, stdio EOF or a fatal frame: the session ends now.
    Clean,
    /// Gone without a close frame: the session waits for a resume.
    Lost,
    /// Another connection resumed the session.
    TakenOver,
    /// The server is shutting down: the session ends now.
    Shutdown,
}

/// A session's tie to the connection serving it.
pub struct Attachment {
    admission: Admission,
    takeover: CancellationToken,
    /// Where the session goes when the connection lets go of it.
    handover: Mutex<Option<oneshot::Sender<Session>>>,
}

impl Attachment {
    fn new(admission: Admission) -> Arc<Attachment> {
        Arc::new(Attachment {
            admission,
            takeover: CancellationToken::new(),
            handover: Mutex::new(None),
        })
    }

    /// Resolves once another connection resumed this session.
    pub async fn taken_over(&self) {
        self.takeover.cancelled().await
    }

    fn handover(&self) -> MutexGuard<'_, Option<oneshot::Sender<Session>>> {
        self.handover.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A detached session waiting for a resume.
struct Parked {
    session: Session,
    since: Instant,
    /// Cancelled when it is resumed or evicted (stops its expiry timer).
    done: CancellationToken,
}

enum Entry {
    Attached(Arc<Attachment>),
    /// Boxed: a parked session is much larger than an attachment's `Arc`.
    Detached(Box<Parked>),
}

/// Every session of one server.
pub struct Sessions {
    entries: Mutex<HashMap<String, Entry>>,
    grace: Duration,
    max_detached: usize,
    shutdown: CancellationToken,
    /// Expiry timers (and the endings they start), waited for at shutdown.
    tasks: TaskTracker,
}

impl Sessions {
    pub fn new(
        grace: Duration,
        max_detached: usize,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Arc<Sessions> {
        Arc::new(Sessions {
            entries: Mutex::new(HashMap::new()),
            grace,
            max_detached,
            shutdown,
            tasks,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection's session.
    pub fn register(&self, id: &str, admission: Admission) -> Arc<Attachment> {
        let attachment = Attachment::new(admission);
        self.lock()
            .insert(id.to_string(), Entry::Attached(attachment.clone()));
        attachment
    }

    /// Forget a session that never served (replaced by a resumed one).
    pub fn forget(&self, id: &str, attachment: &Arc<Attachment>) {
        let mut entries = self.lock();
        if matches!(entries.get(id), Some(Entry::Attached(a)) if Arc::ptr_eq(a, attachment)) {
            entries.remove(id);
        }
    }

    /// Detached sessions now.
    pub fn detached(&self) -> usize {
        self.lock()
            .values()
            .filter(|entry| matches!(entry, Entry::Detached(_)))
            .count()
    }

    /// Take session `id` over for a new connection admitted by
    /// `admission`: from the detached ones, or from the connection still
    /// serving it (which is told to let go). True when it was taken from
    /// a connection.
    pub async fn take_over(
        &self,
        id: &str,
        admission: Admission,
    ) -> Result<(Session, Arc<Attachment>, bool), ResumeError> {
        let unknown = || ResumeError::Unknown(id.to_string());
        let attachment = Attachment::new(admission);
        let handed = {
            let mut entries = self.lock();
            // Admitted otherwise: as if it did not exist.
            let admitted = match entries.get(id) {
                None => false,
                Some(Entry::Attached(old)) => old.admission == admission,
                Some(Entry::Detached(parked)) => parked.session.admission() == admission,
            };
            if !admitted {
                return Err(unknown());
            }
            match entries.insert(id.to_string(), Entry::Attached(attachment.clone())) {
                Some(Entry::Detached(parked)) => {
                    parked.done.cancel();
                    return Ok((parked.session, attachment, false));
                }
                Some(Entry::Attached(old)) => {
                    let (tx, rx) = oneshot::channel();
                    *old.handover() = Some(tx);
                    old.takeover.cancel();
                    rx
                }
                None => return Err(unknown()),
            }
        };
        match tokio::time::timeout(HANDOVER_WAIT, handed).await {
            Ok(Ok(session)) => Ok((session, attachment, true)),
            _ => {
                self.forget(id, &attachment);
                Err(ResumeError::Busy(id.to_string()))
            }
        }
    }

    /// The connection of `attachment` is over: hand its session to a
    /// connection taking it over, park it (lost), or return it to be
    /// ended now, with any detached session evicted to make room.
    pub fn leave(
        self: &Arc<Self>,
        attachment: &Arc<Attachment>,
        session: Session,
        ending: Ending,
        peer: &str,
    ) -> Vec<Session> {
        let mut entries = self.lock();
        if let Some(taker) = attachment.handover().take() {
            return match taker.send(session) {
                Ok(()) => Vec::new(),
                // The taker gave up waiting: nobody has the session.
                Err(session) => vec![session],
            };
        }
        let id = session.id().to_string();
        let ours =
            matches!(entries.get(&id), Some(Entry::Attached(a)) if Arc::ptr_eq(a, attachment));
        let park = ours
            && ending == Ending::Lost
            && session.initialized
            && !self.grace.is_zero()
            && !self.shutdown.is_cancelled();
        if !park {
            if ours {
                entries.remove(&id);
            }
            return vec![session];
        }
        let done = CancellationToken::new();
        entries.insert(
            id.clone(),
            Entry::Detached(Box::new(Parked {
                session,
                since: Instant::now(),
                done: done.clone(),
            })),
        );
        audit::session_detached(peer, &id, self.grace.as_millis());
        self.tasks.spawn(self.clone().expire(id, done));
        self.evict_over_max(&mut entries)
    }

    /// End session `id` after the grace unless it is resumed first.
    async fn expire(self: Arc<Self>, id: String, done: CancellationToken) {
        let reason = tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(self.grace) => "expired",
            _ = self.shutdown.cancelled() => "shutdown",
        };
        let parked = {
            let mut entries = self.lock();
            match entries.get(&id) {
                Some(Entry::Detached(parked)) if !parked.done.is_cancelled() => {
                    match entries.remove(&id) {
                        Some(Entry::Detached(parked)) => Some(parked),
                        _ => None,
                    }
                }
                _ => None,
            }
        };
        if let Some(parked) = parked {
            audit::session_ended(&id, reason);
            end(parked.session).await;
        }
    }

    /// Past `max_detached`, the sessions detached longest ago, to end now.
    fn evict_over_max(&self, entries: &mut HashMap<String, Entry>) -> Vec<Session> {
        let mut evicted = Vec::new();
        loop {
            let oldest = entries
                .iter()
                .filter_map(|(id, entry)| match entry {
                    Entry::Detached(parked) => Some((parked.since, id.clone())),
                    Entry::Attached(_) => None,
                })
                .collect::<Vec<_>>();
            if oldest.len() <= self.max_detached {
                return evicted;
            }
            let Some((_, id)) = oldest.into_iter().min() else {
                return evicted;
            };
            if let Some(Entry::Detached(parked)) = entries.remove(&id) {
                parked.done.cancel();
                audit::session_ended(&id, "evicted");
                evicted.push(parked.session);
            }
        }
    }
}

/// End a session: every send returns, every process is terminated and
/// reaped, and what they retained is freed.
pub async fn end(session: Session) {
    debug!(
        session = session.id(),
        "session ending; terminating its processes"
    );
    session.outbox().close();
    session.backend().shutdown().await;
    drop(session);
    // What the session's processes retained is freed now: hand it back
    // to the kernel rather than keep it for reuse (the server keeps freed
    // memory otherwise, see execd's allocator settings) — and once more a
    // moment later and again a few seconds on, for what its connection's
    // tasks free as they finish (later on a loaded machine).
    execd_process::budget::release_freed_memory();
    tokio::spawn(async {
        for wait in [1, 4] {
            tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
            execd_process::budget::release_freed_memory();
        }
    });
}
