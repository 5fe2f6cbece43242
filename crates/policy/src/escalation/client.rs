//! The asking side of the wrapper protocol, in Rust (`execd exec-wrapper`;
//! the `LD_PRELOAD` shim speaks the same in C): send the header with our
//! stdio and one end of a fresh pair, write the request on the other end,
//! read the answer.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use crate::escalation::{encode_body, FD_VARIABLE, HEADER};

/// execd's answer to a wrapper request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Exec the program (the kernel guard will let exactly that exec through).
    Run,
    /// Do not: fail with this errno.
    Deny(i32),
    /// execd ran it outside the sandbox; it exited with this code.
    Exited(i32),
    /// execd ran it outside the sandbox; this signal ended it.
    Signaled(i32),
}

/// The socket named by [`FD_VARIABLE`] in this process's environment.
pub fn socket_from_env() -> Option<RawFd> {
    let fd: RawFd = std::env::var(FD_VARIABLE).ok()?.parse().ok()?;
    // SAFETY: F_GETFD only inspects the descriptor.
    (unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0).then_some(fd)
}

/// Closed stdio descriptors stood in for by `/dev/null` while we ask, so
/// that neither the pair nor anything else takes their numbers (and an
/// escalated command gets `/dev/null` there). Closed again on drop.
struct StdioStandIns {
    _opened: Vec<OwnedFd>,
}

impl StdioStandIns {
    fn fill() -> io::Result<StdioStandIns> {
        let mut opened = Vec::new();
        for fd in 0..3 {
            // SAFETY: F_GETFD only inspects the descriptor.
            if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
                continue;
            }
            // Every lower descriptor is open, so this one lands on `fd`.
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")?;
            opened.push(OwnedFd::from(null));
        }
        Ok(StdioStandIns { _opened: opened })
    }
}

/// Ask execd about running `path` with `argv` on the tree's `socket`. Our
/// stdin, stdout and stderr go along, for an escalated run.
pub fn request(
    socket: RawFd,
    path: &str,
    argv: &[String],
    cwd: &str,
    env: &[(String, String)],
) -> io::Result<Reply> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let stand_ins = StdioStandIns::fill()?;
    let (mut ours, theirs) = UnixStream::pair()?;
    let fds = [0, 1, 2, theirs.as_raw_fd()];
    let iov = [io::IoSlice::new(HEADER)];
    sendmsg::<()>(
        socket,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(io::Error::from)?;
    drop(theirs);
    let body = encode_body(path, cwd, argv, env);
    ours.write_all(&(body.len() as u64).to_le_bytes())?;
    // execd may refuse a request before reading it all; its answer says why.
    let _ = ours.write_all(&body);
    let mut reply = [0u8; 5];
    ours.read_exact(&mut reply)
        .map_err(|err| io::Error::new(err.kind(), format!("execd did not answer: {err}")))?;
    drop(stand_ins);
    let value = i32::from_le_bytes([reply[1], reply[2], reply[3], reply[4]]);
    match reply[0] {
        b'R' => Ok(Reply::Run),
        b'D' => Ok(Reply::Deny(value)),
        b'X' => Ok(Reply::Exited(value)),
        b'S' => Ok(Reply::Signaled(value)),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unknown answer {other:?}"),
        )),
    }
}
