//! [`Command`]: a process builder in the manner of `std::process::Command`,
//! for any [`Environment`] (this machine or an execd server alike):
//! `env.command("bash").args(["-c", "echo hi"]).cwd("/tmp").env("K", "V")`,
//! then `.output()` (status, stdout, stderr), `.status()`, or `.spawn()` (a
//! [`ManagedProcess`]). It builds a [`StartParams`] and runs it through the
//! environment's `ExecBackend`; stdin given with [`Command::stdin`] is
//! written in pieces (waiting while the server's stdin queue is full) while
//! the output is collected, then closed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use execd_protocol::event::ExitInfo;
use execd_protocol::limits::Limit;
use execd_protocol::network::NetworkPolicy;
use execd_protocol::policy::ExecPolicy;
use execd_protocol::process::{new_process_id, StartParams, TerminalSize, WriteStatus};
use execd_protocol::sandbox::SandboxSpec;

use crate::collect::collect;
use crate::managed::ManagedProcess;
use crate::traits::{Environment, ExecBackend, ExecProcess, StartedProcess};
use crate::EnvError;

/// Bytes per `write` when feeding stdin.
const STDIN_PIECE: usize = 1024 * 1024;
/// Output a spawned [`ManagedProcess`] keeps by default (head and tail).
pub const DEFAULT_OUTPUT_CAP: usize = 1024 * 1024;
/// First and longest pause before writing stdin again (queue full, or the
/// program's exec still awaiting approval).
const RETRY_FIRST: Duration = Duration::from_millis(5);
const RETRY_MAX: Duration = Duration::from_millis(200);

/// How a process ended, like `std::process::ExitStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitStatus(pub ExitInfo);

impl ExitStatus {
    /// Exited with code 0.
    pub fn success(&self) -> bool {
        self.0.code == 0 && self.0.signal.is_none()
    }

    /// The exit code; `None` when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.0.signal.is_none().then_some(self.0.code)
    }

    /// The name of the signal that ended the process (`"SIGKILL"`), if one did.
    pub fn signal(&self) -> Option<&str> {
        self.0.signal.as_deref()
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0.signal {
            Some(signal) => write!(f, "signal: {signal}"),
            None => write!(f, "exit status: {}", self.0.code),
        }
    }
}

/// Everything a finished process printed, like `std::process::Output`. A
/// PTY process's merged output is in `stdout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// How the process ended.
    pub status: ExitStatus,
    /// Its standard output (a PTY process's whole terminal output).
    pub stdout: Vec<u8>,
    /// Its standard error (empty for a PTY process).
    pub stderr: Vec<u8>,
}

/// What happens to the process's stdin.
#[derive(Debug, Clone)]
enum Stdin {
    /// Closed from the start.
    Closed,
    /// These bytes, then EOF.
    Bytes(Bytes),
    /// Left open for the caller ([`Command::spawn`]).
    Piped,
}

/// A process to start in an environment; see the module documentation.
/// Reusable: each run gets a fresh process id unless one was set.
#[derive(Clone)]
pub struct Command {
    exec: Arc<dyn ExecBackend>,
    params: StartParams,
    fixed_id: bool,
    stdin: Stdin,
    output_cap: usize,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Environment {
    /// A [`Command`] running `program` here: cwd `/`, environment
    /// `PATH=`[`DEFAULT_PATH`](execd_protocol::process::DEFAULT_PATH) only,
    /// no terminal, stdin closed.
    pub fn command(&self, program: impl Into<String>) -> Command {
        Command {
            exec: self.exec.clone(),
            params: StartParams::new([program.into()]),
            fixed_id: false,
            stdin: Stdin::Closed,
            output_cap: DEFAULT_OUTPUT_CAP,
        }
    }
}

impl Command {
    /// Add an argument.
    pub fn arg(&mut self, arg: impl Into<String>) -> &mut Self {
        self.params.argv.push(arg.into());
        self
    }

    /// Add arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.params.argv.extend(args.into_iter().map(Into::into));
        self
    }

    /// The working directory (absolute, on the environment's machine).
    pub fn cwd(&mut self, dir: impl Into<String>) -> &mut Self {
        self.params.cwd = dir.into();
        self
    }

    /// Set an environment variable.
    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.params.env.insert(key.into(), value.into());
        self
    }

    /// Set environment variables.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        for (key, value) in vars {
            self.env(key, value);
        }
        self
    }

    /// Remove an environment variable (also the default `PATH`).
    pub fn env_remove(&mut self, key: &str) -> &mut Self {
        self.params.env.remove(key);
        self
    }

    /// Start from an empty environment (no `PATH` either).
    pub fn env_clear(&mut self) -> &mut Self {
        self.params.env.clear();
        self
    }

    /// Feed `data` to stdin, then EOF.
    pub fn stdin(&mut self, data: impl Into<Bytes>) -> &mut Self {
        self.stdin = Stdin::Bytes(data.into());
        self
    }

    /// Keep stdin open for the caller to write ([`Command::spawn`]; then
    /// `ManagedProcess::write`).
    pub fn stdin_piped(&mut self) -> &mut Self {
        self.stdin = Stdin::Piped;
        self
    }

    /// Run under a pseudo-terminal (one merged output stream).
    pub fn tty(&mut self, tty: bool) -> &mut Self {
        self.params.tty = tty;
        self
    }

    /// The terminal's size (with [`Command::tty`]); default 24 x 80.
    pub fn terminal_size(&mut self, rows: u16, cols: u16) -> &mut Self {
        self.params.size = Some(TerminalSize { rows, cols });
        self
    }

    /// What the program sees as `argv[0]`.
    pub fn arg0(&mut self, arg0: impl Into<String>) -> &mut Self {
        self.params.arg0 = Some(arg0.into());
        self
    }

    /// Hold every exec of the process tree for a decision (docs/EXEC_POLICY.md).
    pub fn exec_policy(&mut self, policy: ExecPolicy) -> &mut Self {
        self.params.exec_policy = Some(policy);
        self
    }

    /// Confine the process tree (filesystem, network).
    pub fn sandbox(&mut self, sandbox: SandboxSpec) -> &mut Self {
        self.params.sandbox = Some(sandbox);
        self
    }

    /// Decide every network connection of the process tree by `policy`
    /// through execd's proxy (needs a [`Command::sandbox`] with `network:
    /// false`; docs/PROTOCOL.md, `networkPolicy`).
    pub fn network_policy(&mut self, policy: NetworkPolicy) -> &mut Self {
        self.params.network_policy = Some(policy);
        self
    }

    /// Use this process id instead of a fresh one per run.
    pub fn process_id(&mut self, id: impl Into<String>) -> &mut Self {
        self.params.process_id = id.into();
        self.fixed_id = true;
        self
    }

    /// Output a spawned [`ManagedProcess`] keeps (default [`DEFAULT_OUTPUT_CAP`]).
    pub fn output_cap(&mut self, bytes: usize) -> &mut Self {
        self.output_cap = bytes;
        self
    }

    /// The parameters the next run sends.
    pub fn params(&self) -> &StartParams {
        &self.params
    }

    fn run_params(&self) -> StartParams {
        let mut params = self.params.clone();
        if !self.fixed_id {
            params.process_id = new_process_id();
        }
        params.pipe_stdin = !matches!(self.stdin, Stdin::Closed);
        params
    }

    /// Start the process and return it with its raw event channel.
    pub async fn start(&self) -> Result<StartedProcess, EnvError> {
        self.exec.start(self.run_params()).await
    }

    /// Run to the end, collecting stdout and stderr.
    pub async fn output(&self) -> Result<Output, EnvError> {
        let mut started = self.start().await?;
        let process = started.process.clone();
        let feeding = async {
            let fed = feed(process.as_ref(), &self.stdin).await;
            if fed.is_err() {
                // Its stdin will never close: end it rather than wait forever.
                let _ = process.terminate().await;
            }
            fed
        };
        let (fed, collected) = tokio::join!(feeding, collect(&mut started.events));
        let mut collected = collected?;
        fed?;
        let exit = collected.exit.take().ok_or_else(|| {
            EnvError::Protocol(format!(
                "process {} closed without exiting",
                started.process.id()
            ))
        })?;
        let mut stdout = collected.stdout;
        stdout.extend_from_slice(&collected.pty);
        Ok(Output {
            status: ExitStatus(exit),
            stdout,
            stderr: collected.stderr,
        })
    }

    /// Run to the end; only the exit status (output is discarded).
    pub async fn status(&self) -> Result<ExitStatus, EnvError> {
        Ok(self.output().await?.status)
    }

    /// Start the process under a [`ManagedProcess`] (state, capped output).
    /// Stdin given with [`Command::stdin`] is written before this returns.
    pub async fn spawn(&self) -> Result<ManagedProcess, EnvError> {
        let started = self.start().await?;
        let process = started.process.clone();
        let managed = ManagedProcess::new(started, self.output_cap);
        // On failure the ManagedProcess is dropped, which terminates the process.
        feed(process.as_ref(), &self.stdin).await?;
        Ok(managed)
    }
}

/// Write stdin as configured: everything, in pieces, then EOF.
async fn feed(process: &dyn ExecProcess, stdin: &Stdin) -> Result<(), EnvError> {
    let Stdin::Bytes(data) = stdin else {
        return Ok(());
    };
    let mut offset = 0;
    while offset < data.len() {
        let end = (offset + STDIN_PIECE).min(data.len());
        write_piece(process, data.slice(offset..end)).await?;
        offset = end;
    }
    match process.close_stdin().await? {
        // A program that exits before reading everything closes its stdin first.
        WriteStatus::Accepted | WriteStatus::StdinClosed | WriteStatus::UnknownProcess => Ok(()),
        WriteStatus::Starting => Err(EnvError::InvalidRequest(format!(
            "process {} is still starting; stdin cannot be closed",
            process.id()
        ))),
    }
}

/// One piece, retried while the stdin queue is full or the process starting.
async fn write_piece(process: &dyn ExecProcess, piece: Bytes) -> Result<(), EnvError> {
    let mut pause = RETRY_FIRST;
    loop {
        match process.write(piece.clone()).await {
            Ok(WriteStatus::Accepted) => return Ok(()),
            // The program exited or closed its stdin: the rest has no reader.
            Ok(WriteStatus::StdinClosed | WriteStatus::UnknownProcess) => return Ok(()),
            Ok(WriteStatus::Starting) => {}
            Err(EnvError::LimitExceeded(limit)) if limit.limit == Limit::StdinQueueBytes => {}
            Err(err) => return Err(err),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
}
