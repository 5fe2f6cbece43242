//! The missing-path watches of one connection (`fs/watchMissing`, codex
//! dialect; the method is in `methods/fs_watch.rs`): each watch fires
//! `fs/missingChanged` once, when a missing path appears or the present one
//! goes away, and then ends. One task looks at them every `watch_interval`
//! while any exists, under the connection's filesystem slots, and stops
//! with the connection; their number and size are bounded (`CodexLimits`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use execd_environment::EnvError;
use execd_protocol::codex::fs::{self as cfs, MissingChangedNotification};
use execd_protocol::{ErrorCode, RpcError};
use execd_transport::outbox::{Outbox, Wire};

use crate::codex_limits::CodexLimits;
use crate::rpc;
use crate::shared::FsSlots;

/// One watch: paths the client found missing, and one it found present.
#[derive(Debug, Clone)]
pub struct Watch {
    pub missing: Vec<PathBuf>,
    pub present: Option<PathBuf>,
}

impl Watch {
    /// Whether the paths differ from what the client saw.
    pub fn changed(&self) -> bool {
        self.missing.iter().any(|p| p.exists())
            || self.present.as_ref().is_some_and(|p| !p.exists())
    }
}

#[derive(Default)]
struct Table {
    watches: HashMap<u64, Watch>,
    /// The polling task is running.
    polling: bool,
}

/// A connection's missing-path watches.
pub struct MissingWatches {
    table: Mutex<Table>,
    outbox: Arc<Outbox<Wire>>,
    limits: CodexLimits,
    /// The connection's filesystem slots, which each look runs under.
    fs: FsSlots,
}

impl MissingWatches {
    pub fn new(outbox: Arc<Outbox<Wire>>, limits: CodexLimits, fs: FsSlots) -> Arc<MissingWatches> {
        Arc::new(MissingWatches {
            table: Mutex::new(Table::default()),
            outbox,
            limits,
            fs,
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many watches are set.
    pub fn len(&self) -> usize {
        self.table().watches.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Set a watch unless its id is taken; starts the poller if needed.
    pub fn insert(self: &Arc<Self>, id: u64, watch: Watch) -> Result<bool, RpcError> {
        let mut table = self.table();
        if table.watches.contains_key(&id) {
            return Ok(false);
        }
        if table.watches.len() >= self.limits.max_watches {
            return Err(RpcError::new(
                ErrorCode::InvalidParams,
                format!(
                    "too many fs/watchMissing watches on this connection (limit {}); watch {id} was not set",
                    self.limits.max_watches
                ),
            ));
        }
        table.watches.insert(id, watch);
        if !table.polling {
            table.polling = true;
            tokio::spawn(poll(
                Arc::downgrade(self),
                self.outbox.clone(),
                self.limits.watch_interval,
            ));
        }
        Ok(true)
    }

    /// Remove and return the ids of the watches that fired; stops the
    /// poller (returns `None`) when none are left.
    fn fired(&self) -> Option<Vec<u64>> {
        let watches: Vec<(u64, Watch)> = self
            .table()
            .watches
            .iter()
            .map(|(i, w)| (*i, w.clone()))
            .collect();
        let fired: Vec<u64> = watches
            .into_iter()
            .filter(|(_, w)| w.changed())
            .map(|(i, _)| i)
            .collect();
        let mut table = self.table();
        for id in &fired {
            table.watches.remove(id);
        }
        if table.watches.is_empty() && fired.is_empty() {
            table.polling = false;
            return None;
        }
        Some(fired)
    }
}

/// Look at the watches every `interval` until none are left or the
/// connection closes.
async fn poll(
    watches: Weak<MissingWatches>,
    outbox: Arc<Outbox<Wire>>,
    interval: std::time::Duration,
) {
    let closing = outbox.closing_token();
    loop {
        tokio::select! {
            () = closing.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let Some(table) = watches.upgrade() else {
            return;
        };
        let slots = table.fs.clone();
        let fired = match slots.run(move || Ok::<_, EnvError>(table.fired())).await {
            Ok(Some(fired)) => fired,
            Ok(None) => return,
            // No filesystem slot came free: look again next time.
            Err(_) => continue,
        };
        for watch_id in fired {
            let frame = rpc::notification(
                cfs::MISSING_CHANGED,
                MissingChangedNotification { watch_id },
            );
            outbox.send(frame).await;
        }
    }
}
