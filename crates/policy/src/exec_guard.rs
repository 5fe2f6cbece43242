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
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tracing::debug;

use execd_protocol::policy::{DecidedBy, DecisionParams, Verdict};

use crate::decision::{executable, missing_errno, Outcome, PendingExec};
use crate::fdpass::{receive_fd, send_fd};
use crate::tree::TreeGuard;

/// Bounds on what is read from a process's memory: the kernel itself takes
/// at most 32 pages per string and a quarter of the stack limit (at most
/// 6 MiB) for argv and envp together, so these never refuse a real exec.
const MAX_ARGS: usize = 1 << 20;
const MAX_ARG_BYTES: usize = 128 * 1024;
const MAX_ARGV_BYTES: usize = 8 * 1024 * 1024;
/// Argument pointers read per `pread` of the argv array.
const POINTERS_PER_READ: usize = 512;

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
    let listener = install_filter()?;
    let sent = send_fd(socket, listener);
    libc::close(listener);
    sent
}

/// Install the filter in this process; its listener. Without
/// CAP_SYS_ADMIN (a non-root server, or root in a container without it)
/// the kernel wants `no_new_privs` first: set it then, and only then.
///
/// # Safety
/// Raw syscalls only; installs a filter on the calling thread.
unsafe fn install_filter() -> io::Result<RawFd> {
    let program = libc::sock_fprog {
        len: FILTER.len() as u16,
        filter: FILTER.as_ptr().cast_mut(),
    };
    let install = || {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            &program as *const libc::sock_fprog,
        )
    };
    let mut listener = install();
    if listener < 0 && *libc::__errno_location() == libc::EACCES {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        listener = install();
    }
    if listener < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(listener as RawFd)
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
            Err(Inspected::Missing(errno)) => {
                respond_error(listener, request.id, errno);
                return;
            }
            // Decided (and reported) before the fork, or when the wrapper
            // asked: let it through.
            Ok(exec)
                if self.0.approved.take_first(&exec.path, &exec.argv)
                    || self.0.approved.take(exec.pid, &exec.path, &exec.argv) =>
            {
                true
            }
            Ok(exec) => {
                let guard = self.0.clone();
                // Reported before the exec goes on, so the transcript
                // precedes its output.
                let outcome =
                    self.on_runtime(async move { guard.decide_and_report(exec, false).await });
                outcome == Some(Outcome::Run)
            }
            Err(Inspected::Unreadable { path, err }) => {
                let pid = request.pid;
                let report = DecisionParams {
                    process_id: self.0.process_id.clone(),
                    pid,
                    path: path.unwrap_or_default(),
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

/// Why a held exec could not be decided.
enum Inspected {
    /// Nothing executable is there (the errno the kernel would give).
    Missing(i32),
    /// Its memory or `/proc` entries could not be read (the path, if read).
    Unreadable {
        path: Option<String>,
        err: io::Error,
    },
}

/// Read a held exec's argv, cwd and the file it will run (resolved as the
/// kernel does: relative to the cwd or the directory descriptor, every
/// symlink followed) from the process.
fn inspect(request: &libc::seccomp_notif) -> Result<PendingExec, Inspected> {
    let pid = request.pid;
    let args = request.data.args;
    let (dirfd, path_at, argv_at) = if request.data.nr == arch::EXECVE {
        (libc::AT_FDCWD, args[0], args[1])
    } else {
        (args[0] as i32, args[1], args[2])
    };
    let unreadable = |path: Option<&str>| {
        let path = path.map(str::to_string);
        move |err| Inspected::Unreadable { path, err }
    };
    let memory = File::open(format!("/proc/{pid}/mem")).map_err(unreadable(None))?;
    let path = read_string(&memory, path_at).map_err(unreadable(None))?;
    let argv = read_argv(&memory, argv_at).map_err(unreadable(Some(&path)))?;
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).map_err(unreadable(Some(&path)))?;
    let base: PathBuf = if path.starts_with('/') || dirfd == libc::AT_FDCWD {
        cwd.clone()
    } else {
        std::fs::read_link(format!("/proc/{pid}/fd/{dirfd}")).map_err(unreadable(Some(&path)))?
    };
    let file = executable(&path, &base).map_err(|err| Inspected::Missing(missing_errno(&err)))?;
    Ok(PendingExec {
        pid,
        path: file.to_string_lossy().into_owned(),
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

/// The NULL-terminated array of string pointers at `address`, within
/// [`MAX_ARGS`] pointers and [`MAX_ARGV_BYTES`] of strings.
fn read_argv(memory: &File, address: u64) -> io::Result<Vec<String>> {
    let mut argv = Vec::new();
    if address == 0 {
        return Ok(argv);
    }
    let mut total = 0usize;
    let mut block = [0u8; 8 * POINTERS_PER_READ];
    let mut index = 0u64;
    while (index as usize) < MAX_ARGS {
        // The array may end right before unmapped memory: read what is there.
        let n = memory.read_at(&mut block, address + index * 8)?;
        if n < 8 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "argv runs off mapped memory",
            ));
        }
        for pointer in block[..n - n % 8].chunks_exact(8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(pointer);
            let pointer = u64::from_ne_bytes(bytes);
            if pointer == 0 {
                return Ok(argv);
            }
            let arg = read_string(memory, pointer)?;
            total += arg.len() + 1;
            if total > MAX_ARGV_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "arguments larger than the kernel allows",
                ));
            }
            argv.push(arg);
            index += 1;
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "too many arguments",
    ))
}

/// Whether execs can be held here: this build knows the architecture, and
/// a filter can be installed with our privileges (probed once, in a forked
/// child that installs it exactly as a policied child does, then exits).
pub fn supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| Path::new("/proc/self/mem").exists() && probe_filter())
}

fn probe_filter() -> bool {
    // SAFETY: the child makes raw syscalls only and leaves with `_exit`.
    match unsafe { libc::fork() } {
        -1 => false,
        0 => unsafe {
            let code = match install_filter() {
                Ok(_) => 0,
                Err(_) => 1,
            };
            libc::_exit(code)
        },
        child => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            let waited = loop {
                let r = unsafe { libc::waitpid(child, &mut status, 0) };
                if r == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break r;
            };
            waited == child && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
        }
    }
}
