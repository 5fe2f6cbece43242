//! `execd serve` as a container's init (PID 1).
//!
//! The kernel hands every orphaned process in a PID namespace to its PID 1,
//! which must reap it or it stays a zombie; and PID 1 gets no default signal
//! actions (a SIGTERM it does not handle is ignored). A server whose tokio
//! runtime reaps only the children it spawned cannot be that process, so when
//! `execd serve` finds itself PID 1 it forks before anything else starts: the
//! parent stays a minimal init (reap every child, forward termination signals
//! to the server, exit with the server's status), the child is the server.

use std::process::ExitCode;

use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

/// Signals the init passes on to the server.
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// What the calling process is to do.
pub enum Role {
    /// Go on and serve.
    Server,
    /// The init is done: the server exited with this status.
    Exited(ExitCode),
}

/// Fork into init and server if this process is PID 1; otherwise do nothing.
/// Call it before any thread exists.
pub fn split_if_pid1() -> Role {
    if std::process::id() != 1 {
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
        eprintln!("execd: cannot block signals as init ({err}); serving without an init");
        return Role::Server;
    }
    // SAFETY: no other thread exists yet (the caller's contract), so the
    // child may run any code.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            Role::Server
        }
        Ok(ForkResult::Parent { child }) => Role::Exited(supervise(child, &waited)),
        Err(err) => {
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            eprintln!("execd: cannot fork as init ({err}); serving without an init");
            Role::Server
        }
    }
}

/// The init's loop: reap whatever exits, forward signals, and return the
/// server's status once it is gone.
fn supervise(server: Pid, waited: &SigSet) -> ExitCode {
    loop {
        match waited.wait() {
            Ok(Signal::SIGCHLD) => {
                if let Some(code) = reap(server) {
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

/// Reap every child that has exited; the server's exit status once it is
/// among them.
fn reap(server: Pid) -> Option<ExitCode> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == server => {
                return Some(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)));
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == server => {
                return Some(ExitCode::from(128u8.saturating_add(signal as u8)));
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return None,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}
