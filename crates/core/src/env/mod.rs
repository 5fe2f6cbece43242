//! The environment abstraction: one trait set for running processes and
//! touching files, implemented here for this machine ([`local`]) and in
//! `execd-client` for a remote execd server.
//!
//! - [`traits`]: `ExecBackend`, `ExecProcess`, `FileSystem`, `Environment`.
//! - [`error`]: `EnvError`, shared by both implementations and mapped to and
//!   from JSON-RPC error codes.
//! - [`router`]: per-process event channels with seq checking.
//! - [`local`]: the local implementation (also what the server runs).
//! - [`collect`]: run a process to the end, keeping its output by stream.
//! - [`managed`]: `ManagedProcess`, the backend-agnostic wrapper a harness keeps.

pub mod collect;
pub mod error;
pub mod local;
pub mod managed;
pub mod router;
pub mod traits;

pub use collect::{collect, Collected};
pub use error::EnvError;
pub use local::{LocalBackend, LocalEnvironment};

pub use managed::{ManagedProcess, OutputCap, ProcessState};
pub use router::{EventReceiver, EventRouter};
pub use traits::{Environment, ExecBackend, ExecProcess, FileSystem, StartedProcess};
