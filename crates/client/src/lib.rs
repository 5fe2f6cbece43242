//! The client side of execd, and the one crate a harness needs: everything
//! a program touches to run commands here or behind an execd server is
//! re-exported at the top (the parameters and events of processes, exec
//! policies and their gate, file metadata, errors), and [`protocol`] is the
//! whole wire-type crate for the rest.
//!
//! - [`client`]: `ExecServerClient`: connect (WebSocket or a child's stdio),
//!   handshake, request/response correlation, per-process event channels.
//! - `frames`: reading a connection and routing what arrives.
//! - `resume`: reconnecting after a lost connection and resuming the session.
//! - `watch_routes`: `fs/changed` batches into each watch's queue.
//! - [`remote`]: the environment traits over a client.
//! - [`manager`]: `EnvironmentManager`: local, or remote when `EXECD_URL` is
//!   set, plus named environments ([`environments_file`]: the shared file).
//! - `transfers`: `fs/upload` / `fs/download` streams (binary pieces, windowed);
//!   `transfer_routes`: their table, fed by the reading task.
//! - [`manager`]: `EnvironmentManager`: local, or remote when `EXECD_URL` is set.
//! - [`websocket`]: opening the WebSocket: token, TLS, refusals.
//! - [`error`]: the `ClientError` type.
//!
//! ```no_run
//! # async fn demo() -> Result<(), execd_client::EnvError> {
//! use execd_client::{collect, EnvironmentManager, StartParams};
//!
//! let env = EnvironmentManager::from_env().environment().await?;
//! let mut started = env.exec.start(StartParams::new(["uname", "-a"])).await?;
//! let output = collect(&mut started.events).await?;
//! println!("{} (exit {:?})", output.stdout_text(), output.code());
//! # Ok(()) }
//! ```

mod asks;
pub mod client;
pub mod environments_file;
pub mod error;
mod frames;
pub mod manager;
pub mod remote;
mod resume;
mod state;
mod transfer_routes;
mod transfers;
mod watch_routes;
pub mod websocket;

pub use client::{ExecServerClient, LinkState};
pub use environments_file::{Credential, EnvironmentSpec, EnvironmentsError};
pub use error::ClientError;
pub use manager::EnvironmentManager;
pub use remote::RemoteEnvironment;
pub use websocket::{ConnectOptions, Keepalive, ReconnectPolicy, DEFAULT_OUTPUT_WINDOW};

/// The wire types, for what the names below do not cover.
pub use execd_protocol as protocol;

pub use execd_environment::traits::{read_file_to, write_file_from};
pub use execd_environment::{
    collect, Collected, Command, EnvError, Environment, EventKind, EventReceiver, ExecBackend,
    ExecProcess, ExitInfo, ExitStatus, FileSystem, ManagedProcess, Output, OutputCap, ProcessEvent,
    ProcessState, StartedProcess,
};
pub use execd_environment::{pump, ByteSink, ByteSource, TransferFormat, WriteOptions};
pub use execd_local::LocalEnvironment;
pub use execd_policy::decision::{ExecGate, NoGate};
pub use execd_protocol::fs::{DirectoryEntry, Metadata};
pub use execd_protocol::policy::{
    Answer, ApproveParams, DecidedBy, DecisionParams, ExecPolicy, Rule, Verdict,
};
pub use execd_protocol::process::{
    OutputChunk, OutputStream, ReadResult, StartParams, TerminalSize, WriteStatus, DEFAULT_PATH,
};
pub use execd_protocol::sandbox::SandboxSpec;
pub use execd_protocol::{Limit, LimitExceeded, RpcError};
pub use execd_transport::token::Token;

/// Implementing [`ExecGate`] takes this attribute (`#[execd_client::async_trait]`).
pub use async_trait::async_trait;

/// How long an ordinary call (and a connection's handshake) may take.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The README's Rust snippet, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
