//! The local environment: processes and files of this machine.
//!
//! [`LocalBackend`] is the operation set behind every `process/*` method;
//! the server's dispatch is a thin adapter over it (wire params in, wire
//! results out), and [`LocalEnvironment`] wraps the same backend in the
//! environment traits, with per-process event channels.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use execd_protocol::fs::{DirectoryEntry, Metadata};
use execd_protocol::process::{OutputChunk, ReadResult, StartParams, TerminalSize, WriteStatus};
use tokio::sync::watch;

use crate::env::router::{EventRouter, ExitWatch};
use crate::env::traits::{Environment, ExecBackend, ExecProcess, FileSystem, StartedProcess};
use crate::env::EnvError;
use crate::fs::{self, FsError};
use crate::output_log::{EventSink, ExitInfo};
use crate::policy::{ExecGate, NoGate};
use crate::process::ControlError;
use crate::spawn::SpawnSpec;
use crate::table::{ProcessTable, StartError, TableConfig, UnknownProcess};

impl From<StartError> for EnvError {
    fn from(err: StartError) -> EnvError {
        let message = err.to_string();
        match err {
            StartError::Duplicate(_) => EnvError::InvalidRequest(message),
            StartError::Spawn(spawn) if spawn.is_bad_input() => EnvError::InvalidInput(message),
            StartError::Spawn(_) | StartError::ShuttingDown => EnvError::Failed(message),
        }
    }
}

impl From<UnknownProcess> for EnvError {
    fn from(err: UnknownProcess) -> EnvError {
        EnvError::InvalidRequest(err.to_string())
    }
}

impl From<FsError> for EnvError {
    fn from(err: FsError) -> EnvError {
        let message = err.to_string();
        match err {
            FsError::RelativePath(_) | FsError::IsDirectory(_) => EnvError::InvalidInput(message),
            FsError::NotFound(_) => EnvError::NotFound(message),
            FsError::Io { .. } => EnvError::Failed(message),
        }
    }
}

impl From<ControlError> for EnvError {
    fn from(err: ControlError) -> EnvError {
        let message = err.to_string();
        match err {
            ControlError::NotATerminal(_) | ControlError::Closed(_) => {
                EnvError::InvalidInput(message)
            }
            ControlError::Resize { .. } => EnvError::Failed(message),
        }
    }
}

/// The process operations of one owner (a connection or an environment).
#[derive(Debug, Clone)]
pub struct LocalBackend {
    table: Arc<ProcessTable>,
}

impl LocalBackend {
    /// Events of every process go to `events`, in seq order per process.
    pub fn new(config: TableConfig, events: Arc<dyn EventSink>, gate: Arc<dyn ExecGate>) -> Self {
        LocalBackend {
            table: Arc::new(ProcessTable::new(config, events, gate)),
        }
    }

    fn spec(params: &StartParams) -> SpawnSpec {
        SpawnSpec {
            argv: params.argv.clone(),
            cwd: PathBuf::from(&params.cwd),
            env: params.env.clone(),
            tty: params.tty,
            pipe_stdin: params.pipe_stdin,
            arg0: params.arg0.clone(),
            size: params.size.unwrap_or_default(),
            exec_policy: params.exec_policy.clone(),
            sandbox: params.sandbox.clone(),
        }
    }

    /// Start a process and return once its program runs. With an exec
    /// policy the program's first exec waits for its decision (maybe a
    /// client's answer): callers that must keep serving meanwhile use
    /// [`LocalBackend::start`] from a task of its own.
    pub fn start_now(&self, params: &StartParams) -> Result<(), EnvError> {
        self.table.start(&params.process_id, &Self::spec(params))?;
        Ok(())
    }

    /// Start a process; the spawn runs on the blocking pool when it may
    /// wait on an exec decision. Writes meanwhile answer `starting`.
    pub async fn start(&self, params: &StartParams) -> Result<(), EnvError> {
        if params.exec_policy.is_none() {
            return self.start_now(params);
        }
        self.reserve(params)?;
        self.start_reserved(params).await
    }

    /// Claim the id of a start that may wait on an exec decision, so that
    /// from now on writes answer `starting` and a second start is a duplicate.
    pub fn reserve(&self, params: &StartParams) -> Result<(), EnvError> {
        Ok(self.table.reserve(&params.process_id)?)
    }

    /// Finish a start claimed with [`LocalBackend::reserve`], on the blocking
    /// pool (the program's first exec may wait for a decision).
    pub async fn start_reserved(&self, params: &StartParams) -> Result<(), EnvError> {
        let id = params.process_id.clone();
        let spec = Self::spec(params);
        let table = self.table.clone();
        tokio::task::spawn_blocking(move || table.start_reserved(&id, &spec).map(drop))
            .await
            .map_err(|err| EnvError::Failed(format!("start task failed: {err}")))??;
        Ok(())
    }

    pub async fn read(
        &self,
        id: &str,
        after_seq: u64,
        max_bytes: Option<u64>,
        wait: Duration,
    ) -> Result<ReadResult, EnvError> {
        let max_bytes = max_bytes.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let snapshot = self.table.read(id, after_seq, max_bytes, wait).await?;
        let exit = snapshot.exit;
        Ok(ReadResult {
            chunks: snapshot
                .chunks
                .into_iter()
                .map(|c| OutputChunk {
                    seq: c.seq,
                    stream: c.stream,
                    chunk: c.chunk,
                })
                .collect(),
            next_seq: snapshot.next_seq,
            exited: exit.is_some(),
            exit_code: exit.as_ref().map(|e| e.code),
            closed: snapshot.closed,
            failure: snapshot.failure,
            signal: exit.and_then(|e| e.signal),
        })
    }

    /// Queue input; with `close_stdin`, EOF follows it.
    pub fn write(&self, id: &str, chunk: Bytes, close_stdin: bool) -> WriteStatus {
        self.table.write(id, chunk, close_stdin)
    }

    pub fn resize(&self, id: &str, size: TerminalSize) -> Result<(), EnvError> {
        Ok(self.table.get(id)?.resize(size)?)
    }

    pub fn signal(&self, id: &str, name: &str) -> Result<bool, EnvError> {
        let signal = crate::signal::parse(name).ok_or_else(|| {
            EnvError::InvalidInput(format!(
                "unknown signal {name:?}; expected one of INT, TERM, KILL, HUP, QUIT, USR1, USR2, WINCH"
            ))
        })?;
        Ok(self.table.get(id)?.signal(signal))
    }

    pub fn terminate(&self, id: &str) -> bool {
        self.table.terminate(id)
    }

    /// Terminate every process and wait (bounded) until all have closed.
    pub async fn shutdown(&self) {
        self.table.shutdown().await;
    }
}

/// This machine's filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalFileSystem;

/// Run a blocking filesystem call off the async threads.
async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, EnvError> {
    match tokio::task::spawn_blocking(op).await {
        Ok(result) => result.map_err(EnvError::from),
        Err(err) => Err(EnvError::Failed(format!("filesystem task failed: {err}"))),
    }
}

#[async_trait]
impl FileSystem for LocalFileSystem {
    async fn read_file(&self, path: &str) -> Result<Vec<u8>, EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::read_file(&path)).await
    }

    async fn read_range(
        &self,
        path: &str,
        offset: u64,
        length: u64,
    ) -> Result<(Vec<u8>, bool), EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::read_range(&path, offset, length)).await
    }

    async fn write_file(&self, path: &str, data: Vec<u8>) -> Result<(), EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::write_file(&path, &data)).await
    }

    async fn append_file(&self, path: &str, data: Vec<u8>) -> Result<(), EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::append_file(&path, &data)).await
    }

    async fn create_directory(&self, path: &str, recursive: bool) -> Result<(), EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::create_directory(&path, recursive)).await
    }

    async fn metadata(&self, path: &str) -> Result<Metadata, EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::metadata(&path)).await
    }

    async fn read_directory(&self, path: &str) -> Result<Vec<DirectoryEntry>, EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::read_directory(&path)).await
    }

    async fn remove(&self, path: &str, recursive: bool, force: bool) -> Result<(), EnvError> {
        let path = fs::absolute(path)?;
        blocking(move || fs::remove(&path, recursive, force)).await
    }

    async fn copy(&self, source: &str, destination: &str, recursive: bool) -> Result<(), EnvError> {
        let source = fs::absolute(source)?;
        let destination = fs::absolute(destination)?;
        blocking(move || fs::copy(&source, &destination, recursive)).await
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
            backend: LocalBackend::new(config, router.clone(), gate),
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
        let (events, exit) = self.router.register(&params.process_id)?;
        if let Err(err) = self.backend.start(&params).await {
            self.router.unregister(&params.process_id);
            return Err(err);
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

/// Wait on an [`ExitWatch`] until the process exited or its events failed.
pub async fn wait_exit(mut watch: watch::Receiver<ExitWatch>) -> Result<ExitInfo, EnvError> {
    let state = watch
        .wait_for(|s| s.exit.is_some() || s.failure.is_some())
        .await
        .map_err(|_| EnvError::ConnectionLost("the process's event source is gone".into()))?;
    match (&state.exit, &state.failure) {
        (Some(exit), _) => Ok(exit.clone()),
        (None, Some(failure)) => Err(failure.clone()),
        (None, None) => Err(EnvError::Failed("no exit status".into())),
    }
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
        Ok(self.backend.write(&self.id, chunk, false))
    }

    async fn close_stdin(&self) -> Result<WriteStatus, EnvError> {
        Ok(self.backend.write(&self.id, Bytes::new(), true))
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
