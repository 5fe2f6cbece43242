//! [`LocalBackend`]: the process operations of one owner (a connection or
//! a local environment) on this machine, in the environment's terms
//! (`EnvError`, wire results). The server's process methods are a thin
//! adapter over it; [`LocalEnvironment`](crate::LocalEnvironment) wraps it
//! in the environment traits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use execd_environment::EnvError;
use execd_policy::decision::ExecGate;
use execd_process::budget::SharedBudget;
use execd_process::output_log::EventSink;
use execd_process::process::ControlError;
use execd_process::spawn::SpawnSpec;
use execd_process::table::{
    AckRefused, ProcessInfo, ProcessTable, StartError, TableConfig, UnknownProcess, WriteError,
};
use execd_protocol::limits::{show_bytes, Limit, LimitExceeded};
use execd_protocol::process::{
    ListedProcess, OutputChunk, ProcessStateName, ReadResult, StartParams, TerminalSize,
    WriteStatus,
};

/// How a failed start reads in the environment's terms.
fn start_error(err: StartError) -> EnvError {
    let message = err.to_string();
    match err {
        StartError::Duplicate(_) => EnvError::InvalidRequest(message),
        StartError::Limit(limit) => EnvError::LimitExceeded(limit),
        StartError::Spawn(spawn) if spawn.is_bad_input() => EnvError::InvalidInput(message),
        StartError::EmptyWindow => EnvError::InvalidInput(message),
        StartError::Spawn(_) | StartError::ShuttingDown => EnvError::Failed(message),
    }
}

fn unknown(err: UnknownProcess) -> EnvError {
    EnvError::InvalidRequest(err.to_string())
}

fn control_error(err: ControlError) -> EnvError {
    let message = err.to_string();
    match err {
        ControlError::NotATerminal(_) | ControlError::Closed(_) => EnvError::InvalidInput(message),
        ControlError::Resize { .. } => EnvError::Failed(message),
    }
}

/// The process operations of one owner (a connection or an environment).
#[derive(Debug, Clone)]
pub struct LocalBackend {
    table: Arc<ProcessTable>,
    /// Bumped by the owner when a start's reply may have been lost (a
    /// server session resumed on a new connection): a start repeated
    /// identically after that is a retry, before it a duplicate.
    epoch: Arc<AtomicU64>,
}

impl LocalBackend {
    /// Events of every process go to `events`, in seq order per process.
    pub fn new(config: TableConfig, events: Arc<dyn EventSink>, gate: Arc<dyn ExecGate>) -> Self {
        Self::with_budget(config, SharedBudget::unlimited(), events, gate)
    }

    /// Like [`LocalBackend::new`], holding process counts and retained
    /// output against `budget`, which other backends (the other
    /// connections of a server) share.
    pub fn with_budget(
        config: TableConfig,
        budget: Arc<SharedBudget>,
        events: Arc<dyn EventSink>,
        gate: Arc<dyn ExecGate>,
    ) -> Self {
        LocalBackend {
            table: Arc::new(ProcessTable::new(config, budget, events, gate)),
            epoch: Arc::new(AtomicU64::new(0)),
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
            network_policy: params.network_policy.clone(),
            output_window: params.output_window,
        }
    }

    /// A start's `outputWindow` is more than 0 and at most the table's maximum.
    fn check_window(&self, params: &StartParams) -> Result<(), EnvError> {
        let Some(window) = params.output_window else {
            return Ok(());
        };
        if window == 0 {
            return Err(start_error(StartError::EmptyWindow));
        }
        let max = self.table.config().max_output_window;
        if window > max {
            return Err(EnvError::LimitExceeded(LimitExceeded::new(
                Limit::OutputWindow,
                max,
                format!(
                    "outputWindow {window} of process {} is larger than the server allows ({})",
                    params.process_id,
                    show_bytes(max)
                ),
            )));
        }
        Ok(())
    }

    /// A hash of everything in `params`: an identical retried start has
    /// the same one, whatever order its maps were sent in.
    pub fn fingerprint(params: &StartParams) -> u64 {
        use std::hash::{Hash, Hasher};
        let StartParams {
            process_id,
            argv,
            cwd,
            env,
            tty,
            pipe_stdin,
            arg0,
            size,
            exec_policy,
            sandbox,
            network_policy,
            output_window,
        } = params;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (process_id, argv, cwd, tty, pipe_stdin, arg0, output_window).hash(&mut hasher);
        let mut env: Vec<_> = env.iter().collect();
        env.sort_unstable();
        env.hash(&mut hasher);
        // The rarely sent parts as canonical JSON (`Value` objects keep
        // their keys sorted: one text per value).
        let canonical = |value: serde_json::Result<serde_json::Value>| {
            value.map(|value| value.to_string()).unwrap_or_default()
        };
        if size.is_some() || exec_policy.is_some() || sandbox.is_some() || network_policy.is_some()
        {
            canonical(serde_json::to_value((
                size,
                exec_policy,
                sandbox,
                network_policy,
            )))
            .hash(&mut hasher);
        }
        hasher.finish()
    }

    /// Starts from now on are in epoch `epoch` (see [`LocalBackend::is_retried_start`]).
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    fn stamp(&self, params: &StartParams) -> (u64, u64) {
        (Self::fingerprint(params), self.epoch.load(Ordering::SeqCst))
    }

    /// True when `params` repeats, in a later epoch, the start of a
    /// process of this owner exactly (same id, identical params): a retry
    /// whose first reply may have been lost, not a duplicate.
    pub fn is_retried_start(&self, params: &StartParams) -> bool {
        // Hashed only when the id is known: every start asks.
        let Some((known, started)) = self.table.fingerprint(&params.process_id) else {
            return false;
        };
        let (hash, epoch) = self.stamp(params);
        known == hash && started < epoch
    }

    /// Start a process and return once its program runs. With an exec
    /// policy the program's first exec waits for its decision (maybe a
    /// client's answer): callers that must keep serving meanwhile use
    /// [`LocalBackend::start`] from a task of its own.
    pub fn start_now(&self, params: &StartParams) -> Result<(), EnvError> {
        self.check_window(params)?;
        self.table
            .start(&params.process_id, &Self::spec(params))
            .map_err(start_error)?;
        self.table
            .set_fingerprint(&params.process_id, self.stamp(params));
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
        self.check_window(params)?;
        self.table
            .reserve(&params.process_id)
            .map_err(start_error)?;
        self.table
            .set_fingerprint(&params.process_id, self.stamp(params));
        Ok(())
    }

    /// Finish a start claimed with [`LocalBackend::reserve`], on the blocking
    /// pool (the program's first exec may wait for a decision).
    pub async fn start_reserved(&self, params: &StartParams) -> Result<(), EnvError> {
        let id = params.process_id.clone();
        let spec = Self::spec(params);
        let table = self.table.clone();
        tokio::task::spawn_blocking(move || table.start_reserved(&id, &spec).map(drop))
            .await
            .map_err(|err| EnvError::Failed(format!("start task failed: {err}")))?
            .map_err(start_error)?;
        Ok(())
    }

    /// The pid of a started process (`None` for an unknown or reserved id).
    pub fn pid(&self, id: &str) -> Option<i32> {
        self.table.get(id).ok().map(|process| process.pid())
    }

    pub async fn read(
        &self,
        id: &str,
        after_seq: u64,
        max_bytes: Option<u64>,
        wait: Duration,
    ) -> Result<ReadResult, EnvError> {
        let max_bytes = max_bytes.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let snapshot = self
            .table
            .read(id, after_seq, max_bytes, wait)
            .await
            .map_err(unknown)?;
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
            exited_seq: snapshot.exited_seq,
            closed_seq: snapshot.closed_seq,
            sandbox_denied: None,
        })
    }

    /// The owner's processes (closed records too), in start order.
    pub fn list(&self) -> Vec<ListedProcess> {
        self.table.list().into_iter().map(listed).collect()
    }

    /// The consumer took every event of `id` up to `seq`.
    pub fn ack(&self, id: &str, seq: u64) -> Result<(), EnvError> {
        self.table.ack(id, seq).map_err(|err| match err {
            AckRefused::Unknown(unknown_id) => unknown(unknown_id),
            AckRefused::Ahead(ahead) => EnvError::InvalidInput(ahead.to_string()),
        })
    }

    /// Queue input; with `close_stdin`, EOF follows it. A full stdin queue
    /// refuses the write with [`EnvError::LimitExceeded`].
    /// A `write_id` the process remembers returns its first result and
    /// writes nothing.
    pub fn write(
        &self,
        id: &str,
        chunk: Bytes,
        close_stdin: bool,
        write_id: Option<&str>,
    ) -> Result<WriteStatus, EnvError> {
        self.table
            .write(id, chunk, close_stdin, write_id)
            .map_err(|err| match err {
                WriteError::StdinFull(full) => EnvError::LimitExceeded(full.into()),
            })
    }

    pub fn resize(&self, id: &str, size: TerminalSize) -> Result<(), EnvError> {
        self.table
            .get(id)
            .map_err(unknown)?
            .resize(size)
            .map_err(control_error)
    }

    pub fn signal(&self, id: &str, name: &str) -> Result<bool, EnvError> {
        let signal = execd_process::signal::parse(name).ok_or_else(|| {
            EnvError::InvalidInput(format!(
                "unknown signal {name:?}; expected one of INT, TERM, KILL, HUP, QUIT, USR1, USR2, WINCH"
            ))
        })?;
        Ok(self.table.get(id).map_err(unknown)?.signal(signal))
    }

    pub fn terminate(&self, id: &str) -> bool {
        self.table.terminate(id)
    }

    /// Terminate every process and wait (bounded) until all have closed.
    pub async fn shutdown(&self) {
        self.table.shutdown().await;
    }
}

fn listed(info: ProcessInfo) -> ListedProcess {
    let state = if info.closed {
        ProcessStateName::Closed
    } else if info.exit.is_some() {
        ProcessStateName::Exited
    } else {
        ProcessStateName::Running
    };
    let windowed = info.flow.window.is_some();
    ListedProcess {
        process_id: info.id.to_string(),
        state,
        exit_code: info.exit.as_ref().map(|exit| exit.code),
        signal: info.exit.and_then(|exit| exit.signal),
        next_seq: info.flow.next_seq,
        tty: info.tty,
        output_window: info.flow.window,
        acked_seq: windowed.then_some(info.flow.acked_seq),
    }
}
