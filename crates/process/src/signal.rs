//! Signal names as they appear on the wire (`SIGTERM`; `TERM` is accepted
//! too), and the dispositions a child must not inherit: a signal the server
//! ignores (`SIG_IGN`, e.g. SIGQUIT or SIGINT ignored by whoever started it)
//! would stay ignored through exec, and `process/signal` would be accepted
//! and then have no effect on the program.

use nix::sys::signal::Signal;

/// The signals a client may send by name.
pub const SENDABLE: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGKILL,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// The name of a signal number, e.g. `SIGKILL`; unknown numbers read `SIG<n>`.
pub fn name_of(signo: i32) -> String {
    match Signal::try_from(signo) {
        Ok(signal) => signal.as_str().to_string(),
        Err(_) => format!("SIG{signo}"),
    }
}

/// Parse a sendable signal name, with or without the `SIG` prefix, any case.
pub fn parse(name: &str) -> Option<Signal> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    SENDABLE
        .iter()
        .copied()
        .find(|s| s.as_str().strip_prefix("SIG") == Some(bare))
}

/// The sendable signals this process ignores (`SIG_IGN`), which a child
/// would inherit through exec. Read now: the server's own dispositions may
/// change (a signal handler installed later).
pub fn ignored_sendable() -> Vec<libc::c_int> {
    SENDABLE
        .iter()
        .map(|signal| *signal as libc::c_int)
        .filter(|&signo| {
            // SAFETY: with a null new action, sigaction only reads the
            // current one into `current`, which is a valid, writable struct.
            let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
            let rc = unsafe { libc::sigaction(signo, std::ptr::null(), &mut current) };
            rc == 0 && current.sa_sigaction == libc::SIG_IGN
        })
        .collect()
}

/// Go on ignoring the sendable signals this process ignores, through a
/// handler that does nothing instead of `SIG_IGN`: exec resets a handler to
/// the default, so even a program started by something that knows nothing
/// of this (a library's `Command`) starts with the default disposition.
/// For a server's start-up, before anything is spawned.
pub fn catch_ignored_sendable() {
    extern "C" fn nothing(_: libc::c_int) {}
    for signo in ignored_sendable() {
        // SAFETY: the handler does nothing (async-signal-safe); SA_RESTART
        // keeps system calls it interrupts from failing with EINTR.
        let mut quiet: libc::sigaction = unsafe { std::mem::zeroed() };
        quiet.sa_sigaction = nothing as extern "C" fn(libc::c_int) as libc::sighandler_t;
        quiet.sa_flags = libc::SA_RESTART;
        unsafe { libc::sigaction(signo, &quiet, std::ptr::null_mut()) };
    }
}

/// In a child between fork and exec: give `signals` their default
/// disposition, so that the program can be interrupted, terminated and so on
/// as a client asks. Only `sigaction` runs (async-signal-safe); SIGKILL
/// cannot be ignored, and resetting to the default never fails for the rest.
pub fn restore_defaults(signals: &[libc::c_int]) -> std::io::Result<()> {
    for &signo in signals {
        // SAFETY: SIG_DFL installs no handler; the struct is fully initialised.
        let mut default: libc::sigaction = unsafe { std::mem::zeroed() };
        default.sa_sigaction = libc::SIG_DFL;
        if unsafe { libc::sigaction(signo, &default, std::ptr::null_mut()) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_signals_are_caught_by_a_handler_that_does_nothing() {
        let usr2 = Signal::SIGUSR2 as libc::c_int;
        // SAFETY: SIG_IGN for SIGUSR2, which nothing else in this test
        // binary uses.
        unsafe { libc::signal(usr2, libc::SIG_IGN) };
        assert!(ignored_sendable().contains(&usr2));
        catch_ignored_sendable();
        assert!(!ignored_sendable().contains(&usr2));
        // Still ignored in effect: the process lives on.
        nix::sys::signal::raise(Signal::SIGUSR2).expect("raise");
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(name_of(9), "SIGKILL");
        assert_eq!(parse("term"), Some(Signal::SIGTERM));
        assert_eq!(parse("SIGWINCH"), Some(Signal::SIGWINCH));
        assert_eq!(parse("SIGSEGV"), None);
        assert_eq!(parse("bogus"), None);
    }
}
