//! Our side of the wrapper protocol for one tree: receive header datagrams
//! on the tree's socket (anything malformed is dropped, and serving goes
//! on), read each request from its stream within a size and time bound,
//! decide it with the tree's policy, and answer: run (an approval the
//! kernel guard will honour once, for exactly that exec), deny, or run the
//! command ourselves outside the sandbox and send its exit status.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::sync::Semaphore;
use tracing::debug;

use crate::decision::{executable, missing_errno, Outcome, PendingExec};
use crate::escalation::{parse_body, FD_VARIABLE, HEADER, MAX_REQUEST_BYTES};
use crate::tree::{Escalated, TreeGuard};

/// How long a request may take to arrive once its header has.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests of one tree being read or decided at once; more are dropped
/// (each holds four of our descriptors).
const MAX_IN_FLIGHT: usize = 64;

/// A header's descriptors: the asker's stdio and its end of the pair.
struct Header {
    stdio: [OwnedFd; 3],
    stream: OwnedFd,
}

/// Serve the wrapper's requests of `guard`'s tree on `socket` until every
/// process holding the socket's other end is gone.
pub fn serve(guard: TreeGuard, socket: OwnedFd) -> io::Result<()> {
    let runtime = guard.runtime.clone();
    let _entered = runtime.enter();
    // Requests are received with MSG_DONTWAIT, so the socket itself may block.
    // SAFETY: the `OwnedFd` is open and owned by the `AsyncFd` for its whole life.
    let socket = unsafe { AsyncFd::register(socket) }?;
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    runtime.spawn(async move {
        loop {
            let received = async {
                loop {
                    let mut ready = socket.readable().await?;
                    match ready.try_io(|fd| receive(fd.get_ref())) {
                        Ok(result) => return result,
                        Err(_would_block) => continue,
                    }
                }
            }
            .await;
            match received {
                Ok(Received::Header(header)) => {
                    let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                        debug!("too many escalation requests in flight; dropping one");
                        continue;
                    };
                    let guard = guard.clone();
                    tokio::spawn(async move {
                        handle(&guard, header).await;
                        drop(permit);
                    });
                }
                Ok(Received::Garbage(why)) => {
                    debug!(%why, "ignoring a malformed escalation message")
                }
                Ok(Received::Closed) => return,
                Err(err) => {
                    debug!(%err, "escalation socket failed");
                    return;
                }
            }
        }
    });
    Ok(())
}

enum Received {
    Header(Header),
    Garbage(String),
    /// Every sender is gone.
    Closed,
}

/// One datagram from the tree's socket.
fn receive(socket: &OwnedFd) -> io::Result<Received> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buffer = [0u8; 64];
    let (bytes, truncated, fds) = {
        let mut iov = [io::IoSliceMut::new(&mut buffer)];
        let mut space = nix::cmsg_space!([RawFd; 4]);
        let message = recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        let mut fds = Vec::new();
        for control in message.cmsgs().map_err(io::Error::from)? {
            if let ControlMessageOwned::ScmRights(received) = control {
                // SAFETY: SCM_RIGHTS just gave us these descriptors.
                fds.extend(
                    received
                        .into_iter()
                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                );
            }
        }
        let truncated = message
            .flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC);
        (message.bytes, truncated, fds)
    };
    if bytes == 0 && fds.is_empty() {
        // End of file, or an empty datagram: only a hang-up ends serving.
        return Ok(if hung_up(socket) {
            Received::Closed
        } else {
            Received::Garbage("empty message".into())
        });
    }
    if truncated || &buffer[..bytes] != HEADER {
        return Ok(Received::Garbage(format!(
            "{bytes} bytes{}",
            if truncated { " (truncated)" } else { "" }
        )));
    }
    let mut fds = fds.into_iter();
    match (fds.next(), fds.next(), fds.next(), fds.next(), fds.next()) {
        (Some(stdin), Some(stdout), Some(stderr), Some(stream), None) => {
            Ok(Received::Header(Header {
                stdio: [stdin, stdout, stderr],
                stream,
            }))
        }
        _ => Ok(Received::Garbage("expected four descriptors".into())),
    }
}

/// Whether every process holding the other end has closed it.
fn hung_up(socket: &OwnedFd) -> bool {
    let mut poll = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready > 0 && poll.revents & libc::POLLHUP != 0
}

/// The pid of the process that created the pair (kernel-provided).
fn asker(stream: &OwnedFd) -> io::Result<u32> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let credentials = getsockopt(stream, PeerCredentials).map_err(io::Error::from)?;
    u32::try_from(credentials.pid()).map_err(|_| io::Error::other("no peer pid"))
}

async fn handle(guard: &TreeGuard, header: Header) {
    let Header { stdio, stream } = header;
    let pid = match asker(&stream) {
        Ok(pid) => pid,
        Err(err) => return debug!(%err, "escalation request without a peer"),
    };
    let stream = StdUnixStream::from(stream);
    let stream = stream
        .set_nonblocking(true)
        .and_then(|()| UnixStream::from_std(stream));
    let mut stream = match stream {
        Ok(stream) => stream,
        Err(err) => return debug!(%err, "escalation stream unusable"),
    };
    let read = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await;
    let (kind, value) = match read {
        Err(_elapsed) => return debug!(pid, "escalation request did not arrive in time"),
        Ok(Err(Unread::Gone(err))) => return debug!(pid, %err, "escalation request cut short"),
        Ok(Err(Unread::TooLarge(len))) => {
            debug!(pid, len, "escalation request too large; denied");
            (b'D', libc::E2BIG)
        }
        Ok(Ok(bytes)) => match parse_body(&bytes) {
            Ok(body) => decide_request(guard, pid, body, stdio).await,
            Err(why) => {
                debug!(pid, %why, "malformed escalation request; denied");
                (b'D', libc::EINVAL)
            }
        },
    };
    let mut reply = [kind, 0, 0, 0, 0];
    reply[1..].copy_from_slice(&value.to_le_bytes());
    if let Err(err) = stream.write_all(&reply).await {
        debug!(pid, %err, "the exec's caller is gone");
    }
}

/// Why a request could not be read.
enum Unread {
    Gone(io::Error),
    TooLarge(u64),
}

/// The length-prefixed request body, within [`MAX_REQUEST_BYTES`].
async fn read_request(stream: &mut UnixStream) -> Result<Vec<u8>, Unread> {
    let mut len = [0u8; 8];
    stream.read_exact(&mut len).await.map_err(Unread::Gone)?;
    let len = u64::from_le_bytes(len);
    if len > MAX_REQUEST_BYTES {
        return Err(Unread::TooLarge(len));
    }
    // Bounded just above: at most MAX_REQUEST_BYTES.
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body).await.map_err(Unread::Gone)?;
    Ok(body)
}

/// Decide one request of process `pid` and carry it out; the answer.
async fn decide_request(
    guard: &TreeGuard,
    pid: u32,
    body: crate::escalation::Body,
    stdio: [OwnedFd; 3],
) -> (u8, i32) {
    // Where the asker really is, not where it says it is.
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))
        .unwrap_or_else(|_| Path::new(&body.cwd).to_path_buf());
    // A probe for a program that is not there (e.g. a PATH search): fail
    // it as the kernel would, with nothing to decide or report.
    let file = match executable(&body.path, &cwd) {
        Ok(file) => file,
        Err(err) => return (b'D', missing_errno(&err)),
    };
    let exec = PendingExec {
        pid,
        path: file.to_string_lossy().into_owned(),
        argv: body.argv.clone(),
        cwd: cwd.to_string_lossy().into_owned(),
    };
    match guard.decide_and_report(exec, true).await {
        Outcome::Run => {
            guard
                .approved
                .grant(pid, &file.to_string_lossy(), &body.argv);
            (b'R', 0)
        }
        Outcome::Deny => (b'D', libc::EACCES),
        Outcome::Escalate => escalate(&file, &body, &cwd, stdio, &guard.escalated).await,
    }
}

/// Run exactly the decided file with the decided argv, outside the sandbox,
/// on the caller's stdio, in a process group of its own registered in
/// `escalated`; its exit status as the answer.
async fn escalate(
    file: &Path,
    body: &crate::escalation::Body,
    cwd: &Path,
    stdio: [OwnedFd; 3],
    escalated: &Escalated,
) -> (u8, i32) {
    use std::os::unix::process::ExitStatusExt;
    let Some((arg0, args)) = body.argv.split_first() else {
        return (b'D', libc::EINVAL);
    };
    let [stdin, stdout, stderr] = stdio;
    let env = body
        .env
        .iter()
        .filter(|(key, _)| key != FD_VARIABLE && key != "LD_PRELOAD");
    let spawned = tokio::process::Command::new(file)
        .arg0(arg0)
        .args(args)
        .env_clear()
        .envs(env.cloned())
        .current_dir(cwd)
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            debug!(%err, file = %file.display(), "escalated command did not start");
            return (b'D', err.raw_os_error().unwrap_or(libc::ENOENT));
        }
    };
    let group = child.id().and_then(|pid| i32::try_from(pid).ok());
    if let (Some(group), Ok(mut groups)) = (group, escalated.lock()) {
        groups.insert(group);
    }
    let status = child.wait().await;
    if let (Some(group), Ok(mut groups)) = (group, escalated.lock()) {
        groups.remove(&group);
    }
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => (b'X', code),
            (None, Some(signal)) => (b'S', signal),
            (None, None) => (b'X', 255),
        },
        Err(err) => {
            debug!(%err, file = %file.display(), "escalated command was lost");
            (b'D', err.raw_os_error().unwrap_or(libc::ENOENT))
        }
    }
}
