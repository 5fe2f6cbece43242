//! Signal names as they appear on the wire (`SIGTERM`; `TERM` is accepted too).

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(name_of(9), "SIGKILL");
        assert_eq!(parse("term"), Some(Signal::SIGTERM));
        assert_eq!(parse("SIGWINCH"), Some(Signal::SIGWINCH));
        assert_eq!(parse("SIGSEGV"), None);
        assert_eq!(parse("bogus"), None);
    }
}
