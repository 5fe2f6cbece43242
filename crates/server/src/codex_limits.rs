//! [`CodexLimits`]: the bounds on what a client of the codex dialect can
//! make the server hold or do per connection: open file handles and their
//! block size, missing-path watches, how far one `fs/walk` goes, and the
//! `http/request`s it makes (how many at once, how long, how large a body).

use std::time::Duration;

/// Per-connection bounds of the codex-dialect methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodexLimits {
    /// Handles open at once through `fs/open` (default 64).
    pub max_open_files: usize,
    /// Largest `len` of one `fs/readBlock` (default 1 MiB, codex's own).
    pub max_read_block: u64,
    /// `fs/watchMissing` watches at once (default 64).
    pub max_watches: usize,
    /// Paths in one watch (default 256).
    pub max_watch_paths: usize,
    /// How often watched paths are looked at (default 250 ms).
    pub watch_interval: Duration,
    /// Ceiling on a walk's `maxEntries` (default 100,000); larger asks are
    /// cut to it (and the walk reports `truncated` if it gets there).
    pub max_walk_entries: u64,
    /// Ceiling on a walk's `maxDirectories` (default 10,000).
    pub max_walk_directories: u64,
    /// Ceiling on a walk's `maxDepth` (default 64).
    pub max_walk_depth: u32,
    /// `http/request`s of one connection running at once (default 8).
    pub max_http_requests: usize,
    /// Largest response body one `http/request` passes on, buffered or
    /// streamed (default 16 MiB).
    pub max_http_body_bytes: u64,
    /// Longest wait for an `http/request`'s TCP (and TLS) connection
    /// (default 10 s).
    pub http_connect_timeout: Duration,
    /// Longest an `http/request` may take, body included (default 5 min);
    /// a request's own `timeoutMs` is cut to it.
    pub max_http_duration: Duration,
}

impl Default for CodexLimits {
    fn default() -> Self {
        CodexLimits {
            max_open_files: 64,
            max_read_block: 1024 * 1024,
            max_watches: 64,
            max_watch_paths: 256,
            watch_interval: Duration::from_millis(250),
            max_walk_entries: 100_000,
            max_walk_directories: 10_000,
            max_walk_depth: 64,
            max_http_requests: 8,
            max_http_body_bytes: 16 * 1024 * 1024,
            http_connect_timeout: Duration::from_secs(10),
            max_http_duration: Duration::from_secs(300),
        }
    }
}
