//! The server's resource limits as the wire names them: every limit a
//! client can run into has a name (the camelCase of its setting, carried in
//! the error's `data.limit`), the `execd serve` flag that sets it, and one
//! error shape, [`LimitExceeded`]: JSON-RPC -32600 whose message says what
//! was refused and names the limit and its value, with `data`
//! `{"limit": NAME, "value": N}` for programs.

use serde_json::{json, Value};

use crate::envelope::{ErrorCode, RpcError};

/// A limit a request can run into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Connections served at once, server-wide.
    Connections,
    /// Processes not yet closed on one connection.
    ProcessesPerConnection,
    /// Processes not yet closed, server-wide.
    Processes,
    /// Largest frame (message) accepted.
    FrameBytes,
    /// Largest file (or range) one `fs/readFile` returns.
    ReadBytes,
    /// Bytes queued for one process's stdin.
    StdinQueueBytes,
    /// Requests of one connection answered from a task and not yet answered.
    RequestsInFlight,
    /// Filesystem operations running at once, server-wide.
    FsOps,
    /// Filesystem operations of one connection running at once.
    FsOpsPerConnection,
    /// Files one connection holds open through `fs/open` (codex dialect).
    OpenFiles,
    /// `fs/watchMissing` watches of one connection (codex dialect).
    Watches,
    /// Paths in one `fs/watchMissing` watch (codex dialect).
    WatchPaths,
    /// `fs/watch` watches of one session.
    FsWatches,
    /// inotify watches (paths) held by one session's `fs/watch` watches.
    FsWatchPaths,
    /// Changes of one session queued (after coalescing) for `fs/changed`.
    FsWatchEvents,
    /// `http/request`s of one connection running at once (codex dialect).
    HttpRequests,
    /// Largest response body one `http/request` passes on (codex dialect).
    HttpBodyBytes,
    /// Largest `outputWindow` of a process.
    OutputWindow,
    /// Sessions kept detached (waiting for a resume) at once.
    DetachedSessions,
    /// `fs/upload` and `fs/download` streams of one connection open at once.
    Transfers,
}

impl Limit {
    pub const ALL: [Limit; 20] = [
        Limit::Connections,
        Limit::ProcessesPerConnection,
        Limit::Processes,
        Limit::FrameBytes,
        Limit::ReadBytes,
        Limit::StdinQueueBytes,
        Limit::RequestsInFlight,
        Limit::FsOps,
        Limit::FsOpsPerConnection,
        Limit::OpenFiles,
        Limit::Watches,
        Limit::WatchPaths,
        Limit::FsWatches,
        Limit::FsWatchPaths,
        Limit::FsWatchEvents,
        Limit::HttpRequests,
        Limit::HttpBodyBytes,
        Limit::OutputWindow,
        Limit::DetachedSessions,
        Limit::Transfers,
    ];

    /// The name in `data.limit`.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Connections => "maxConnections",
            Limit::ProcessesPerConnection => "maxProcessesPerConnection",
            Limit::Processes => "maxProcesses",
            Limit::FrameBytes => "maxFrameBytes",
            Limit::ReadBytes => "maxReadBytes",
            Limit::StdinQueueBytes => "maxStdinQueueBytes",
            Limit::RequestsInFlight => "maxRequestsInFlight",
            Limit::FsOps => "maxFsOps",
            Limit::FsOpsPerConnection => "maxFsOpsPerConnection",
            Limit::OpenFiles => "maxOpenFiles",
            Limit::Watches => "maxWatches",
            Limit::WatchPaths => "maxWatchPaths",
            Limit::FsWatches => "maxFsWatches",
            Limit::FsWatchPaths => "maxFsWatchPaths",
            Limit::FsWatchEvents => "maxFsWatchEvents",
            Limit::HttpRequests => "maxHttpRequests",
            Limit::HttpBodyBytes => "maxHttpBodyBytes",
            Limit::OutputWindow => "maxOutputWindow",
            Limit::DetachedSessions => "maxDetachedSessions",
            Limit::Transfers => "maxTransfers",
        }
    }

    /// The `execd serve` flag that sets it.
    pub fn flag(self) -> &'static str {
        match self {
            Limit::Connections => "--max-connections",
            Limit::ProcessesPerConnection => "--max-processes-per-connection",
            Limit::Processes => "--max-processes",
            Limit::FrameBytes => "--max-frame-bytes",
            Limit::ReadBytes => "--max-read-bytes",
            Limit::StdinQueueBytes => "--max-stdin-queue-bytes",
            Limit::RequestsInFlight => "--max-requests-in-flight",
            Limit::FsOps => "--max-fs-ops",
            Limit::FsOpsPerConnection => "--max-fs-ops-per-connection",
            Limit::OpenFiles => "--max-open-files",
            Limit::Watches => "--max-watches",
            Limit::WatchPaths => "--max-watch-paths",
            Limit::FsWatches => "--max-fs-watches",
            Limit::FsWatchPaths => "--max-fs-watch-paths",
            Limit::FsWatchEvents => "--max-fs-watch-events",
            Limit::HttpRequests => "--max-http-requests",
            Limit::HttpBodyBytes => "--max-http-body-bytes",
            Limit::OutputWindow => "--max-output-window",
            Limit::DetachedSessions => "--max-detached-sessions",
            Limit::Transfers => "--max-transfers",
        }
    }

    pub fn from_name(name: &str) -> Option<Limit> {
        Limit::ALL.into_iter().find(|limit| limit.name() == name)
    }
}

/// A request refused because it would pass a limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LimitExceeded {
    pub limit: Limit,
    pub value: u64,
    /// What was refused, then the limit's value, flag and name.
    pub message: String,
}

impl LimitExceeded {
    /// `what` says what was refused; the message adds the limit.
    pub fn new(limit: Limit, value: impl TryInto<u64>, what: impl std::fmt::Display) -> Self {
        let value = value.try_into().unwrap_or(u64::MAX);
        LimitExceeded {
            limit,
            value,
            message: format!(
                "{what}; the limit is {value} ({}, {})",
                limit.flag(),
                limit.name()
            ),
        }
    }

    /// Read back from an error reply's `data`, if it names a known limit.
    pub fn from_rpc(error: &RpcError) -> Option<LimitExceeded> {
        let data = error.data.as_ref()?;
        let limit = Limit::from_name(data.get("limit")?.as_str()?)?;
        let value = data.get("value").and_then(Value::as_u64).unwrap_or(0);
        Some(LimitExceeded {
            limit,
            value,
            message: error.message.clone(),
        })
    }
}

impl From<LimitExceeded> for RpcError {
    fn from(err: LimitExceeded) -> RpcError {
        let mut error = RpcError::new(ErrorCode::InvalidRequest, err.to_string());
        error.data = Some(json!({"limit": err.limit.name(), "value": err.value}));
        error
    }
}

/// `n` bytes in the largest binary unit that divides it (`64 MiB`, `1000 bytes`).
pub fn show_bytes(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_an_error_reply() {
        let err = LimitExceeded::new(Limit::Processes, 3usize, "too many processes");
        let rpc = RpcError::from(err.clone());
        assert_eq!(rpc.code, -32600);
        assert_eq!(
            rpc.message,
            "too many processes; the limit is 3 (--max-processes, maxProcesses)"
        );
        let back = LimitExceeded::from_rpc(&rpc).unwrap();
        assert_eq!((back.limit, back.value), (Limit::Processes, 3));
        for limit in Limit::ALL {
            assert_eq!(Limit::from_name(limit.name()), Some(limit));
        }
        assert_eq!(show_bytes(64 << 20), "64 MiB");
        assert_eq!(show_bytes(1000), "1000 bytes");
    }
}
