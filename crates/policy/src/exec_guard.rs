//! Holding every exec of a process tree until it is decided.
//!
//! A seccomp filter returning `SECCOMP_RET_USER_NOTIF` for `execve` and
//! `execveat` is installed in the child just before it execs (so it covers
//! the program itself and every descendant, whatever starts them). The
//! filter's listener comes back to us over a socketpair. One thread per tree
//! receives each held exec, reads its path and argv from the process's
//! memory, asks the policy (and, for `ask`, the owner's [`ExecGate`]),
//! reports the decision, and lets the exec continue or fails it with EACCES.
//!
//! Execs through another syscall ABI (i386 `int 0x80`, x32) are refused
//! outright, since the filter could not hold them for a decision.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use tracing::debug;

use execd_protocol::policy::{DecidedBy, DecisionParams, Verdict};

use crate::decision::{decide, Outcome, PendingExec};
use crate::fdpass::{receive_fd, send_fd};
use crate::tree::TreeGuard;

/// Bounds on what is read from a process's memory.
const MAX_ARGS: usize = 4096;
const MAX_ARG_BYTES: usize = 128 * 1024;

#[cfg(target_arch = "x86_64")]
mod arch {
    pub const AUDIT_ARCH: u32 = 0xC000_003E;
    pub const EXECVE: i32 = 59;
    pub const EXECVEAT: i32 = 322;
    /// x32 syscalls carry this bit.
    pub const X32_BIT: u32 = 0x4000_0000;
    pub const COMPAT_EXECVE: u32 = 11;
    pub const COMPAT_EXECVEAT: u32 = 358;
}

#[cfg(target_arch = "aarch64")]
mod arch {
    pub const AUDIT_ARCH: u32 = 0xC000_00B7;
    pub const EXECVE: i32 = 221;
    pub const EXECVEAT: i32 = 281;
    /// No x32 here: no syscall number reaches this.
    pub const X32_BIT: u32 = 0xFFFF_FFFF;
    pub const COMPAT_EXECVE: u32 = 11;
    pub const COMPAT_EXECVEAT: u32 = 387;
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_ERRNO_EACCES: u32 = 0x0005_0000 | libc::EACCES as u32;
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;

const fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Jumps are relative to the next instruction; the layout is fixed below.
static FILTER: [libc::sock_filter; 12] = [
    /* 0 */ op(BPF_LD_W_ABS, 0, 0, OFFSET_ARCH),
    /* 1 */ op(BPF_JEQ_K, 0, 4, arch::AUDIT_ARCH), // not native → 6
    /* 2 */ op(BPF_LD_W_ABS, 0, 0, OFFSET_NR),
    /* 3 */ op(BPF_JGE_K, 7, 0, arch::X32_BIT), // x32 → 11
    /* 4 */ op(BPF_JEQ_K, 5, 0, arch::EXECVE as u32), // → 10
    /* 5 */ op(BPF_JEQ_K, 4, 3, arch::EXECVEAT as u32), // → 10, else → 9
    /* 6 */ op(BPF_LD_W_ABS, 0, 0, OFFSET_NR),
    /* 7 */ op(BPF_JEQ_K, 3, 0, arch::COMPAT_EXECVE), // → 11
    /* 8 */ op(BPF_JEQ_K, 2, 0, arch::COMPAT_EXECVEAT), // → 11, else → 9
    /* 9 */ op(BPF_RET_K, 0, 0, RET_ALLOW),
    /* 10 */ op(BPF_RET_K, 0, 0, RET_USER_NOTIF),
    /* 11 */ op(BPF_RET_K, 0, 0, RET_ERRNO_EACCES),
];

/// Install the filter and send its listener to the parent over `socket`.
///
/// # Safety
/// Runs in the forked child before exec: only raw, async-signal-safe
/// syscalls, no allocation. `socket` must be a connected unix socket.
pub unsafe fn install_in_child(socket: RawFd) -> io::Result<()> {
    // Without CAP_SYS_ADMIN a filter needs no_new_privs.
    if libc::geteuid() != 0 && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
        return Err(io::Error::last_os_error());
    }
    let program = libc::sock_fprog {
        len: FILTER.len() as u16,
        filter: FILTER.as_ptr().cast_mut(),
    };
    let listener = libc::syscall(
        libc::SYS_seccomp,
        libc::SECCOMP_SET_MODE_FILTER,
        libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
        &program as *const libc::sock_fprog,
    );
    if listener < 0 {
        return Err(io::Error::last_os_error());
    }
    let listener = listener as RawFd;
    let sent = send_fd(socket, listener);
    libc::close(listener);
    sent
}

/// Start the thread that decides for `guard`'s tree, receiving the filter's
/// listener over `socket`; it ends when no process uses the filter any more
/// (or the child died before sending it).
pub fn start(guard: TreeGuard, socket: OwnedFd) -> io::Result<()> {
    std::thread::Builder::new()
        .name(format!("exec-guard-{}", guard.process_id))
        .spawn(move || {
            if let Err(err) = KernelGuard(guard).run(socket) {
                debug!(%err, "exec guard stopped");
            }
        })
        .map(drop)
}

/// The thread deciding one tree's held execs.
struct KernelGuard(TreeGuard);

impl KernelGuard {
    fn run(self, socket: OwnedFd) -> io::Result<()> {
        let Some(listener) = receive_fd(&socket)? else {
            return Ok(());
        };
        drop(socket);
        loop {
            let mut poll = libc::pollfd {
                fd: listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut poll, 1, -1) } < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(err);
            }
            if poll.revents & libc::POLLIN == 0 {
                // POLLHUP: every process under the filter has exited.
                return Ok(());
            }
            // SAFETY: the kernel wants a zeroed `seccomp_notif` to fill.
            let mut request: libc::seccomp_notif = unsafe { std::mem::zeroed() };
            // SAFETY: RECV fills the struct we pass.
            if unsafe {
                libc::ioctl(
                    listener.as_raw_fd(),
                    libc::SECCOMP_IOCTL_NOTIF_RECV,
                    &mut request,
                )
            } < 0
            {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    // The target died before we received it, or a signal.
                    Some(libc::ENOENT) | Some(libc::EINTR) => continue,
                    _ => return Err(err),
                }
            }
            self.decide(&listener, &request);
        }
    }

    fn decide(&self, listener: &OwnedFd, request: &libc::seccomp_notif) {
        let exec = inspect(request);
        // The memory we read belongs to the exec only if it is still pending.
        if !still_pending(listener, request.id) {
            return;
        }
        let allow = match exec {
            // A probe for a program that is not there (e.g. a PATH search):
            // failed as the kernel would, with nothing to decide or report.
            // Refused rather than continued, so nothing can appear meanwhile.
            Ok(exec) if !Path::new(&exec.path).exists() => {
                respond_error(listener, request.id, libc::ENOENT);
                return;
            }
            // Decided (and reported) when the wrapper asked: let it through.
            Ok(exec) if self.pre_approved(&exec) => true,
            Ok(exec) => {
                let (policy, gate, id) = (
                    self.0.policy.clone(),
                    self.0.gate.clone(),
                    self.0.process_id.clone(),
                );
                // Reported before the exec goes on, so the transcript
                // precedes its output.
                let outcome = self.on_runtime(async move {
                    let (outcome, report) = decide(&policy, gate.as_ref(), &id, exec, false).await;
                    gate.report(report).await;
                    outcome
                });
                outcome == Some(Outcome::Run)
            }
            Err(err) => {
                let pid = request.pid;
                let report = DecisionParams {
                    process_id: self.0.process_id.clone(),
                    pid,
                    path: String::new(),
                    argv: Vec::new(),
                    decision: Verdict::Deny,
                    decided_by: DecidedBy::Error,
                    rule: None,
                    reason: Some(format!("cannot read the exec of pid {pid}: {err}")),
                };
                let gate = self.0.gate.clone();
                self.on_runtime(async move { gate.report(report).await });
                false
            }
        };
        respond(listener, request.id, allow);
    }

    /// Run `work` as a task on the runtime and wait for it. This thread
    /// drives no timers, so a runtime shutting down just cancels the task
    /// (`None`), which the caller treats as deny.
    fn on_runtime<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Option<T> {
        self.0.runtime.block_on(self.0.runtime.spawn(work)).ok()
    }

    fn pre_approved(&self, exec: &PendingExec) -> bool {
        self.0
            .approved
            .lock()
            .map(|mut approved| approved.remove(&(exec.pid, exec.path.clone())))
            .unwrap_or(false)
    }
}

/// Whether the held exec `id` is still waiting (its process alive, its
/// syscall not interrupted).
fn still_pending(listener: &OwnedFd, id: u64) -> bool {
    let mut id = id;
    // SAFETY: ID_VALID reads one u64.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
            &mut id,
        ) == 0
    }
}

/// Let a held exec continue, or fail it with EACCES.
fn respond(listener: &OwnedFd, id: u64, allow: bool) {
    if allow {
        send_response(
            listener,
            id,
            0,
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        );
    } else {
        respond_error(listener, id, libc::EACCES);
    }
}

/// Fail a held exec with `errno`.
fn respond_error(listener: &OwnedFd, id: u64, errno: i32) {
    send_response(listener, id, -errno, 0);
}

fn send_response(listener: &OwnedFd, id: u64, error: i32, flags: u32) {
    let response = libc::seccomp_notif_resp {
        id,
        val: 0,
        error,
        flags,
    };
    // SAFETY: SEND reads the response struct.
    let sent = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &response,
        )
    };
    if sent < 0 {
        debug!(err = %io::Error::last_os_error(), "answering a held exec failed (target gone?)");
    }
}

/// Read a held exec's path, argv and cwd from the process.
fn inspect(request: &libc::seccomp_notif) -> io::Result<PendingExec> {
    let pid = request.pid;
    let args = request.data.args;
    let (dirfd, path_at, argv_at) = if request.data.nr == arch::EXECVE {
        (libc::AT_FDCWD, args[0], args[1])
    } else {
        (args[0] as i32, args[1], args[2])
    };
    let memory = File::open(format!("/proc/{pid}/mem"))?;
    let path = read_string(&memory, path_at)?;
    let argv = read_argv(&memory, argv_at)?;
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd"))?;
    let resolved = if path.starts_with('/') {
        path
    } else if dirfd == libc::AT_FDCWD {
        cwd.join(&path).to_string_lossy().into_owned()
    } else {
        let base = std::fs::read_link(format!("/proc/{pid}/fd/{dirfd}"))?;
        base.join(&path).to_string_lossy().into_owned()
    };
    Ok(PendingExec {
        pid,
        path: resolved,
        argv,
        cwd: cwd.to_string_lossy().into_owned(),
    })
}

/// A NUL-terminated string at `address`, read page by page.
fn read_string(memory: &File, mut address: u64) -> io::Result<String> {
    const PAGE: u64 = 4096;
    let mut bytes = Vec::new();
    loop {
        let room = (PAGE - address % PAGE) as usize;
        let mut piece = vec![0u8; room];
        let n = memory.read_at(&mut piece, address)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "string runs off mapped memory",
            ));
        }
        if let Some(end) = piece[..n].iter().position(|b| *b == 0) {
            bytes.extend_from_slice(&piece[..end]);
            return Ok(String::from_utf8_lossy(&bytes).into_owned());
        }
        bytes.extend_from_slice(&piece[..n]);
        if bytes.len() > MAX_ARG_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "argument too long",
            ));
        }
        address += n as u64;
    }
}

/// The NULL-terminated array of string pointers at `address`.
fn read_argv(memory: &File, address: u64) -> io::Result<Vec<String>> {
    let mut argv = Vec::new();
    if address == 0 {
        return Ok(argv);
    }
    for index in 0..MAX_ARGS as u64 {
        let mut pointer = [0u8; 8];
        memory.read_exact_at(&mut pointer, address + index * 8)?;
        let pointer = u64::from_ne_bytes(pointer);
        if pointer == 0 {
            return Ok(argv);
        }
        argv.push(read_string(memory, pointer)?);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "too many arguments",
    ))
}

/// Whether this build can hold execs (x86_64 and aarch64 Linux).
pub fn supported() -> bool {
    Path::new("/proc/self/mem").exists()
}
