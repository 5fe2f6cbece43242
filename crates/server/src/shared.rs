//! What the connections of one server share: its settings, the budget of
//! processes and retained output (`execd_process::SharedBudget`, which
//! every connection's process table draws on), the count of connections
//! served, and the filesystem slots ([`FsSlots`]) that bound the blocking
//! threads filesystem calls may hold, and the metrics ([`Metrics`]). (The sessions by id, for resumes,
//! are `crate::sessions::Sessions`, beside this.)

use std::sync::Arc;
use std::time::Duration;

use execd_environment::EnvError;
use execd_process::SharedBudget;
use execd_protocol::limits::{Limit, LimitExceeded};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;
use crate::ServerConfig;

/// How long a filesystem call waits for a free slot before it is refused.
pub const FS_SLOT_WAIT: Duration = Duration::from_secs(30);

/// Shared by every connection of one server.
pub struct Shared {
    pub config: ServerConfig,
    pub budget: Arc<SharedBudget>,
    pub metrics: Arc<Metrics>,
    connections: Arc<Semaphore>,
    fs_ops: Arc<Semaphore>,
}

impl Shared {
    pub fn new(config: ServerConfig) -> Arc<Shared> {
        Arc::new(Shared {
            budget: SharedBudget::new(config.max_processes, config.max_retained_bytes),
            connections: Arc::new(Semaphore::new(config.max_connections)),
            fs_ops: Arc::new(Semaphore::new(config.max_fs_ops)),
            metrics: Arc::new(Metrics::new()),
            config,
        })
    }

    /// A place for one more connection, held while it is served.
    pub fn connection_slot(&self) -> Result<OwnedSemaphorePermit, LimitExceeded> {
        self.connections.clone().try_acquire_owned().map_err(|_| {
            LimitExceeded::new(
                Limit::Connections,
                self.config.max_connections,
                format!(
                    "the server is serving {} connections already; try again later",
                    self.config.max_connections
                ),
            )
        })
    }

    /// Every connection place is taken (`/readyz` says not ready).
    pub fn at_connection_limit(&self) -> bool {
        self.connections.available_permits() == 0
    }

    /// The filesystem slots of a new connection.
    pub fn fs_slots(&self) -> FsSlots {
        FsSlots {
            connection: Arc::new(Semaphore::new(self.config.max_fs_ops_per_connection)),
            server: self.fs_ops.clone(),
            per_connection: self.config.max_fs_ops_per_connection,
            per_server: self.config.max_fs_ops,
        }
    }
}

/// Filesystem work runs on the blocking pool only while it holds a slot of
/// its connection and one of the server: a connection cannot take every
/// thread, and a call that finds no slot free for [`FS_SLOT_WAIT`] is
/// refused instead of waiting forever. (Operations themselves never block
/// forever on a file's type: see `execd_local::fs`.)
#[derive(Clone)]
pub struct FsSlots {
    connection: Arc<Semaphore>,
    server: Arc<Semaphore>,
    per_connection: usize,
    per_server: usize,
}

impl FsSlots {
    /// Run `op` on the blocking pool once both slots are free.
    pub async fn run<T: Send + 'static, E: Into<EnvError> + Send + 'static>(
        &self,
        op: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> Result<T, EnvError> {
        let busy = |limit: Limit, value: usize| {
            EnvError::LimitExceeded(LimitExceeded::new(
                limit,
                value,
                format!(
                    "no filesystem slot came free within {}s",
                    FS_SLOT_WAIT.as_secs()
                ),
            ))
        };
        let deadline = tokio::time::Instant::now() + FS_SLOT_WAIT;
        let connection = tokio::time::timeout_at(deadline, self.connection.clone().acquire_owned())
            .await
            .map_err(|_| busy(Limit::FsOpsPerConnection, self.per_connection))?
            .map_err(|_| EnvError::Failed("the connection is closing".to_string()))?;
        let server = tokio::time::timeout_at(deadline, self.server.clone().acquire_owned())
            .await
            .map_err(|_| busy(Limit::FsOps, self.per_server))?
            .map_err(|_| EnvError::Failed("the server is shutting down".to_string()))?;
        let task = tokio::task::spawn_blocking(move || {
            // Held until the operation is over, even if its caller is gone.
            let _slots = (connection, server);
            op()
        });
        match task.await {
            Ok(result) => result.map_err(Into::into),
            Err(err) => Err(EnvError::Failed(format!("filesystem task failed: {err}"))),
        }
    }
}
