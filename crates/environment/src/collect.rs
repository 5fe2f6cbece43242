//! Running a process to the end and keeping everything it printed, by
//! stream: the simplest way to use a [`StartedProcess`](super::StartedProcess)'s events.

use crate::{EnvError, EventReceiver};
use execd_protocol::event::{EventKind, ExitInfo};
use execd_protocol::process::OutputStream;

/// Everything a process printed, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// The merged stream of a PTY process.
    pub pty: Vec<u8>,
    /// How the process ended, if it exited.
    pub exit: Option<ExitInfo>,
}

impl Collected {
    /// Standard output as text (lossy UTF-8).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error as text (lossy UTF-8).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The exit code (-1 for a signal); `None` if the process never exited.
    pub fn code(&self) -> Option<i32> {
        self.exit.as_ref().map(|exit| exit.code)
    }
}

/// Read a process's events until it closed. Unbounded: wrap it in a timeout
/// if the process may not end.
pub async fn collect(events: &mut EventReceiver) -> Result<Collected, EnvError> {
    let mut collected = Collected::default();
    loop {
        let event = events.recv().await.ok_or_else(|| {
            EnvError::ConnectionLost("the process's events ended before it closed".into())
        })??;
        match event.kind {
            EventKind::Output { stream, chunk } => match stream {
                OutputStream::Stdout => collected.stdout.extend_from_slice(&chunk),
                OutputStream::Stderr => collected.stderr.extend_from_slice(&chunk),
                OutputStream::Pty => collected.pty.extend_from_slice(&chunk),
            },
            EventKind::Exited(exit) => collected.exit = Some(exit),
            EventKind::Closed => return Ok(collected),
        }
    }
}
