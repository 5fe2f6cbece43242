//! The client side of execd.
//!
//! - [`client`]: `ExecServerClient`: connect (WebSocket or a child's stdio),
//!   handshake, request/response correlation, per-process event channels.
//! - [`remote`]: the environment traits over a client.
//! - [`manager`]: `EnvironmentManager`: local, or remote when `EXECD_URL` is set.
//! - [`websocket`]: opening the WebSocket: token, TLS, refusals.
//! - [`error`]: the `ClientError` type.

pub mod client;
pub mod error;
pub mod manager;
pub mod remote;
pub mod websocket;

pub use client::ExecServerClient;
pub use error::ClientError;
pub use execd_environment::{
    EnvError, Environment, ExecBackend, ExecProcess, FileSystem, ManagedProcess, OutputCap,
    ProcessState, StartedProcess,
};
pub use execd_transport::token::Token;
pub use manager::EnvironmentManager;
pub use remote::RemoteEnvironment;
pub use websocket::ConnectOptions;
