//! [`LocalEnvironment`]: processes and files of this machine behind the
//! environment traits, with per-process event channels fed straight by the
//! process supervisors (no task in between). A process started with an
//! `outputWindow` is flow-controlled as on a server: its event receiver
//! acknowledges what the consumer took ([`LocalAck`]), and the supervisor
//! reads no more while the window is full.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use execd_environment::{
    wait_exit, EnvError, Environment, EventAck, EventRouter, ExecBackend, ExecProcess, ExitInfo,
    ExitWatch, StartedProcess,
};
use execd_policy::decision::{ExecGate, NoGate};
use execd_process::output_log::EventSink;
use execd_process::table::TableConfig;
use execd_protocol::event::ProcessEvent;
use execd_protocol::process::{ReadResult, StartParams, TerminalSize, WriteStatus};
use tokio::sync::watch;

use crate::backend::LocalBackend;
use crate::filesystem::LocalFileSystem;

/// The router as the supervisors' event sink: delivery never waits.
struct RouterSink(Arc<EventRouter>);

#[async_trait]
impl EventSink for RouterSink {
    async fn deliver(&self, event: ProcessEvent) {
        self.0.deliver(event);
    }
}

/// A local process's consumer acknowledges its events to the process table.
struct LocalAck(LocalBackend);

impl EventAck for LocalAck {
    fn ack(&self, process_id: &str, seq: u64) {
        // Only an unknown process (gone with its owner) can refuse it.
        let _ = self.0.ack(process_id, seq);
    }
}

/// Processes and files of this machine behind the environment traits.
pub struct LocalEnvironment {
    backend: LocalBackend,
    router: Arc<EventRouter>,
}

impl LocalEnvironment {
    pub fn new(config: TableConfig) -> Arc<Self> {
        Self::with_gate(config, Arc::new(NoGate))
    }

    /// Like [`LocalEnvironment::new`], with `gate` deciding `ask` verdicts of
    /// exec policies and receiving every decision (the local counterpart of
    /// a client's `exec/approve` handler).
    pub fn with_gate(config: TableConfig, gate: Arc<dyn ExecGate>) -> Arc<Self> {
        let router = Arc::new(EventRouter::default());
        Arc::new(LocalEnvironment {
            backend: LocalBackend::new(config, Arc::new(RouterSink(router.clone())), gate),
            router,
        })
    }

    /// A local [`Environment`] with default settings.
    pub fn environment() -> Environment {
        Self::new(TableConfig::default()).into_environment()
    }

    pub fn into_environment(self: Arc<Self>) -> Environment {
        Environment {
            exec: self,
            fs: Arc::new(LocalFileSystem),
            remote: false,
        }
    }

    pub async fn shutdown(&self) {
        self.backend.shutdown().await;
    }
}

#[async_trait]
impl ExecBackend for LocalEnvironment {
    async fn start(&self, params: StartParams) -> Result<StartedProcess, EnvError> {
        let (mut events, exit) = self.router.register(&params.process_id)?;
        if let Err(err) = self.backend.start(&params).await {
            self.router.unregister(&params.process_id);
            return Err(err);
        }
        if let Some(window) = params.output_window {
            events = events.acking(Arc::new(LocalAck(self.backend.clone())), window);
        }
        Ok(StartedProcess {
            process: Arc::new(LocalProcess {
                id: params.process_id,
                backend: self.backend.clone(),
                exit,
            }),
            events,
        })
    }
}

struct LocalProcess {
    id: String,
    backend: LocalBackend,
    exit: watch::Receiver<ExitWatch>,
}

#[async_trait]
impl ExecProcess for LocalProcess {
    fn id(&self) -> &str {
        &self.id
    }

    async fn read(
        &self,
        after_seq: u64,
        max_bytes: Option<u64>,
        wait_ms: Option<u64>,
    ) -> Result<ReadResult, EnvError> {
        let wait = Duration::from_millis(wait_ms.unwrap_or(0));
        self.backend
            .read(&self.id, after_seq, max_bytes, wait)
            .await
    }

    async fn write(&self, chunk: Bytes) -> Result<WriteStatus, EnvError> {
        self.backend.write(&self.id, chunk, false, None)
    }

    async fn close_stdin(&self) -> Result<WriteStatus, EnvError> {
        self.backend.write(&self.id, Bytes::new(), true, None)
    }

    async fn resize(&self, size: TerminalSize) -> Result<(), EnvError> {
        self.backend.resize(&self.id, size)
    }

    async fn signal(&self, signal: &str) -> Result<bool, EnvError> {
        self.backend.signal(&self.id, signal)
    }

    async fn terminate(&self) -> Result<bool, EnvError> {
        Ok(self.backend.terminate(&self.id))
    }

    async fn wait(&self) -> Result<ExitInfo, EnvError> {
        wait_exit(self.exit.clone()).await
    }
}
