//! The environment abstraction: one trait set for running processes and
//! touching files, implemented for this machine by `execd-local` and for a
//! remote execd server by `execd-client`. Neither implementation depends
//! on the other; both depend on this.
//!
//! - [`traits`]: `ExecBackend`, `ExecProcess`, `FileSystem`, `Environment`.
//! - [`error`]: `EnvError`, shared by both implementations and mapped to and
//!   from JSON-RPC error codes.
//! - [`router`]: per-process event channels with seq checking.
//! - [`acks`]: the event receiver and its acknowledgement hook (flow control).
//! - [`collect`]: run a process to the end, keeping its output by stream.
//! - [`managed`]: `ManagedProcess`, the backend-agnostic wrapper a harness keeps.
//! - [`watch`]: `FileWatch` and the coalescing, bounded `ChangeQueue` behind it.
//! - [`transfer`]: `ByteSource`/`ByteSink`, streams of a file or a tree.
//! - [`command`]: `Command`, a `std::process::Command`-style builder on `Environment`.

pub mod acks;
pub mod collect;
pub mod command;
pub mod error;
pub mod managed;
pub mod router;
pub mod traits;
pub mod transfer;
pub mod watch;

pub use acks::{EventAck, EventReceiver};
pub use collect::{collect, Collected};
pub use command::{Command, ExitStatus, Output};
pub use error::EnvError;
pub use execd_protocol::event::{EventKind, ExitInfo, ProcessEvent};
pub use managed::{ManagedProcess, OutputCap, ProcessState};
pub use router::{wait_exit, EventRouter, ExitWatch};
pub use traits::{Environment, ExecBackend, ExecProcess, FileSystem, StartedProcess};
pub use transfer::{pump, ByteSink, ByteSource, TransferFormat, WriteOptions};
pub use watch::{ChangeQueue, EventBudget, FileWatch};
