//! The supervisor in front of `execd serve`: nothing the server started
//! outlives it, however it ends (SIGKILL and OOM included).
//!
//! `execd serve` forks before anything else starts (no thread exists yet, so
//! both sides may run any code). The child is the server. The parent, the
//! process that was started, stays minimal: it is a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`; as a container's PID 1 it is the namespace's
//! init, which is the same), so every process below the server whose parent
//! dies is handed to it, and it reaps them; it passes termination signals on
//! to the server; and when the server is gone it ends every process left
//! below itself (SIGTERM, then SIGKILL after the grace period, found by
//! parentage in `/proc`, and through the server's cgroup where there is one:
//! see `cgroup`), reaps them, and exits with the server's status. The server
//! gets SIGTERM (`PR_SET_PDEATHSIG`) if the supervisor itself is killed, so
//! it then shuts down as on SIGTERM.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{kill, signal, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};

use crate::cgroup::Cgroup;

/// Signals the supervisor passes on to the server.
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// How often the supervisor looks again while processes are going away
/// (a grandchild's exit wakes nobody here).
const POLL: Duration = Duration::from_millis(20);

/// How long SIGKILLed processes get to disappear (one in uninterruptible
/// sleep waits for its I/O) before the supervisor gives up on them.
const KILL_PATIENCE: Duration = Duration::from_secs(5);

/// What the calling process is to do.
pub enum Role {
    /// Go on and serve.
    Server,
    /// The supervisor is done: the server exited with this status.
    Exited(ExitCode),
}

/// Fork into supervisor and server; `grace` is the time between SIGTERM and
/// SIGKILL for what is left when the server is gone. Call it before any
/// thread exists. If the fork fails, this process serves unsupervised.
pub fn split(grace: Duration) -> Role {
    // An ignored SIGCHLD (inherited from whoever started us) would never be
    // pending, so the server's exit would go unseen.
    // SAFETY: the default disposition installs no handler.
    if let Err(err) = unsafe { signal(Signal::SIGCHLD, SigHandler::SigDfl) } {
        eprintln!("execd: cannot reset SIGCHLD ({err}); serving unsupervised");
        return Role::Server;
    }
    let mut waited = SigSet::empty();
    waited.add(Signal::SIGCHLD);
    for signal in FORWARDED {
        waited.add(signal);
    }
    // Blocked before the fork, so nothing sent in between is lost; the
    // server gets its old mask back.
    let mut old = SigSet::empty();
    if let Err(err) =
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&waited), Some(&mut old))
    {
        eprintln!("execd: cannot block signals for the supervisor ({err}); serving unsupervised");
        return Role::Server;
    }
    let restore = |old: &SigSet| {
        let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(old), None);
    };
    // Not inherited by the server; set before it can start anything.
    if std::process::id() != 1 {
        if let Err(err) = prctl::set_child_subreaper(true) {
            eprintln!("execd: cannot become a child subreaper ({err}); orphans go to init");
        }
    }
    let cgroup = Cgroup::create();
    let supervisor = getpid();
    // SAFETY: no other thread exists yet (the caller's contract), so the
    // child may run any code.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            restore(&old);
            // If the supervisor is killed, shut down as on SIGTERM. Then
            // check it was not killed before this took effect.
            let _ = prctl::set_pdeathsig(Signal::SIGTERM);
            if getppid() != supervisor {
                eprintln!("execd: the supervisor is gone; not serving");
                std::process::exit(1);
            }
            if let Some(cgroup) = &cgroup {
                if let Err(err) = cgroup.join(std::process::id()) {
                    eprintln!("execd: cannot join the server's cgroup ({err})");
                }
            }
            Role::Server
        }
        Ok(ForkResult::Parent { child }) => {
            detach_stdio();
            let status = supervise(child, &waited);
            end_descendants(grace, cgroup.as_ref());
            if let Some(cgroup) = cgroup {
                cgroup.remove(Duration::from_secs(1));
            }
            Role::Exited(status)
        }
        Err(err) => {
            restore(&old);
            let _ = prctl::set_child_subreaper(false);
            if let Some(cgroup) = cgroup {
                cgroup.remove(Duration::ZERO);
            }
            eprintln!("execd: cannot fork the supervisor ({err}); serving unsupervised");
            Role::Server
        }
    }
}

/// Let go of stdin and stdout: they are the server's (`--listen stdio`
/// speaks on them; the URL is printed there), and its peer must see EOF
/// when the server closes them, not when the supervisor exits.
fn detach_stdio() {
    let Ok(null) = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    let _ = nix::unistd::dup2_stdin(null.as_fd());
    let _ = nix::unistd::dup2_stdout(null.as_fd());
}

/// While the server runs: reap whatever exits, forward signals, and return
/// the server's status once it is gone.
fn supervise(server: Pid, waited: &SigSet) -> ExitCode {
    loop {
        match waited.wait() {
            Ok(Signal::SIGCHLD) => {
                if let Some(code) = reap(Some(server)) {
                    return code;
                }
            }
            Ok(signal) => {
                let _ = kill(server, signal);
            }
            Err(_) => {}
        }
    }
}

/// Reap every child that has exited; `server`'s exit status once it is
/// among them.
fn reap(server: Option<Pid>) -> Option<ExitCode> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if Some(pid) == server => {
                return Some(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)));
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if Some(pid) == server => {
                return Some(ExitCode::from(128u8.saturating_add(signal as u8)));
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return None,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// The server is gone: SIGTERM every process left below the supervisor,
/// SIGKILL what is still there after `grace`, and reap them all.
fn end_descendants(grace: Duration, cgroup: Option<&Cgroup>) {
    let remaining = || {
        reap(None);
        let mut pids = descendants(getpid());
        if let Some(cgroup) = cgroup {
            pids.extend(cgroup.members());
            pids.sort_unstable();
            pids.dedup();
        }
        let populated = cgroup.is_some_and(Cgroup::is_populated);
        (!pids.is_empty() || populated).then_some(pids)
    };
    let Some(pids) = remaining() else {
        return;
    };
    for pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        // A stopped process acts on SIGTERM only once continued.
        let _ = kill(Pid::from_raw(pid), Signal::SIGCONT);
    }
    let deadline = Instant::now() + grace;
    while remaining().is_some() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        wait_for_child_exit(POLL.min(deadline - now));
    }
    let deadline = Instant::now() + KILL_PATIENCE;
    while let Some(pids) = remaining() {
        if Instant::now() >= deadline {
            eprintln!("execd: processes {pids:?} did not die on SIGKILL; leaving them");
            return;
        }
        if let Some(cgroup) = cgroup {
            cgroup.kill();
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        wait_for_child_exit(POLL);
    }
}

/// Sleep until a child exits (SIGCHLD, still blocked) or `timeout` passes.
fn wait_for_child_exit(timeout: Duration) {
    let mut child = SigSet::empty();
    child.add(Signal::SIGCHLD);
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos().into(),
    };
    // SAFETY: valid pointers to a sigset and a timespec; no siginfo wanted.
    unsafe { libc::sigtimedwait(child.as_ref(), std::ptr::null_mut(), &timeout) };
}

/// Every process below `root` by parentage, from one reading of `/proc`.
/// Empty if `/proc` is not this PID namespace's (its pids would be other
/// processes' here).
fn descendants(root: Pid) -> Vec<i32> {
    let own = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|link| link.to_str()?.parse::<u32>().ok());
    if own != Some(std::process::id()) {
        return Vec::new();
    }
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if let Some(ppid) = parent_of(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    let mut below = vec![root.as_raw()];
    while let Some(parent) = below.pop() {
        for &child in children.get(&parent).into_iter().flatten() {
            found.push(child);
            below.push(child);
        }
    }
    found
}

/// The parent pid in `/proc/PID/stat`, if the process still exists.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": the name may hold spaces and parentheses.
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
