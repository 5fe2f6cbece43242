//! A process's numbered events as values: what `process/output`,
//! `process/exited` and `process/closed` carry, decoded (chunks as bytes,
//! not base64). The local supervisor produces them, the client decodes them
//! from the wire, and the environment's per-process channels carry them.

use std::sync::Arc;

use bytes::Bytes;

use crate::process::OutputStream;

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit code, or -1 when a signal ended the process.
    pub code: i32,
    /// The signal's name (`SIGKILL`) when a signal ended the process.
    pub signal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Output { stream: OutputStream, chunk: Bytes },
    Exited(ExitInfo),
    Closed,
}

/// One numbered event of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessEvent {
    pub process_id: Arc<str>,
    pub seq: u64,
    pub kind: EventKind,
}
