//! The `execd serve` flags that bound `fs/watch` per session (watches,
//! inotify watches, queued changes) and set how long changes wait to be
//! coalesced: each sets one field of [`WatchLimits`]; a watch refused by
//! a limit names it, and a change dropped at the queue bound becomes an
//! `overflow` change naming `maxFsWatchEvents`.

use std::time::Duration;

use clap::Args;
use execd_server::fs_watches::WatchLimits;

fn defaults() -> WatchLimits {
    WatchLimits::default()
}

/// A count of at least 1.
fn positive() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..)
}

fn size(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[derive(Debug, Args)]
#[command(next_help_heading = "fs/watch limits")]
pub struct WatchLimitArgs {
    /// `fs/watch` watches of one session at once.
    #[arg(long, default_value_t = defaults().max_watches as u64, value_parser = positive())]
    max_fs_watches: u64,
    /// inotify watches one session's `fs/watch` watches hold: one per
    /// watched path, plus one per directory below it when recursive
    /// (counted when a watch is set, and as directories are created under
    /// it; past the bound a new directory is not watched and an `overflow`
    /// change names the limit).
    #[arg(long, default_value_t = defaults().max_watch_paths, value_parser = positive())]
    max_fs_watch_paths: u64,
    /// Changes of one session waiting to be sent as `fs/changed`, after
    /// coalescing; past it the batch ends with an `overflow` change.
    #[arg(long, default_value_t = defaults().max_events as u64, value_parser = positive())]
    max_fs_watch_events: u64,
    /// How long a batch of changes waits after its first change for more
    /// to coalesce, in milliseconds (0: sent at once).
    #[arg(long, default_value_t = 0)]
    fs_watch_coalesce_ms: u64,
}

impl WatchLimitArgs {
    /// The limits these flags set.
    pub fn limits(&self) -> WatchLimits {
        WatchLimits {
            max_watches: size(self.max_fs_watches),
            max_watch_paths: self.max_fs_watch_paths,
            max_events: size(self.max_fs_watch_events),
            coalesce: Duration::from_millis(self.fs_watch_coalesce_ms),
        }
    }
}
