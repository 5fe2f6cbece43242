//! The fan-out row: `n` copies of `sh -c "printf …"` started at once, every
//! output checked, until the last has closed; over the protocol and, as the
//! baseline, straight from this process with `tokio::process`. The two
//! alternate, [`RUNS`] times each, and the medians are compared.
//!
//! The baseline is the fastest spawn std offers: the program by absolute
//! path (with a bare name and a `PATH` of the child's own, std falls back to
//! `fork`), the same argv[0], argv and environment as the server is given.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use execd_environment::Environment;
use tokio::task::JoinSet;

use crate::process::drain;
use crate::process::{params, ENV};
use crate::report::Report;
use crate::stats::summarize;
use crate::{io_error, BenchConfig, BenchError};

/// Runs of each side; the row reports their medians.
pub const RUNS: usize = 3;

const SCRIPT: &str = "printf 'one\\ntwo\\nthree\\n'";
const EXPECTED: &[u8] = b"one\ntwo\nthree\n";

/// The row's name for `n` processes.
pub fn row(n: usize) -> String {
    format!("fan-out: {n} × `sh -c printf` at once → all closed, output checked (local: tokio::process)")
}

/// Measure the row: execd and the local baseline, alternating.
pub async fn measure(config: &BenchConfig, report: &mut Report) -> Result<(), BenchError> {
    let n = config.fanout;
    if n == 0 {
        return Ok(());
    }
    let env = &crate::remote::connect(config, true).await?;
    let sh = find_program("sh")?;
    let (mut execd, mut local) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        execd.push(over_protocol(env, n, run).await?);
        local.push(locally(&sh, n).await?);
    }
    let row = report.latency(&row(n));
    row.execd = summarize(&execd);
    row.local = summarize(&local);
    report.note(
        "fan-out row",
        format!("median of {RUNS} runs each (execd's and the local runs alternate)"),
    );
    Ok(())
}

/// `n` starts over one connection, all in flight at once.
async fn over_protocol(env: &Environment, n: usize, run: usize) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let env = env.clone();
        tasks.spawn(async move {
            let id = format!("fan{run}-{i}");
            let mut process = env
                .exec
                .start(params(id.clone(), &["sh", "-c", SCRIPT], false))
                .await?;
            let drained = drain(&mut process.events, true).await?;
            check(&id, &drained.output, drained.exit_code)
        });
    }
    join_all(tasks).await?;
    Ok(started.elapsed())
}

/// The same `n` processes started here, each collected by a task.
async fn locally(sh: &Path, n: usize) -> Result<Duration, BenchError> {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let child = tokio::process::Command::new(sh)
            .arg0("sh")
            .args(["-c", SCRIPT])
            .env_clear()
            .envs(ENV)
            .current_dir("/")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io_error(format!("starting {}", sh.display())))?;
        tasks.spawn(async move {
            let output = child
                .wait_with_output()
                .await
                .map_err(io_error("collecting a local child"))?;
            check(&format!("local{i}"), &output.stdout, output.status.code())
        });
    }
    join_all(tasks).await?;
    Ok(started.elapsed())
}

fn check(id: &str, output: &[u8], exit_code: Option<i32>) -> Result<(), BenchError> {
    if output != EXPECTED || exit_code != Some(0) {
        return Err(BenchError::Check(format!(
            "{id}: wrong output {:?} (exit {exit_code:?})",
            String::from_utf8_lossy(output)
        )));
    }
    Ok(())
}

async fn join_all(mut tasks: JoinSet<Result<(), BenchError>>) -> Result<(), BenchError> {
    while let Some(result) = tasks.join_next().await {
        result.map_err(|err| BenchError::Check(format!("fan-out task failed: {err}")))??;
    }
    Ok(())
}

/// `program` looked up in the measured processes' `PATH`.
fn find_program(program: &str) -> Result<PathBuf, BenchError> {
    let path = ENV
        .iter()
        .find_map(|(key, value)| (*key == "PATH").then_some(*value))
        .unwrap_or_default();
    path.split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| BenchError::Check(format!("{program} is not in PATH {path}")))
}
