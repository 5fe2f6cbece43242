//! The OpenSSH baseline: the same work through `ssh` to a loopback sshd
//! (which `bench/run.sh` sets up with throwaway keys).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::report::{stream_rows, Report};
use crate::stats::summarize;
use crate::stream::zero_stream_median;
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
    let (connect, spawn, stream) = tokio::task::spawn_blocking(move || run_all(&config, &target))
        .await
        .map_err(|err| BenchError::Check(format!("ssh baseline task failed: {err}")))??;
    report.latency("connect + initialize").ssh = summarize(&connect);
    report.latency(crate::report::SPAWN_ROW).ssh = summarize(&spawn);
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
) -> Result<(Samples, Samples, f64), BenchError> {
    let reps = config.reps.min(100);
    let mut connect = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        check(target.command(None).arg("true").status(), "ssh true")?;
        connect.push(started.elapsed());
    }

    let master = SshMaster::start(target)?;
    let mut spawn = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        check(master.command().arg("/bin/true").status(), "ssh /bin/true")?;
        spawn.push(started.elapsed());
    }
    let stream = stream(&master, config.stream_bytes)?;
    Ok((connect, spawn, stream))
}

/// One multiplexed master connection (`ControlMaster`); later `ssh`
/// commands through it skip the handshake. Stopped when dropped.
pub struct SshMaster {
    target: SshTarget,
    control: PathBuf,
}

impl SshMaster {
    pub fn start(target: &SshTarget) -> Result<SshMaster, BenchError> {
        let control = std::env::temp_dir().join(format!(
            "execd-bench-ssh-{}-{}",
            std::process::id(),
            MASTERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
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
        Ok(SshMaster {
            target: target.clone(),
            control,
        })
    }

    /// `ssh` through this master; add the remote command.
    pub fn command(&self) -> Command {
        self.target.command(Some(&self.control))
    }

    /// `scp` through this master; add the source and destination (remote
    /// ones as `{host()}:PATH`).
    pub fn scp(&self) -> Command {
        let mut command = Command::new("scp");
        command
            .arg("-q")
            .arg("-P")
            .arg(self.target.port.to_string())
            .arg("-i")
            .arg(&self.target.identity)
            .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
            .arg("-o")
            .arg(format!("ControlPath={}", self.control.display()));
        command
    }

    /// `USER@127.0.0.1`, for scp operands.
    pub fn host(&self) -> String {
        format!("{}@127.0.0.1", self.target.user)
    }
}

impl Drop for SshMaster {
    fn drop(&mut self) {
        let mut stop = self.command();
        stop.args(["-O", "exit"]).stderr(Stdio::null());
        let _ = stop.status();
    }
}

/// Masters started by this process (each needs a control path of its own).
static MASTERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn check(status: std::io::Result<std::process::ExitStatus>, what: &str) -> Result<(), BenchError> {
    let status = status.map_err(io_error(what))?;
    if status.success() {
        Ok(())
    } else {
        Err(BenchError::Check(format!("{what} failed: {status}")))
    }
}

fn stream(master: &SshMaster, bytes: u64) -> Result<f64, BenchError> {
    let head = || {
        let mut command = master.command();
        command.arg(format!("head -c {bytes} /dev/zero"));
        command
    };
    zero_stream_median(head, bytes, "ssh head")
}
