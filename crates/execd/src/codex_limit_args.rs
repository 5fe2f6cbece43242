//! The `execd serve` flags that bound the codex-dialect methods (files held
//! open, missing-path watches, `http/request`s): each sets one field of
//! [`CodexLimits`], and each is named, with its value, in the error of a
//! request that would pass it.

use std::time::Duration;

use clap::Args;
use execd_server::codex_limits::CodexLimits;

fn defaults() -> CodexLimits {
    CodexLimits::default()
}

/// A count or size of at least 1.
fn positive() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..)
}

fn size(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Codex dialect limits")]
pub struct CodexLimitArgs {
    /// Files one connection holds open through `fs/open` at once.
    #[arg(long, default_value_t = defaults().max_open_files as u64, value_parser = positive())]
    max_open_files: u64,
    /// Largest block one `fs/readBlock` returns, in bytes.
    #[arg(long, default_value_t = defaults().max_read_block, value_parser = positive())]
    max_read_block_bytes: u64,
    /// `fs/watchMissing` watches of one connection at once.
    #[arg(long, default_value_t = defaults().max_watches as u64, value_parser = positive())]
    max_watches: u64,
    /// Paths in one `fs/watchMissing` watch.
    #[arg(long, default_value_t = defaults().max_watch_paths as u64, value_parser = positive())]
    max_watch_paths: u64,
    /// Entries one `fs/walk` lists at most (larger asks are cut to it).
    #[arg(long, default_value_t = defaults().max_walk_entries, value_parser = positive())]
    max_walk_entries: u64,
    /// `http/request`s of one connection running at once.
    #[arg(long, default_value_t = defaults().max_http_requests as u64, value_parser = positive())]
    max_http_requests: u64,
    /// Largest response body one `http/request` passes on, in bytes.
    #[arg(long, default_value_t = defaults().max_http_body_bytes, value_parser = positive())]
    max_http_body_bytes: u64,
    /// Longest an `http/request` may take, body included, in seconds.
    #[arg(long, default_value_t = defaults().max_http_duration.as_secs(), value_parser = positive())]
    max_http_seconds: u64,
}

impl CodexLimitArgs {
    /// The limits these flags set; the others keep their defaults.
    pub fn limits(&self) -> CodexLimits {
        CodexLimits {
            max_open_files: size(self.max_open_files),
            max_read_block: self.max_read_block_bytes,
            max_watches: size(self.max_watches),
            max_watch_paths: size(self.max_watch_paths),
            max_walk_entries: self.max_walk_entries,
            max_http_requests: size(self.max_http_requests),
            max_http_body_bytes: self.max_http_body_bytes,
            max_http_duration: Duration::from_secs(self.max_http_seconds),
            ..defaults()
        }
    }
}
