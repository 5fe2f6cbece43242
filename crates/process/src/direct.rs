//! Starting a program on pipes with nothing between fork and exec but what
//! every start needs: the start of a plain `process/start` (no terminal, no
//! sandbox, no exec guard), which is most of them.
//!
//! It is glibc's `posix_spawn` done for this one case: `clone3(CLONE_VM |
//! CLONE_VFORK)`, so the child borrows the server's memory instead of
//! copying its page tables, and this thread waits until the child has
//! exec'd (or failed to). What it leaves out is what costs on every start
//! without helping here:
//! - the child's stack is kept per thread, not mapped and unmapped each time
//!   (an unmap in a process of many threads flushes every CPU's TLB);
//! - `CLONE_PIDFD` hands over the pidfd the supervisor waits on, with no
//!   `pidfd_open` after the start;
//! - `CLONE_CLEAR_SIGHAND` has the kernel reset the signal handlers, where
//!   glibc's child asks and resets every signal itself (129 system calls
//!   for a start through std). Where clone3 is refused, glibc's `clone`
//!   starts the child, which asks each signal's disposition once.
//!
//! The child runs on borrowed memory while the server's other threads go
//! on: it only reads what the parent prepared, makes system calls, and
//! reports a failure through one shared integer before `_exit`.

use std::ffi::{c_int, c_void, CString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use tokio::io::unix::AsyncFd;

/// The child's stack: it makes system calls and nothing deep.
const STACK_BYTES: usize = 64 * 1024;

/// What to exec, ready for a child that may not allocate.
#[derive(Debug)]
pub struct DirectCommand {
    path: CString,
    /// `argv` as C strings and the null-terminated pointer array into them.
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    cwd: CString,
}

// SAFETY: the raw pointers point into the `CString`s the struct owns, which
// are never changed after construction; sending or sharing them is as safe
// as sending or sharing the strings.
unsafe impl Send for DirectCommand {}
unsafe impl Sync for DirectCommand {}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "nul byte found in provided data: {:?}",
                String::from_utf8_lossy(bytes)
            ),
        )
    })
}

impl DirectCommand {
    /// `path` is run with `argv` (its first element is the program's
    /// `argv[0]`) and exactly the environment `env`, in `cwd`. Fails with
    /// `InvalidInput` when any of them holds a nul byte.
    pub fn new<'a>(
        path: &Path,
        argv: impl IntoIterator<Item = &'a str>,
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
        cwd: &Path,
    ) -> io::Result<DirectCommand> {
        let argv = argv
            .into_iter()
            .map(|arg| c_string(arg.as_bytes()))
            .collect::<io::Result<Vec<_>>>()?;
        let envp = env
            .into_iter()
            .map(|(key, value)| {
                if key.contains('=') {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("environment variable name {key:?} contains '='"),
                    ));
                }
                c_string(format!("{key}={value}").as_bytes())
            })
            .collect::<io::Result<Vec<_>>>()?;
        let pointers = |strings: &[CString]| {
            strings
                .iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        Ok(DirectCommand {
            path: c_string(path.as_os_str().as_bytes())?,
            argv_ptrs: pointers(&argv),
            _argv: argv,
            envp_ptrs: pointers(&envp),
            _envp: envp,
            cwd: c_string(cwd.as_os_str().as_bytes())?,
        })
    }
}

/// The three descriptors the program gets as stdin, stdout and stderr.
pub struct Stdio<'a> {
    pub stdin: BorrowedFd<'a>,
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
}

/// What the child reads, and where it reports a failure.
struct ChildArgs<'a> {
    command: &'a DirectCommand,
    fds: [RawFd; 3],
    /// The kernel reset the signal handlers (clone3's CLONE_CLEAR_SIGHAND).
    handlers_cleared: bool,
    /// The errno of the step that failed; 0 while none has.
    error: AtomicI32,
}

/// The child: signals, process group, cwd, stdio, exec. Only system calls
/// (through libc's thin wrappers) on memory the parent keeps alive and
/// unchanged until the child has exec'd or exited.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildArgs` the parent passed to `clone`; the
    // parent's thread is suspended (CLONE_VFORK) until we exec or exit, so
    // it outlives every use here.
    let args = unsafe { &*(arg as *const ChildArgs<'_>) };
    // SAFETY: each call below is a system call on valid pointers into
    // `args` or this stack; see the comments for what each step needs.
    unsafe {
        reset_signals(args.handlers_cleared);
        if libc::setpgid(0, 0) == -1 || libc::chdir(args.command.cwd.as_ptr()) == -1 {
            return fail(args);
        }
        for (target, &fd) in args.fds.iter().enumerate() {
            // Every source is above 2 (see `start`), so no dup2 here
            // overwrites a source a later one reads.
            if libc::dup2(fd, target as c_int) == -1 {
                return fail(args);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(
            args.command.path.as_ptr(),
            args.command.argv_ptrs.as_ptr(),
            args.command.envp_ptrs.as_ptr(),
        );
        fail(args)
    }
}

/// In the child: the signal dispositions the program must start with.
/// Every signal arrives blocked (the parent blocked all around the clone):
/// a handler of the server must not run here, on its memory. Handlers go
/// back to the default (exec would do that, but a signal could arrive
/// before it); the kernel did so already when `handlers_cleared`
/// (CLONE_CLEAR_SIGHAND). Ignored signals stay ignored, except those the
/// program must be able to receive: SIGPIPE (which Rust programs ignore)
/// and the signals a client may send. glibc's own signals, which its
/// `sigaction` refuses (and its posix_spawn leaves ignored), get the
/// default, as a shell would start the program.
unsafe fn reset_signals(handlers_cleared: bool) {
    let must_receive = |signo| {
        signo == libc::SIGPIPE || crate::signal::SENDABLE.iter().any(|s| *s as c_int == signo)
    };
    // One at a time: SIGKILL (sendable) refuses, and the rest must go on.
    let set_default = |signo: c_int| {
        let _ = crate::signal::restore_defaults(&[signo]);
    };
    // SAFETY (below): sigaction on valid pointers to local structs.
    let glibc_default = |signo: c_int| unsafe {
        // An all-zero kernel `sigaction` is SIG_DFL with no flags in every layout.
        let default = [0usize; 4];
        libc::syscall(
            libc::SYS_rt_sigaction,
            signo,
            default.as_ptr(),
            std::ptr::null_mut::<c_void>(),
            std::mem::size_of::<u64>(),
        );
    };
    if handlers_cleared {
        for signo in (1..=libc::SIGRTMAX()).filter(|&signo| must_receive(signo)) {
            set_default(signo);
        }
        for signo in 32..libc::SIGRTMIN() {
            glibc_default(signo);
        }
        return;
    }
    for signo in 1..=libc::SIGRTMAX() {
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        if unsafe { libc::sigaction(signo, std::ptr::null(), &mut current) } != 0 {
            glibc_default(signo);
            continue;
        }
        let reset = match current.sa_sigaction {
            libc::SIG_DFL => false,
            libc::SIG_IGN => must_receive(signo),
            _ => true,
        };
        if reset {
            set_default(signo);
        }
    }
}

/// Report errno to the parent and end the child.
unsafe fn fail(args: &ChildArgs<'_>) -> c_int {
    // SAFETY: errno lives in the parent thread's TLS, which the child
    // shares (CLONE_VM, same thread pointer) and the parent is not using.
    let errno = unsafe { *libc::__errno_location() };
    args.error.store(errno.max(1), Ordering::SeqCst);
    // SAFETY: `_exit` ends this process without running anything of the
    // parent's (no atexit handlers, no flushing of shared buffers).
    unsafe { libc::_exit(127) }
}

/// A stack for children started from this thread, mapped once: a guard
/// page, then [`STACK_BYTES`].
struct Stack {
    base: *mut c_void,
    len: usize,
}

impl Stack {
    fn map() -> io::Result<Stack> {
        // SAFETY: sysconf only reads a system value.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .unwrap_or(4096)
            .max(4096);
        let len = STACK_BYTES + page;
        // SAFETY: a fresh anonymous private mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base, len };
        // The lowest page is a guard: an overflow faults instead of writing
        // into whatever lies below.
        // SAFETY: the page is the start of the mapping made above.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The lowest usable address, above the guard page.
    #[cfg(target_arch = "x86_64")]
    fn lowest(&self) -> *mut c_void {
        // SAFETY: within the mapping (one page into it).
        unsafe { self.base.cast::<u8>().add(self.len - STACK_BYTES).cast() }
    }

    /// The initial stack pointer (stacks grow down), 16-byte aligned.
    fn top(&self) -> *mut c_void {
        // SAFETY: one past the end of the mapping, which is page aligned.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no child runs on it (a child
        // releases it before `start` returns).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

thread_local! {
    static STACK: std::cell::RefCell<Option<Stack>> = const { std::cell::RefCell::new(None) };
}

/// A descriptor above 2: `fd` itself, or a close-on-exec copy.
fn above_stdio(fd: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    if fd.as_raw_fd() > 2 {
        return Ok(None);
    }
    let raised =
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)).map_err(io::Error::from)?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor we now own.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(raised) }))
}

/// Start `command` with `stdio`, in a process group of its own. Returns
/// once the program has exec'd; a failure before (a missing cwd, a refused
/// exec) is returned as the child's errno, with the child reaped. Fails
/// with `ErrorKind::Unsupported`, having started nothing, where the kernel
/// cannot do it (see [`available`]).
pub fn start(command: &DirectCommand, stdio: Stdio<'_>) -> io::Result<DirectChild> {
    start_with(command, stdio, !CLONE3_REFUSED.load(Ordering::Relaxed))
}

/// [`start`], trying clone3 first when `try_clone3`.
fn start_with(
    command: &DirectCommand,
    stdio: Stdio<'_>,
    try_clone3: bool,
) -> io::Result<DirectChild> {
    let raised = [
        above_stdio(stdio.stdin)?,
        above_stdio(stdio.stdout)?,
        above_stdio(stdio.stderr)?,
    ];
    let fds = [stdio.stdin, stdio.stdout, stdio.stderr];
    let mut raw = [0; 3];
    for (slot, (copy, fd)) in raw.iter_mut().zip(raised.iter().zip(fds)) {
        *slot = copy.as_ref().map_or(fd.as_raw_fd(), |c| c.as_raw_fd());
    }
    let mut args = ChildArgs {
        command,
        fds: raw,
        handlers_cleared: false,
        error: AtomicI32::new(0),
    };
    let mut pidfd: c_int = -1;
    let pid = STACK.with(|cell| -> io::Result<libc::pid_t> {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(Stack::map()?);
        }
        let Some(stack) = slot.as_ref() else {
            return Err(io::Error::other("no stack for the child"));
        };
        // SAFETY: sigset operations on a local set; pthread_sigmask changes
        // only this thread's mask, restored right after the clone.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        let mut previous: libc::sigset_t = unsafe { std::mem::zeroed() };
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut previous);
        }
        let pid = clone_child(&mut args, stack, &mut pidfd, try_clone3);
        // SAFETY: restores the mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut()) };
        pid
    })?;
    drop(raised);
    // SAFETY: the kernel stored a new pidfd for the child, owned by us now.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let error = args.error.load(Ordering::SeqCst);
    if error != 0 {
        // The child has exited (it reported before `_exit`): reap it.
        let mut status = 0;
        // SAFETY: waits for our own child, which has exited.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(io::Error::from_raw_os_error(error));
    }
    DirectChild::new(pid, pidfd)
}

/// Set once clone3 was refused (a kernel before 5.5, or a seccomp filter
/// such as Docker's default, which makes it fail with ENOSYS so that
/// programs fall back to clone): later starts go straight to clone.
static CLONE3_REFUSED: AtomicBool = AtomicBool::new(false);

/// Set once clone refused CLONE_PIDFD (a kernel before 5.2): see [`available`].
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// Whether [`start`] can start children here. False once it failed with
/// `ErrorKind::Unsupported` (a kernel before 5.2): start them otherwise.
pub fn available() -> bool {
    !UNAVAILABLE.load(Ordering::Relaxed)
}

/// clone3's arguments, as far as used (`CLONE_ARGS_SIZE_VER0`).
#[cfg(target_arch = "x86_64")]
#[repr(C)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
}

/// clone3 only: reset every handled signal to its default in the child.
#[cfg(target_arch = "x86_64")]
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// Clone a child running `child_main(args)` on `stack`, sharing our memory
/// until it execs or exits (this thread waits until then); its pidfd goes
/// to `pidfd`. With clone3 when `try_clone3` and it is allowed, so the
/// kernel resets the signal handlers; with glibc's clone otherwise.
fn clone_child(
    args: &mut ChildArgs<'_>,
    stack: &Stack,
    pidfd: &mut c_int,
    try_clone3: bool,
) -> io::Result<libc::pid_t> {
    #[cfg(target_arch = "x86_64")]
    if try_clone3 {
        args.handlers_cleared = true;
        match clone3_child(args, stack, pidfd) {
            Err(err)
                if matches!(
                    err.raw_os_error(),
                    Some(libc::ENOSYS | libc::EPERM | libc::EINVAL | libc::E2BIG)
                ) =>
            {
                CLONE3_REFUSED.store(true, Ordering::Relaxed);
            }
            result => return result,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = try_clone3;
    args.handlers_cleared = false;
    // SAFETY: `child_main` only makes system calls on `args`, which lives
    // on the caller's frame until the clone returns; CLONE_VFORK holds this
    // thread until the child has exec'd or exited, so neither the stack nor
    // `args` is in use by it afterwards. CLONE_PIDFD stores the child's
    // pidfd through the parent_tid argument.
    let pid = unsafe {
        libc::clone(
            child_main,
            stack.top(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
            args as *const ChildArgs<'_> as *mut c_void,
            pidfd as *mut c_int,
        )
    };
    if pid == -1 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINVAL) {
            // No CLONE_PIDFD (a kernel before 5.2): this way is closed.
            UNAVAILABLE.store(true, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "clone with CLONE_PIDFD is not available here",
            ));
        }
        return Err(err);
    }
    Ok(pid)
}

/// clone3 with CLONE_CLEAR_SIGHAND. glibc has no wrapper that runs a
/// function on a new stack, so the child's first steps are ours: the
/// kernel starts it after the `syscall` instruction with `rax` 0 and the
/// stack pointer at the top of `stack`; it calls `child_main` with the
/// arguments kept in r12 and r13 (which a system call preserves) and exits
/// with its result (it never gets there: it execs or `_exit`s).
#[cfg(target_arch = "x86_64")]
fn clone3_child(args: &ChildArgs<'_>, stack: &Stack, pidfd: &mut c_int) -> io::Result<libc::pid_t> {
    let clone = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64
            | CLONE_CLEAR_SIGHAND,
        pidfd: pidfd as *mut c_int as u64,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.lowest() as u64,
        stack_size: STACK_BYTES as u64,
        tls: 0,
    };
    let ret: i64;
    // SAFETY: the system call reads `clone` and writes the pidfd through
    // its pointer, both valid. The parent's side only gets `rax` back
    // (rcx and r11 are clobbered by `syscall`). The child's side runs on
    // `stack` (16-byte aligned at its top, as a call needs) and never
    // returns into this function; what it does is `child_main`'s contract
    // (see `clone_child`).
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r12",
            "call r13",
            "mov edi, eax",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            "2:",
            exit = const libc::SYS_exit,
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") &clone as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") args as *const ChildArgs<'_> as *mut c_void,
            in("r13") child_main as extern "C" fn(*mut c_void) -> c_int,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        return Err(io::Error::from_raw_os_error((-ret) as i32));
    }
    Ok(ret as libc::pid_t)
}

/// A child started by [`start`]: waited for through its pidfd, and reaped
/// even when dropped before it exited.
#[derive(Debug)]
pub struct DirectChild {
    pid: libc::pid_t,
    /// `None` once reaped.
    pidfd: Option<AsyncFd<OwnedFd>>,
}

impl DirectChild {
    fn new(pid: libc::pid_t, pidfd: OwnedFd) -> io::Result<DirectChild> {
        // SAFETY: the pidfd is open and owned by the `AsyncFd` for its whole life.
        let registered = match unsafe { AsyncFd::register(pidfd) } {
            Ok(registered) => registered,
            Err(err) => {
                // Nobody could wait for it: end and reap it now.
                // SAFETY: signals and waits for our own, unreaped child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
                return Err(err.into());
            }
        };
        Ok(DirectChild {
            pid,
            pidfd: Some(registered),
        })
    }

    pub fn id(&self) -> libc::pid_t {
        self.pid
    }

    /// Wait for the child to exit and reap it. Cancel-safe: nothing is
    /// consumed until the child has exited.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        let Some(pidfd) = &self.pidfd else {
            return Err(io::Error::other("the child was already reaped"));
        };
        let status = reaped(self.pid, pidfd).await?;
        self.pidfd = None;
        Ok(status)
    }

    /// SIGKILL the child (not its group), unless it was reaped.
    pub fn start_kill(&mut self) -> io::Result<()> {
        let Some(pidfd) = &self.pidfd else {
            return Ok(());
        };
        // SAFETY: pidfd_send_signal with a valid pidfd and no siginfo; the
        // pidfd names this child even if its pid were reused.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.get_ref().as_fd().as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == -1 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// The child's status if it has exited (it is reaped then), `None` while it runs.
fn reap(pid: libc::pid_t) -> io::Result<Option<ExitStatus>> {
    let mut status = 0;
    // SAFETY: waits for our own child without blocking.
    match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
        0 => Ok(None),
        -1 => Err(io::Error::last_os_error()),
        _ => Ok(Some(ExitStatus::from_raw(status))),
    }
}

/// Wait until the child `pidfd` names has exited, and reap it.
async fn reaped(pid: libc::pid_t, pidfd: &AsyncFd<OwnedFd>) -> io::Result<ExitStatus> {
    loop {
        let mut ready = pidfd.readable().await?;
        if let Some(status) = reap(pid)? {
            return Ok(status);
        }
        ready.clear_ready();
    }
}

impl Drop for DirectChild {
    fn drop(&mut self) {
        let Some(pidfd) = self.pidfd.take() else {
            return;
        };
        if !matches!(reap(self.pid), Ok(None)) {
            return;
        }
        // Still running: it is reaped when it exits, without blocking
        // this thread. (A runtime shutting down drops that task; the
        // server is ending then, and whoever reaps its orphans reaps it.)
        let pid = self.pid;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _ = reaped(pid, &pidfd).await;
                });
            }
            Err(_) => {
                drop(pidfd);
                std::thread::spawn(move || {
                    // SAFETY: a blocking wait for our own child.
                    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    /// Run `argv` (by path) in `cwd` with stdout on a pipe: its output and exit status.
    async fn run(argv: &[&str], cwd: &Path) -> io::Result<(String, ExitStatus)> {
        run_with(argv, cwd, true).await
    }

    /// [`run`], through clone3 first when `try_clone3`, else glibc's clone.
    async fn run_with(
        argv: &[&str],
        cwd: &Path,
        try_clone3: bool,
    ) -> io::Result<(String, ExitStatus)> {
        let command = DirectCommand::new(
            Path::new(argv[0]),
            argv.iter().copied(),
            [("PATH", "/usr/bin:/bin")],
            cwd,
        )?;
        let (read, write) = nix::unistd::pipe()?;
        let null = std::fs::File::open("/dev/null")?;
        let mut child = start_with(
            &command,
            Stdio {
                stdin: null.as_fd(),
                stdout: write.as_fd(),
                stderr: write.as_fd(),
            },
            try_clone3,
        )?;
        drop(write);
        let reader = tokio::task::spawn_blocking(move || {
            let mut out = String::new();
            std::fs::File::from(read)
                .read_to_string(&mut out)
                .map(|_| out)
        });
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .map_err(|_| io::Error::other("no exit in 10 s"))??;
        let out = reader.await.map_err(io::Error::other)??;
        Ok((out, status))
    }

    fn status_field(status: &str, name: &str) -> String {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    }

    #[tokio::test]
    async fn the_program_starts_with_no_signal_blocked_or_ignored() {
        // This test process ignores SIGPIPE (Rust's runtime does) and
        // blocks every signal around the start; both ways of cloning must
        // undo that (handlers end with the exec, whatever the child did).
        for try_clone3 in [true, false] {
            let (status, exit) = run_with(
                &["/bin/cat", "/proc/self/status"],
                Path::new("/"),
                try_clone3,
            )
            .await
            .expect("cat runs");
            assert!(exit.success(), "{exit:?}");
            for field in ["SigBlk:", "SigIgn:"] {
                assert_eq!(
                    status_field(&status, field),
                    "0000000000000000",
                    "{field} (clone3: {try_clone3})"
                );
            }
        }
    }

    #[tokio::test]
    async fn the_program_runs_in_its_cwd_and_process_group_with_its_exit_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The fifth field of /proc/PID/stat is the process group.
        let script = "pwd; cut -d' ' -f5 /proc/$$/stat; echo $$; exit 3";
        let (out, exit) = run(&["/bin/sh", "-c", script], dir.path())
            .await
            .expect("sh runs");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines.first().copied(),
            dir.path().canonicalize().unwrap().to_str()
        );
        assert_eq!(
            lines.get(1).map(|l| l.trim()),
            lines.get(2).copied(),
            "{out}"
        );
        assert_eq!(exit.code(), Some(3));
    }

    #[tokio::test]
    async fn a_failure_before_exec_is_the_childs_errno() {
        let missing = run(&["/nonexistent/program"], Path::new("/")).await;
        assert_eq!(
            missing.map(|_| ()).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let no_cwd = run(&["/bin/true"], Path::new("/nonexistent/dir")).await;
        assert_eq!(
            no_cwd.map(|_| ()).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        let nul = DirectCommand::new(Path::new("/bin/true"), ["a\0b"], [], Path::new("/"));
        assert_eq!(nul.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn a_child_dropped_while_running_is_reaped_when_it_exits() {
        let command = DirectCommand::new(
            Path::new("/bin/sleep"),
            ["sleep", "0.2"],
            [],
            Path::new("/"),
        )
        .expect("command");
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        let child = start(
            &command,
            Stdio {
                stdin: null.as_fd(),
                stdout: null.as_fd(),
                stderr: null.as_fd(),
            },
        )
        .expect("sleep starts");
        let proc_dir = PathBuf::from(format!("/proc/{}", child.id()));
        drop(child);
        // A zombie keeps its /proc entry until it is reaped.
        let gone = tokio::time::timeout(Duration::from_secs(10), async {
            while proc_dir.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(
            gone.is_ok(),
            "{} still exists (not reaped)",
            proc_dir.display()
        );
    }
}
