//! The wrapper protocol: processes under an exec policy get
//! `libexecd_preload.so` (`LD_PRELOAD`) and a socket (`EXECD_ESCALATION_FD`).
//! Before a dynamically linked program execs, the shim sends us the path,
//! argv, cwd, environment and its stdin/stdout/stderr (`SCM_RIGHTS`), plus a
//! socket for our answer:
//!
//! - run: the real `execve` proceeds; the kernel guard lets that exec through
//!   without asking again (it was decided here);
//! - deny: the `execve` fails with EACCES;
//! - escalate: we run the command ourselves, outside the sandbox and the
//!   policy, on the caller's own stdio, and send back its exit status, with
//!   which the caller exits, as if it had exec'd the program.
//!
//! Static binaries and programs that exec without libc's `execve` skip the
//! shim; the kernel guard still decides for them, but cannot escalate.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::unix::AsyncFd;
use tracing::debug;

use crate::decision::{decide, Outcome, PendingExec};
use crate::fdpass::channel;
use crate::tree::{Escalated, TreeGuard};

/// The descriptor number the socket gets in the child.
pub const CHILD_FD: RawFd = 1023;
/// Names the socket in the child's environment.
pub const FD_VARIABLE: &str = "EXECD_ESCALATION_FD";
/// The shim's file name, looked for next to the running executable.
pub const LIBRARY: &str = "libexecd_preload.so";

/// Where the shim is: `$EXECD_PRELOAD_LIB`, else next to the running
/// executable (an installed execd), else where the build put it.
pub fn preload_library() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("EXECD_PRELOAD_LIB") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    let beside_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(LIBRARY)));
    let built = option_env!("EXECD_PRELOAD_BUILT").map(PathBuf::from);
    beside_exe
        .into_iter()
        .chain(built)
        .find(|path| path.is_file())
}

/// Give the child its socket at [`CHILD_FD`].
///
/// # Safety
/// In the forked child before exec: one raw syscall.
pub unsafe fn install_in_child(socket: RawFd) -> io::Result<()> {
    if libc::dup2(socket, CHILD_FD) < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Serves one tree's wrapper requests (decisions shared with the kernel guard).
#[derive(Clone)]
struct Wrapper(TreeGuard);

struct Request {
    pid: u32,
    path: String,
    cwd: String,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    stdio: [OwnedFd; 3],
    reply: OwnedFd,
}

/// Serve the wrapper's requests of `guard`'s tree on `socket` until every
/// process holding the socket's other end is gone.
pub fn serve(guard: TreeGuard, socket: OwnedFd) -> io::Result<()> {
    let runtime = guard.runtime.clone();
    let _entered = runtime.enter();
    // Requests are received with MSG_DONTWAIT, so the socket itself may block.
    // SAFETY: the `OwnedFd` is open and owned by the `AsyncFd` for its whole life.
    let socket = unsafe { AsyncFd::register(socket) }?;
    let wrapper = Wrapper(guard);
    runtime.spawn(async move {
        loop {
            let received = async {
                loop {
                    let mut guard = socket.readable().await?;
                    match guard.try_io(|fd| receive(fd.get_ref())) {
                        Ok(result) => return result,
                        Err(_would_block) => continue,
                    }
                }
            }
            .await;
            match received {
                Ok(Some(request)) => {
                    let wrapper = wrapper.clone();
                    tokio::spawn(async move { wrapper.handle(request).await });
                }
                Ok(None) => return,
                Err(err) => {
                    debug!(%err, "escalation socket failed");
                    return;
                }
            }
        }
    });
    Ok(())
}

impl Wrapper {
    async fn handle(self, request: Request) {
        // A probe for a program that is not there (e.g. a PATH search): fail
        // it as the kernel would, with nothing to decide or report.
        if !std::path::Path::new(&request.path).exists() {
            reply(&request, b'D', libc::ENOENT);
            return;
        }
        let exec = PendingExec {
            pid: request.pid,
            path: request.path.clone(),
            argv: request.argv.clone(),
            cwd: request.cwd.clone(),
        };
        let (outcome, report) = decide(
            &self.0.policy,
            self.0.gate.as_ref(),
            &self.0.process_id,
            exec,
            true,
        )
        .await;
        self.0.gate.report(report).await;
        let (kind, value) = match outcome {
            Outcome::Run => {
                if let Ok(mut approved) = self.0.approved.lock() {
                    approved.insert((request.pid, request.path.clone()));
                }
                (b'R', 0)
            }
            Outcome::Deny => (b'D', libc::EACCES),
            Outcome::Escalate => escalate(&request, &self.0.escalated).await,
        };
        reply(&request, kind, value);
    }
}

/// Answer the wrapper: a kind byte and a little-endian value.
fn reply(request: &Request, kind: u8, value: i32) {
    let mut message = [kind, 0, 0, 0, 0];
    message[1..].copy_from_slice(&value.to_le_bytes());
    // SAFETY: sending 5 bytes from a valid buffer on a socket we own.
    let sent = unsafe {
        libc::send(
            request.reply.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if sent < 0 {
        debug!(err = %io::Error::last_os_error(), "the exec's caller is gone");
    }
}

/// Run the request's command outside the sandbox on the caller's stdio, in
/// a process group of its own registered in `escalated`; its exit status as
/// the wrapper's answer.
async fn escalate(request: &Request, escalated: &Escalated) -> (u8, i32) {
    use std::os::unix::process::ExitStatusExt;
    let Some((arg0, args)) = request.argv.split_first() else {
        return (b'D', libc::EINVAL);
    };
    let stdio = |fd: &OwnedFd| fd.try_clone().map(Stdio::from);
    let (Ok(stdin), Ok(stdout), Ok(stderr)) = (
        stdio(&request.stdio[0]),
        stdio(&request.stdio[1]),
        stdio(&request.stdio[2]),
    ) else {
        return (b'D', libc::EMFILE);
    };
    let env = request
        .env
        .iter()
        .filter(|(key, _)| key != FD_VARIABLE && key != "LD_PRELOAD");
    let spawned = tokio::process::Command::new(&request.path)
        .arg0(arg0)
        .args(args)
        .env_clear()
        .envs(env.cloned())
        .current_dir(&request.cwd)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            debug!(%err, path = %request.path, "escalated command did not start");
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
            debug!(%err, path = %request.path, "escalated command did not start");
            (b'D', err.raw_os_error().unwrap_or(libc::ENOENT))
        }
    }
}

/// One request, or `None` when every sender is gone.
fn receive(socket: &OwnedFd) -> io::Result<Option<Request>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buffer = vec![0u8; 64 * 1024];
    let (bytes, fds) = {
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
        (message.bytes, fds)
    };
    if bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    parse(&buffer[..bytes], fds).map(Some)
}

fn parse(bytes: &[u8], fds: Vec<OwnedFd>) -> io::Result<Request> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("wrapper request: {what}"),
        )
    };
    let mut fields = bytes
        .split(|b| *b == 0)
        .map(|field| String::from_utf8_lossy(field).into_owned());
    let mut next = |what: &str| fields.next().ok_or_else(|| bad(what));
    if next("magic")? != "XQ1" {
        return Err(bad("unknown version"));
    }
    let pid: u32 = next("pid")?.parse().map_err(|_| bad("pid"))?;
    let path = next("path")?;
    let cwd = next("cwd")?;
    let argc: usize = next("argc")?.parse().map_err(|_| bad("argc"))?;
    let argv = (0..argc)
        .map(|_| next("argv"))
        .collect::<io::Result<Vec<_>>>()?;
    let envc: usize = next("envc")?.parse().map_err(|_| bad("envc"))?;
    let env = (0..envc)
        .map(|_| next("env"))
        .collect::<io::Result<Vec<_>>>()?
        .into_iter()
        .filter_map(|entry| {
            entry
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    let mut fds = fds.into_iter();
    let (Some(stdin), Some(stdout), Some(stderr), Some(reply)) =
        (fds.next(), fds.next(), fds.next(), fds.next())
    else {
        return Err(bad("expected four descriptors"));
    };
    let path = if path.starts_with('/') {
        path
    } else {
        PathBuf::from(&cwd)
            .join(&path)
            .to_string_lossy()
            .into_owned()
    };
    Ok(Request {
        pid,
        path,
        cwd,
        argv,
        env,
        stdio: [stdin, stdout, stderr],
        reply,
    })
}

/// execd's answer to a wrapper request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Exec the program (the kernel guard will let it through).
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

/// Ask execd about running `path` with `argv` (the client side of the
/// protocol, for `execd exec-wrapper`; the `LD_PRELOAD` shim speaks it too).
/// Our stdin, stdout and stderr go along, for an escalated run.
pub fn request(
    socket: RawFd,
    path: &str,
    argv: &[String],
    cwd: &str,
    env: &[(String, String)],
) -> io::Result<Reply> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let mut message = Vec::new();
    let mut field = |text: &str| {
        message.extend_from_slice(text.as_bytes());
        message.push(0);
    };
    field("XQ1");
    field(&std::process::id().to_string());
    field(path);
    field(cwd);
    field(&argv.len().to_string());
    argv.iter().for_each(|arg| field(arg));
    field(&env.len().to_string());
    env.iter()
        .for_each(|(key, value)| field(&format!("{key}={value}")));

    let (ours, theirs) = channel()?;
    let fds = [0, 1, 2, theirs.as_raw_fd()];
    let iov = [io::IoSlice::new(&message)];
    sendmsg::<()>(
        socket,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(io::Error::from)?;
    drop(theirs);
    let mut reply = [0u8; 5];
    let n = loop {
        // SAFETY: receiving into a valid 5-byte buffer.
        let n = unsafe { libc::recv(ours.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        break n;
    };
    if n != 5 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "execd did not answer",
        ));
    }
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
