//! systemd socket activation (as `sd_listen_fds`): a `.socket` unit starts
//! `execd serve` with its listening socket already open as descriptor 3,
//! `LISTEN_FDS=1` and `LISTEN_PID` naming this process. The socket is taken
//! before the supervisor forks (`LISTEN_PID` is the supervisor's pid; the
//! server, its forked child, serves the copy it inherits). Once taken, the
//! variables are removed, so the programs the server starts do not take
//! the socket for theirs (nor do they get it: `inherited_fds` makes every
//! inherited descriptor close-on-exec).

use std::net::TcpListener;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{getsockopt, sockopt, SockType};

/// The first descriptor systemd passes.
const FIRST_FD: RawFd = 3;

const VARIABLES: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("LISTEN_FDS={0:?}: execd serve takes exactly one socket (one ListenStream= in the .socket unit)")]
    Count(String),
    #[error("the socket systemd passed (descriptor 3) {0}")]
    NotListening(&'static str),
    #[error("the socket systemd passed (descriptor 3): {0}")]
    Os(#[from] nix::Error),
    #[error("the socket systemd passed (descriptor 3) is not a TCP socket: {0}")]
    NotTcp(std::io::Error),
}

/// The listening socket systemd passed to this process, if it passed one.
/// Call it before any thread exists (it edits the environment).
pub fn take() -> Result<Option<TcpListener>, ActivationError> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if !ours {
        return Ok(None);
    }
    let count = std::env::var("LISTEN_FDS").unwrap_or_default();
    for variable in VARIABLES {
        std::env::remove_var(variable);
    }
    if count.trim() != "1" {
        return Err(ActivationError::Count(count));
    }
    // SAFETY: descriptor 3 stays open for the whole process (systemd's
    // contract); borrowed only for these checks.
    let fd = unsafe { BorrowedFd::borrow_raw(FIRST_FD) };
    if getsockopt(&fd, sockopt::SockType)? != SockType::Stream {
        return Err(ActivationError::NotListening("is not a stream socket"));
    }
    if !getsockopt(&fd, sockopt::AcceptConn)? {
        return Err(ActivationError::NotListening("is not listening"));
    }
    // SAFETY: a listening stream socket, handed to this process to own;
    // nothing else in it uses descriptor 3.
    let owned = unsafe { OwnedFd::from_raw_fd(FIRST_FD) };
    let listener = TcpListener::from(owned);
    // A Unix-domain stream socket has no IP address.
    listener.local_addr().map_err(ActivationError::NotTcp)?;
    Ok(Some(listener))
}
