//! Descriptors `execd serve` inherited from whoever started it (a shell's,
//! a CI runner's, a make jobserver's) are made close-on-exec at start, so
//! the programs it starts get their stdin, stdout and stderr and nothing of
//! the server's parent. (Everything the server opens itself is
//! close-on-exec already.)

use std::os::fd::{BorrowedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

/// Mark every open descriptor from 3 up close-on-exec. Call it before
/// anything is started, and before anything opens descriptors of its own
/// that must outlive an exec.
pub fn close_on_exec() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<RawFd> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // FD_CLOEXEC is the only descriptor flag: set, not merged.
        // SAFETY: borrowed only for the fcntl; a descriptor closed since
        // the listing (the listing's own) fails with EBADF, ignored.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let _ = fcntl(borrowed, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
    }
}
