//! The OpenSSH baseline: the same work through `ssh` to a loopback sshd
//! (which `bench/run.sh` sets up with throwaway keys).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::report::{stream_rows, Report};
use crate::stats::summarize;
use crate::stream::zero_stream_rate;
use crate::{io_error, BenchConfig, BenchError};

/// Where and how to reach the loopback sshd.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub port: u16,
    pub user: String,
    pub identity: PathBuf,
}

impl SshTarget {
    /// `ssh` with options for a non-interactive, throwaway-key login,
    /// multiplexed over one master connection when `control` is given.
    fn command(&self, control: Option<&PathBuf>) -> Command {
        let mut command = Command::new("ssh");
        command
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-i")
            .arg(&self.identity)
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
            ]);
        if let Some(path) = control {
            command
                .arg("-o")
                .arg(format!("ControlPath={}", path.display()));
        }
        command.arg(format!("{}@127.0.0.1", self.user));
        command
    }
}

pub async fn measure(
    config: &BenchConfig,
    target: &SshTarget,
    report: &mut Report,
) -> Result<(), BenchError> {
    let bytes = config.stream_bytes;
    let config = config.clone();
    let target = target.clone();
    let (connect, spawn, echo, stream) =
        tokio::task::spawn_blocking(move || run_all(&config, &target))
            .await
            .map_err(|err| BenchError::Check(format!("ssh baseline task failed: {err}")))??;
    report.latency("connect + initialize").ssh = summarize(&connect);
    report.latency("spawn /bin/true → closed").ssh = summarize(&spawn);
    report.latency("PTY echo, 1 byte").ssh = summarize(&echo);
    for row in stream_rows(bytes) {
        report.throughput(&row).ssh = Some(stream);
    }
    report.note(
        "ssh rows",
        "connect = a new `ssh host true` (handshake, auth, session); spawn and the rest reuse one multiplexed master connection (ControlMaster)".into(),
    );
    Ok(())
}

type Samples = Vec<Duration>;

fn run_all(
    config: &BenchConfig,
    target: &SshTarget,
) -> Result<(Samples, Samples, Samples, f64), BenchError> {
    let reps = config.reps.min(100);
    let mut connect = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        check(target.command(None).arg("true").status(), "ssh true")?;
        connect.push(started.elapsed());
    }

    let control = std::env::temp_dir().join(format!("execd-bench-ssh-{}", std::process::id()));
    let mut master = target.command(Some(&control));
    master.args([
        "-o",
        "ControlMaster=yes",
        "-o",
        "ControlPersist=yes",
        "-N",
        "-f",
    ]);
    check(master.status(), "starting the ssh master connection")?;
    let result = (|| {
        let mut spawn = Vec::with_capacity(reps);
        for _ in 0..reps {
            let started = Instant::now();
            check(
                target.command(Some(&control)).arg("/bin/true").status(),
                "ssh /bin/true",
            )?;
            spawn.push(started.elapsed());
        }
        let echo = pty_echo(target, &control, config.reps)?;
        let stream = stream(target, &control, config.stream_bytes)?;
        Ok((connect, spawn, echo, stream))
    })();
    let mut stop = target.command(Some(&control));
    stop.args(["-O", "exit"]).stderr(Stdio::null());
    let _ = stop.status();
    result
}

fn check(status: std::io::Result<std::process::ExitStatus>, what: &str) -> Result<(), BenchError> {
    let status = status.map_err(io_error(what))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Check(format!("{what} failed: {status}")))
    }
}

fn pty_echo(target: &SshTarget, control: &PathBuf, reps: usize) -> Result<Samples, BenchError> {
    let mut child = target
        .command(Some(control))
        .args(["-tt", "stty raw -echo; echo ready; exec cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(io_error("ssh -tt cat"))?;
    let (Some(mut input), Some(mut output)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(BenchError::Check("ssh has no stdio pipes".into()));
    };
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("ready") {
        let n = output.read(&mut buf).map_err(io_error("reading ssh"))?;
        if n == 0 {
            return Err(BenchError::Check("ssh -tt ended early".into()));
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let mut samples = Vec::with_capacity(reps);
    for i in 0..reps {
        let byte = b'a' + (i % 26) as u8;
        let started = Instant::now();
        input.write_all(&[byte]).map_err(io_error("writing ssh"))?;
        input.flush().map_err(io_error("writing ssh"))?;
        loop {
            let n = output.read(&mut buf).map_err(io_error("reading ssh"))?;
            if n == 0 {
                return Err(BenchError::Check("ssh -tt ended early".into()));
            }
            if buf[..n].contains(&byte) {
                break;
            }
        }
        samples.push(started.elapsed());
    }
    let _ = child.kill();
    let _ = child.wait();
    Ok(samples)
}

fn stream(target: &SshTarget, control: &PathBuf, bytes: u64) -> Result<f64, BenchError> {
    let mut command = target.command(Some(control));
    command.arg(format!("head -c {bytes} /dev/zero"));
    zero_stream_rate(command, bytes, "ssh head")
}
