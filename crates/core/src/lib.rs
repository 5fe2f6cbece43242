//! The local process backend and filesystem of execd.
//!
//! - [`output_log`]: per-process event numbering and bounded output retention.
//! - [`spawn`]: starting a program on pipes or a PTY in its own process group.
//! - [`sandbox`]: the opt-in per-process sandbox (Landlock, network namespace, `no_new_privs`).
//! - [`process`]: one running process: its supervisor task and signals.
//! - [`procfs`]: other processes as `/proc` shows them (session members, output holders).
//! - [`stdin`]: writing to a process's stdin without blocking anyone.
//! - [`outbox`]: the shared sending half of a connection.
//! - [`table`]: the processes of one connection, keyed by client-chosen id.
//! - [`fs`]: the filesystem operations.
//! - [`signal`]: signal names.
//! - [`policy`], [`exec_guard`]: per-command exec decisions, and holding
//!   every exec of a process tree (seccomp user notification) until decided.
//! - [`escalation`]: the wrapper protocol (`LD_PRELOAD` shim) that can run
//!   a command outside the sandbox.
//! - [`env`]: the environment traits and their local implementation.

pub mod env;
pub mod escalation;
pub mod exec_guard;
pub mod fs;
pub mod outbox;
pub mod output_log;
pub mod policy;
pub mod process;
pub mod procfs;
pub mod sandbox;
pub mod signal;
pub mod spawn;
pub mod stdin;
pub mod table;

pub use execd_protocol::process::{OutputStream, TerminalSize, WriteStatus};
pub use output_log::{EventKind, EventSink, ExitInfo, ProcessEvent};
pub use table::{ProcessTable, StartError, TableConfig};
