//! Starting a program on pipes or on a pseudo-terminal.
//!
//! Every child runs in a process group of its own (pipes: `setpgid`; PTYs:
//! `setsid`, with the terminal as its controlling tty), so that signals can
//! reach the whole tree it starts. All descriptors we create are close-on-exec
//! from birth, so no other child inherits them and EOF arrives on time.
//! A child on pipes with neither sandbox nor exec guard needs no step of
//! ours between fork and exec but the pipes, and is started by
//! [`crate::direct`] (a vfork, not a copy of the server's memory map); the
//! others are forked through std's `Command`, with their steps in
//! `pre_exec`.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use execd_protocol::process::{OutputStream, TerminalSize};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::unix::AsyncFd;
use tokio::process::Command;

use execd_policy::child::{FirstExec, SetupError};
use execd_policy::fdpass::{channel, receive_fd};
use execd_policy::sandbox::{PreparedSandbox, SandboxError};
use execd_policy::tree::{Escalated, TreeGuard};
use execd_protocol::network::PROXY_URL;

use crate::direct::{DirectChild, DirectCommand};
use crate::program::Lookup;
use crate::text_busy::retry_text_busy;

/// Requested capacity of a child's stdout pipe once its output is bulk.
const STDOUT_PIPE_BYTES: libc::c_int = 1024 * 1024;
/// A new pipe's capacity (Linux's default): a read of this much found it full.
pub(crate) const DEFAULT_PIPE_BYTES: usize = 64 * 1024;

/// A larger stdout pipe means fewer, bigger reads for bulk output; grown
/// only once a read found it full, so that the many short commands do not
/// pay for it. The kernel may refuse (per-user pipe limits); the default
/// then stays.
pub(crate) fn grow_stdout_pipe(fd: BorrowedFd<'_>) {
    let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(STDOUT_PIPE_BYTES));
}

/// A descriptor registered with the tokio reactor, in non-blocking mode.
pub type ReactorFd = Arc<AsyncFd<OwnedFd>>;

/// What to start.
#[derive(Debug, Clone)]
pub struct SpawnSpec {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// The child's entire environment.
    pub env: HashMap<String, String>,
    pub tty: bool,
    pub pipe_stdin: bool,
    pub arg0: Option<String>,
    pub size: TerminalSize,
    /// Hold every exec of the tree for a decision under this policy.
    pub exec_policy: Option<execd_protocol::policy::ExecPolicy>,
    /// Confine the tree.
    pub sandbox: Option<execd_protocol::sandbox::SandboxSpec>,
    /// Let the tree out of its network namespace only through a proxy
    /// deciding by this policy (needs `sandbox` with `network: false`).
    pub network_policy: Option<execd_protocol::network::NetworkPolicy>,
    /// Read no more output while this many bytes are unacknowledged.
    pub output_window: Option<u64>,
}

/// A started child, as its supervisor waits for it.
#[derive(Debug)]
pub enum Child {
    /// Started by [`crate::direct`].
    Direct(DirectChild),
    /// Forked through std's `Command` (a terminal, a sandbox, an exec guard).
    Forked(tokio::process::Child),
}

impl Child {
    /// Wait for the child to exit, and reap it. Cancel-safe.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        match self {
            Child::Direct(child) => child.wait().await,
            Child::Forked(child) => child.wait().await,
        }
    }

    /// SIGKILL the child itself (not its group).
    pub fn start_kill(&mut self) -> io::Result<()> {
        match self {
            Child::Direct(child) => child.start_kill(),
            Child::Forked(child) => child.start_kill(),
        }
    }

    fn pid(&self) -> Option<i32> {
        match self {
            Child::Direct(child) => Some(child.id()),
            Child::Forked(child) => child.id().and_then(|pid| i32::try_from(pid).ok()),
        }
    }
}

/// A started child and our ends of its descriptors.
#[derive(Debug)]
pub struct Spawned {
    pub child: Child,
    /// The child's pid, which is also its process group (and, for PTYs, session) id.
    pub pid: i32,
    /// Where `process/write` goes: the pipe to its stdin, or the PTY master.
    pub stdin: Option<ReactorFd>,
    /// Output sources: stdout and stderr pipes, or the PTY master alone.
    pub outputs: Vec<(OutputStream, ReactorFd)>,
    /// The PTY master, for resizing.
    pub pty: Option<ReactorFd>,
    /// Process groups of the tree's escalated commands (exec policy only).
    pub escalated: Option<Escalated>,
    /// The network proxy's listening socket, made in the tree's network
    /// namespace (network policy only), for the owner to serve.
    pub proxy_listener: Option<OwnedFd>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("argv must not be empty")]
    EmptyArgv,
    #[error("cwd must be an absolute path, got {0:?}")]
    RelativeCwd(String),
    #[error("cwd {0:?} does not exist or is not a directory")]
    MissingCwd(String),
    #[error("program {0:?} not found")]
    ProgramNotFound(String),
    #[error("program {0:?} is not executable (permission denied)")]
    PermissionDenied(String),
    #[error("program {0:?} was denied by the exec policy (or is not executable)")]
    Denied(String),
    #[error("cannot start {program:?}: {source}")]
    InvalidInput { program: String, source: io::Error },
    #[error("cannot start {program:?}: {source}")]
    Os { program: String, source: io::Error },
    #[error("execPolicy is not available on this server: it cannot install a seccomp filter here (initialize reports capabilities.execPolicy false)")]
    PolicyUnavailable,
    #[error("sandbox: {0}")]
    Sandbox(#[from] SandboxError),
    #[error("networkPolicy needs a sandbox (with network false): the proxy is the tree's only way out of a network namespace of its own")]
    NetworkPolicyWithoutSandbox,
    #[error(transparent)]
    Guard(#[from] SetupError),
    #[error("cannot set up {what}: {source}")]
    Setup {
        what: &'static str,
        source: io::Error,
    },
}

impl SpawnError {
    /// True when the request itself was at fault (rather than the machine).
    pub fn is_bad_input(&self) -> bool {
        match self {
            SpawnError::Os { .. } | SpawnError::Setup { .. } | SpawnError::Guard(_) => false,
            SpawnError::Sandbox(err) => err.is_bad_input(),
            _ => true,
        }
    }
}

fn setup(what: &'static str) -> impl FnOnce(nix::Error) -> SpawnError {
    move |errno| SpawnError::Setup {
        what,
        source: io::Error::from(errno),
    }
}

/// Put a descriptor in non-blocking mode and register it with the reactor.
pub fn reactor_fd(fd: OwnedFd) -> io::Result<ReactorFd> {
    let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(&fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    // SAFETY: the `OwnedFd` is open and owned by the `AsyncFd` for its whole life.
    let registered = unsafe { AsyncFd::register(fd) }?;
    Ok(Arc::new(registered))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(setup("a pipe"))
}

/// Apply a window size to a terminal.
pub fn set_window_size(fd: BorrowedFd<'_>, size: TerminalSize) -> io::Result<()> {
    let winsize = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which is valid.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &winsize) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A new PTY pair, both ends close-on-exec: (master, slave).
fn open_pty(size: TerminalSize) -> Result<(OwnedFd, OwnedFd), SpawnError> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(setup("a pseudo-terminal"))?;
    nix::pty::grantpt(&master).map_err(setup("a pseudo-terminal"))?;
    nix::pty::unlockpt(&master).map_err(setup("a pseudo-terminal"))?;
    let slave_path = nix::pty::ptsname_r(&master).map_err(setup("a pseudo-terminal"))?;
    // SAFETY: `into_raw_fd` hands over sole ownership of a valid descriptor.
    let master = unsafe { OwnedFd::from_raw_fd(master.into_raw_fd()) };
    let slave = nix::fcntl::open(
        Path::new(&slave_path),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(setup("a pseudo-terminal"))?;
    set_window_size(master.as_fd(), size).map_err(|source| SpawnError::Setup {
        what: "the terminal size",
        source,
    })?;
    Ok((master, slave))
}

fn validate(spec: &SpawnSpec) -> Result<&str, SpawnError> {
    let program = spec.argv.first().ok_or(SpawnError::EmptyArgv)?;
    let cwd = spec.cwd.to_string_lossy();
    if !spec.cwd.is_absolute() {
        return Err(SpawnError::RelativeCwd(cwd.into_owned()));
    }
    Ok(program)
}

/// A start that failed because its cwd is not a directory says so, whatever
/// step noticed first (the program's lookup, or the child's chdir). Checked
/// only after a failure: a `stat` less on every start.
fn name_missing_cwd(spec: &SpawnSpec, err: SpawnError) -> SpawnError {
    if spec.cwd.is_dir() {
        err
    } else {
        SpawnError::MissingCwd(spec.cwd.to_string_lossy().into_owned())
    }
}

/// This process's `/dev/null`, opened once (until it opens, every start
/// tries again): the stdin of every child without a stdin pipe.
fn dev_null() -> Result<BorrowedFd<'static>, SpawnError> {
    static DEV_NULL: std::sync::OnceLock<OwnedFd> = std::sync::OnceLock::new();
    if DEV_NULL.get().is_none() {
        let opened = std::fs::File::open("/dev/null").map_err(|source| SpawnError::Setup {
            what: "stdin (/dev/null)",
            source,
        })?;
        // Another start may have won the race: then ours closes here.
        let _ = DEV_NULL.set(OwnedFd::from(opened));
    }
    DEV_NULL
        .get()
        .map(|fd| fd.as_fd())
        .ok_or_else(|| SpawnError::Setup {
            what: "stdin (/dev/null)",
            source: io::Error::other("not open"),
        })
}

/// Start the program described by `spec`. With an exec policy, `guard`
/// decides every exec of the tree (the program's own included).
pub fn spawn(spec: &SpawnSpec, guard: Option<TreeGuard>) -> Result<Spawned, SpawnError> {
    spawn_checked(spec, guard).map_err(|err| match err {
        SpawnError::ProgramNotFound(_)
        | SpawnError::PermissionDenied(_)
        | SpawnError::Denied(_)
        | SpawnError::Os { .. } => name_missing_cwd(spec, err),
        err => err,
    })
}

fn spawn_checked(spec: &SpawnSpec, guard: Option<TreeGuard>) -> Result<Spawned, SpawnError> {
    let program = validate(spec)?;
    if spec.network_policy.is_some() && spec.sandbox.is_none() {
        return Err(SpawnError::NetworkPolicyWithoutSandbox);
    }
    if let Some(guard) = &guard {
        // Decided before the fork, so the child is not held with copies of
        // our descriptors while a client thinks.
        let argv: Vec<String> = spec
            .arg0
            .iter()
            .chain(spec.argv.first().filter(|_| spec.arg0.is_none()))
            .chain(&spec.argv[1..])
            .cloned()
            .collect();
        let search_path = spec.env.get("PATH").map(String::as_str);
        if guard.decide_first_exec(program, &argv, &spec.cwd, search_path) == FirstExec::Denied {
            return Err(SpawnError::Denied(program.to_string()));
        }
    }
    // Nothing to run in the child between fork and exec but the pipes.
    let direct = !spec.tty && spec.sandbox.is_none() && guard.is_none();
    if direct && crate::direct::available() {
        if let Some(spawned) = spawn_direct(spec, program)? {
            return Ok(spawned);
        }
        // A script without `#!`: exec refuses it (ENOEXEC), while execvp
        // (the fork path below) runs it with /bin/sh. Or a kernel the
        // direct path needs more of (before 5.2).
    }
    let mut command = Command::new(program);
    if let Some(arg0) = &spec.arg0 {
        command.arg0(arg0);
    }
    command
        .args(&spec.argv[1..])
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(&spec.env);
    // Signals the server ignores would stay ignored in the program (exec
    // keeps SIG_IGN), and a client's `process/signal` would do nothing; the
    // child puts them back to the default. It also makes this start a
    // fork, as the script without `#!` needs.
    let ignored = crate::signal::ignored_sendable();
    // SAFETY: `restore_defaults` calls only sigaction.
    unsafe {
        command.pre_exec(move || crate::signal::restore_defaults(&ignored));
    }

    let mut stdin = None;
    let mut outputs = Vec::new();
    let mut pty = None;
    // A pipe's end is registered with the reactor once the child runs: the
    // spawn, which holds this thread until the child has exec'd, comes first.
    let mut unregistered: Option<(OwnedFd, OwnedFd, Option<OwnedFd>)> = None;
    if spec.tty {
        let (master, slave) = open_pty(spec.size)?;
        let clone = |fd: &OwnedFd| {
            fd.try_clone().map_err(|source| SpawnError::Setup {
                what: "a pseudo-terminal",
                source,
            })
        };
        command
            .stdin(Stdio::from(clone(&slave)?))
            .stdout(Stdio::from(clone(&slave)?))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls (setsid, ioctl) run in the child.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let master = reactor_fd(master).map_err(|source| SpawnError::Setup {
            what: "a pseudo-terminal",
            source,
        })?;
        stdin = Some(master.clone());
        outputs.push((OutputStream::Pty, master.clone()));
        pty = Some(master);
    } else {
        let pipes = ChildPipes::new(spec.pipe_stdin)?;
        command
            .stdin(Stdio::from(match pipes.stdin_read {
                Some(read) => read,
                None => dev_null()?
                    .try_clone_to_owned()
                    .map_err(|source| SpawnError::Setup {
                        what: "stdin (/dev/null)",
                        source,
                    })?,
            }))
            .stdout(Stdio::from(pipes.out_write))
            .stderr(Stdio::from(pipes.err_write))
            .process_group(0);
        unregistered = Some((pipes.out_read, pipes.err_read, pipes.stdin_write));
    }

    // After the terminal set-up: confine the tree (no_new_privs, network
    // namespace, Landlock), all inherited by every descendant.
    let mut proxy_channel = None;
    if let Some(sandbox_spec) = &spec.sandbox {
        let mut sandbox = PreparedSandbox::prepare(sandbox_spec)?;
        if spec.network_policy.is_some() {
            let (ours, theirs) = channel().map_err(|source| SpawnError::Setup {
                what: "the network proxy's socket",
                source,
            })?;
            sandbox.send_proxy_listener(theirs.as_raw_fd())?;
            command.envs(PROXY_VARIABLES.iter().map(|name| (name, PROXY_URL)));
            proxy_channel = Some((ours, theirs));
        }
        // SAFETY: `apply_in_child` makes only raw syscalls.
        unsafe {
            command.pre_exec(move || sandbox.apply_in_child());
        }
    }
    // Registered last: the filter must not see the set-up above.
    let mut held_sockets = Vec::new();
    let escalated = guard.as_ref().map(|guard| guard.escalated.clone());
    if let Some(guard) = guard {
        let setup = guard.prepare_child(spec.env.get("LD_PRELOAD").map(String::as_str))?;
        command.envs(setup.env);
        let install = setup.install;
        // SAFETY: `ChildInstall::run` makes only raw syscalls.
        unsafe {
            command.pre_exec(move || install.run());
        }
        held_sockets = setup.sockets;
    }
    // A program written a moment ago may be busy for a moment (see
    // [`crate::text_busy`]): tried again, unless the child hands something
    // to a one-shot receiver (the exec guard's filter, the proxy's listener).
    let retry_busy = escalated.is_none() && proxy_channel.is_none();
    let spawned = start(&mut command, retry_busy);
    drop(held_sockets);
    // The child made the listener in its namespace and sent it before it
    // exec'd; with our copy of its end closed, a child that died first
    // reads as the end of the socket, never a wait.
    let proxy_listener = proxy_channel.and_then(|(ours, theirs)| {
        drop(theirs);
        spawned.as_ref().ok()?;
        receive_fd(&ours).ok().flatten()
    });
    let mut child = Child::Forked(spawned.map_err(|source| {
        let denied = spec.exec_policy.is_some() && source.kind() == io::ErrorKind::PermissionDenied;
        if denied {
            SpawnError::Denied(program.to_string())
        } else {
            classify(program, source)
        }
    })?);
    // Dropping the command closes our copies of the child's ends, so EOF
    // arrives when the child (and its descendants) close theirs.
    drop(command);
    if let Some((out_read, err_read, stdin_pipe)) = unregistered {
        (outputs, stdin) = register_pipes(&mut child, out_read, err_read, stdin_pipe)?;
    }
    let pid = child_pid(&child, program)?;
    Ok(Spawned {
        child,
        pid,
        stdin,
        outputs,
        pty,
        escalated,
        proxy_listener,
    })
}

/// The pipes of a child without a terminal: its ends (stdin, which is
/// `/dev/null` without a stdin pipe; stdout; stderr) and ours.
struct ChildPipes {
    /// `None`: this process's shared `/dev/null` (see [`dev_null`]).
    stdin_read: Option<OwnedFd>,
    stdin_write: Option<OwnedFd>,
    out_read: OwnedFd,
    out_write: OwnedFd,
    err_read: OwnedFd,
    err_write: OwnedFd,
}

impl ChildPipes {
    fn new(pipe_stdin: bool) -> Result<ChildPipes, SpawnError> {
        let (out_read, out_write) = pipe()?;
        let (err_read, err_write) = pipe()?;
        let (stdin_read, stdin_write) = if pipe_stdin {
            let (read, write) = pipe()?;
            (Some(read), Some(write))
        } else {
            (None, None)
        };
        Ok(ChildPipes {
            stdin_read,
            stdin_write,
            out_read,
            out_write,
            err_read,
            err_write,
        })
    }
}

/// Start a child on pipes through [`crate::direct`]; `None` when the
/// program is a script without `#!`, which only the fork path runs, or
/// when this kernel cannot start it that way (nothing was started then).
fn spawn_direct(spec: &SpawnSpec, program: &str) -> Result<Option<Spawned>, SpawnError> {
    let search_path = spec.env.get("PATH").map(String::as_str);
    let path = match crate::program::find(program, search_path, &spec.cwd) {
        Lookup::Found(path) => path,
        Lookup::NotFound => return Err(SpawnError::ProgramNotFound(program.to_string())),
        Lookup::NotExecutable => return Err(SpawnError::PermissionDenied(program.to_string())),
    };
    let arg0 = spec.arg0.as_deref().unwrap_or(program);
    let argv = std::iter::once(arg0).chain(spec.argv[1..].iter().map(String::as_str));
    let env = spec
        .env
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()));
    let command = DirectCommand::new(&path, argv, env, &spec.cwd)
        .map_err(|source| classify(program, source))?;
    let pipes = ChildPipes::new(spec.pipe_stdin)?;
    let stdin_read = match &pipes.stdin_read {
        Some(read) => read.as_fd(),
        None => dev_null()?,
    };
    let started = retry_text_busy(|| {
        crate::direct::start(
            &command,
            crate::direct::Stdio {
                stdin: stdin_read,
                stdout: pipes.out_write.as_fd(),
                stderr: pipes.err_write.as_fd(),
            },
        )
    });
    let mut child = match started {
        Ok(child) => Child::Direct(child),
        Err(err)
            if err.raw_os_error() == Some(libc::ENOEXEC)
                || err.kind() == io::ErrorKind::Unsupported =>
        {
            return Ok(None)
        }
        Err(err) => return Err(classify(program, err)),
    };
    // Our copies of the child's ends close, so EOF arrives when the child
    // (and its descendants) close theirs.
    drop((pipes.stdin_read, pipes.out_write, pipes.err_write));
    let (outputs, stdin) = register_pipes(
        &mut child,
        pipes.out_read,
        pipes.err_read,
        pipes.stdin_write,
    )?;
    let pid = child_pid(&child, program)?;
    Ok(Some(Spawned {
        child,
        pid,
        stdin,
        outputs,
        pty: None,
        escalated: None,
        proxy_listener: None,
    }))
}

/// Our ends of a started child's pipes, registered with the reactor:
/// (stdout and stderr, stdin). On failure the child is killed: nobody
/// could read its output.
#[allow(clippy::type_complexity)]
fn register_pipes(
    child: &mut Child,
    out_read: OwnedFd,
    err_read: OwnedFd,
    stdin_write: Option<OwnedFd>,
) -> Result<(Vec<(OutputStream, ReactorFd)>, Option<ReactorFd>), SpawnError> {
    let registered = (|| -> io::Result<_> {
        let outputs = vec![
            (OutputStream::Stdout, reactor_fd(out_read)?),
            (OutputStream::Stderr, reactor_fd(err_read)?),
        ];
        Ok((outputs, stdin_write.map(reactor_fd).transpose()?))
    })();
    registered.map_err(|source| {
        let _ = child.start_kill();
        SpawnError::Setup {
            what: "a pipe",
            source,
        }
    })
}

fn child_pid(child: &Child, program: &str) -> Result<i32, SpawnError> {
    child.pid().ok_or_else(|| SpawnError::Os {
        program: program.to_string(),
        source: io::Error::other("child exited before its pid was known"),
    })
}

/// One start of `command`, tried again while the program is busy when `retry_busy`.
fn start(command: &mut Command, retry_busy: bool) -> io::Result<tokio::process::Child> {
    if retry_busy {
        retry_text_busy(|| command.spawn())
    } else {
        command.spawn()
    }
}

/// The variables that point a tree under a network policy at its proxy.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

fn classify(program: &str, source: io::Error) -> SpawnError {
    let program = program.to_string();
    match source.kind() {
        io::ErrorKind::NotFound => SpawnError::ProgramNotFound(program),
        io::ErrorKind::PermissionDenied => SpawnError::PermissionDenied(program),
        io::ErrorKind::InvalidInput => SpawnError::InvalidInput { program, source },
        _ => SpawnError::Os { program, source },
    }
}
