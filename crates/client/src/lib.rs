//! The client side of execd.
//!
//! - [`client`]: `ExecServerClient`: connect (WebSocket or a child's stdio),
//!   handshake, request/response correlation, per-process event channels.
//! - `frames`: reading a connection and routing what arrives.
//! - `resume`: reconnecting after a lost connection and resuming the session.
//! - [`remote`]: the environment traits over a client.
//! - [`manager`]: `EnvironmentManager`: local, or remote when `EXECD_URL` is set.
//! - [`websocket`]: opening the WebSocket: token, TLS, refusals.
//! - [`error`]: the `ClientError` type.

pub mod client;
pub mod error;
mod frames;
pub mod manager;
pub mod remote;
mod resume;
pub mod websocket;

pub use client::{ExecServerClient, LinkState};
pub use error::ClientError;
pub use execd_environment::{
    EnvError, Environment, ExecBackend, ExecProcess, FileSystem, ManagedProcess, OutputCap,
    ProcessState, StartedProcess,
};
pub use execd_transport::token::Token;
pub use manager::EnvironmentManager;
pub use remote::RemoteEnvironment;
pub use websocket::{ConnectOptions, Keepalive, ReconnectPolicy, DEFAULT_OUTPUT_WINDOW};

/// How long an ordinary call (and a connection's handshake) may take.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
