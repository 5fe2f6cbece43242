//! Running processes on this machine: the mechanism under the local
//! environment and the server.
//!
//! - [`spawn`]: starting a program on pipes or a PTY in its own process group
//!   (with, when asked, the sandbox and exec guard from `execd-policy`).
//! - [`direct`]: the start of a plain child on pipes (a vfork of our own).
//! - [`process`]: one running process: its supervisor task and signals.
//! - [`output_log`]: per-process event numbering and bounded output retention.
//! - [`stdin`]: writing to a process's stdin without blocking anyone.
//! - [`table`]: the processes of one owner, keyed by client-chosen id.
//! - [`budget`]: what the tables of one server share: process slots and
//!   the retained-output budget.
//! - [`program`]: finding a program in the child's `PATH` as `execvp` would.
//! - [`procfs`]: other processes as `/proc` shows them (session members, output holders).
//! - [`signal`]: signal names.
//! - [`text_busy`]: retrying a start refused with `ETXTBSY` (a fork/exec race).
//! - [`write_ids`]: the `writeId`s of a process's recent writes (retries apply once).

pub mod budget;
pub mod direct;
pub mod output_log;
pub mod process;
pub mod procfs;
pub mod program;
pub mod signal;
pub mod spawn;
pub mod stdin;
pub mod table;
pub mod text_busy;
pub mod write_ids;

pub use budget::SharedBudget;
pub use execd_protocol::process::{OutputStream, TerminalSize, WriteStatus};
pub use output_log::{EventKind, EventSink, ExitInfo, ProcessEvent};
pub use table::{ProcessTable, StartError, TableConfig, WriteError};
