//! The PTY echo row: one keystroke to `cat` on a terminal until it comes
//! back, through execd, through a PTY of our own (the local limit) and
//! through ssh, measured round-robin — one keystroke through each, then the
//! next — so whatever the machine does meanwhile (a neighbour's load, vCPU
//! wakeups) lands on all three alike and the ratios stay fair.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use execd_environment::{Environment, StartedProcess};

use crate::process::{next_output, params, WAIT};
use crate::report::Report;
use crate::ssh::{SshMaster, SshTarget};
use crate::stats::summarize;
use crate::{io_error, BenchError};

pub const ROW: &str = "PTY echo, 1 byte";

/// What runs on each terminal: raw mode, no echo by the terminal itself, a
/// marker once that is set, then `cat`.
const SCRIPT: &str = "stty raw -echo; echo ready; exec cat";

/// Measure the row: execd always, OpenSSH when a target is given.
pub async fn measure(
    env: &Environment,
    ssh: Option<&SshTarget>,
    reps: usize,
    report: &mut Report,
) -> Result<(), BenchError> {
    let mut execd = RemoteEcho::open(env).await?;
    let mut local = TerminalEcho::local()?;
    let master = ssh.map(SshMaster::start).transpose()?;
    let mut over_ssh = match &master {
        Some(master) => Some(TerminalEcho::ssh(master)?),
        None => None,
    };
    // The baselines' keystrokes block this runtime's only thread, which is
    // harmless: nothing of execd's is in flight between its own keystrokes.
    let mut samples = [(); 3].map(|()| Vec::with_capacity(reps));
    for i in 0..reps {
        let byte = b'a' + (i % 26) as u8;
        samples[0].push(execd.once(byte).await?);
        samples[1].push(local.once(byte)?);
        if let Some(echo) = &mut over_ssh {
            samples[2].push(echo.once(byte)?);
        }
    }
    execd.close().await;
    let [execd, local, ssh] = samples;
    let row = report.latency(ROW);
    row.execd = summarize(&execd);
    row.local = summarize(&local);
    row.ssh = summarize(&ssh);
    Ok(())
}

/// `cat` under a PTY on the measured server.
struct RemoteEcho {
    started: StartedProcess,
}

impl RemoteEcho {
    async fn open(env: &Environment) -> Result<RemoteEcho, BenchError> {
        let argv = ["sh", "-c", SCRIPT];
        let mut started = env
            .exec
            .start(params("pty-echo".into(), &argv, true))
            .await?;
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("ready") {
            seen.extend(next_output(&mut started.events).await?);
        }
        Ok(RemoteEcho { started })
    }

    async fn once(&mut self, byte: u8) -> Result<Duration, BenchError> {
        let started = Instant::now();
        // Like a terminal: the echo is awaited, not the write's acknowledgement
        // (which is checked, but may arrive after the echo).
        let write = self.started.process.write(Bytes::copy_from_slice(&[byte]));
        let events = &mut self.started.events;
        let echo = async {
            loop {
                if next_output(events).await?.contains(&byte) {
                    return Ok::<_, BenchError>(started.elapsed());
                }
            }
        };
        let (written, echoed) = tokio::join!(write, echo);
        written?;
        echoed
    }

    async fn close(mut self) {
        let _ = self.started.process.terminate().await;
        let events = &mut self.started.events;
        let drained = async { while let Some(Ok(_)) = events.recv().await {} };
        let _ = tokio::time::timeout(WAIT, drained).await;
    }
}

/// `cat` on a terminal reached through plain descriptors: a PTY of our own,
/// or ssh's stdin and stdout. Killed when dropped.
struct TerminalEcho {
    input: Box<dyn Write>,
    output: Box<dyn Read>,
    child: Child,
    what: &'static str,
    buf: [u8; 4096],
}

impl TerminalEcho {
    /// The local limit: `cat` on a PTY this process opens.
    fn local() -> Result<TerminalEcho, BenchError> {
        let pty = nix::pty::openpty(None, None)
            .map_err(|e| io_error("opening a PTY")(std::io::Error::from(e)))?;
        let slave: OwnedFd = pty.slave;
        let clone = |fd: &OwnedFd| fd.try_clone().map_err(io_error("duplicating the PTY"));
        let mut command = Command::new("sh");
        command
            .args(["-c", SCRIPT])
            .stdin(Stdio::from(clone(&slave)?))
            .stdout(Stdio::from(clone(&slave)?))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls run in the child.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(io_error("starting cat on a PTY"))?;
        // The slave's copies in `command` must close, or the PTY never ends.
        drop(command);
        let master = std::fs::File::from(pty.master);
        let input = master
            .try_clone()
            .map_err(io_error("duplicating the PTY"))?;
        TerminalEcho::ready(Box::new(input), Box::new(master), child, "the local PTY")
    }

    /// OpenSSH: `ssh -tt` over the master connection.
    fn ssh(master: &SshMaster) -> Result<TerminalEcho, BenchError> {
        let mut child = master
            .command()
            .args(["-tt", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(io_error("ssh -tt cat"))?;
        let (Some(input), Some(output)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(BenchError::Check("ssh has no stdio pipes".into()));
        };
        TerminalEcho::ready(Box::new(input), Box::new(output), child, "ssh -tt")
    }

    /// Wait for the script's marker: the terminal is raw and `cat` runs.
    fn ready(
        input: Box<dyn Write>,
        output: Box<dyn Read>,
        child: Child,
        what: &'static str,
    ) -> Result<TerminalEcho, BenchError> {
        let mut echo = TerminalEcho {
            input,
            output,
            child,
            what,
            buf: [0; 4096],
        };
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("ready") {
            let more = echo.read()?;
            seen.extend_from_slice(more);
        }
        Ok(echo)
    }

    fn read(&mut self) -> Result<&[u8], BenchError> {
        let n = self
            .output
            .read(&mut self.buf)
            .map_err(io_error(format!("reading {}", self.what)))?;
        if n == 0 {
            return Err(BenchError::Check(format!("{} ended early", self.what)));
        }
        Ok(&self.buf[..n])
    }

    fn once(&mut self, byte: u8) -> Result<Duration, BenchError> {
        let started = Instant::now();
        self.input
            .write_all(&[byte])
            .and_then(|()| self.input.flush())
            .map_err(io_error(format!("writing {}", self.what)))?;
        while !self.read()?.contains(&byte) {}
        Ok(started.elapsed())
    }
}

impl Drop for TerminalEcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
