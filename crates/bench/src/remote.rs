//! Measurements over the protocol. Only baseline methods and notifications
//! are used, so any server speaking the execd protocol can be measured.

use std::time::{Duration, Instant};

use bytes::Bytes;
use execd_client::{ConnectOptions, ExecServerClient, RemoteEnvironment};
use execd_environment::Environment;

use crate::process::{drain, params};
use crate::report::{binary_stream_row, stream_row, Report};
use crate::stats::summarize;
use crate::stream::median_rate;
use crate::{BenchConfig, BenchError};

/// Resident set size of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The latency rows, measured the way `execd shell` runs its client: on a
/// current-thread runtime of their own (a frame read by the connection's
/// reader wakes the waiting measurement on the same thread, with no
/// cross-core wakeup in between). With `spawn_only`, only the spawn row.
/// Blocks the calling thread.
pub fn measure_latency(
    config: &BenchConfig,
    spawn_only: bool,
    report: &mut Report,
) -> Result<(), BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(crate::io_error("starting a runtime for the latency rows"))?;
    runtime.block_on(async {
        if spawn_only {
            let env = connect(config, true).await?;
            spawn_row(&env, config.reps, report).await
        } else {
            latency(config, report).await
        }
    })
}

async fn latency(config: &BenchConfig, report: &mut Report) -> Result<(), BenchError> {
    let mut samples = Vec::with_capacity(config.reps);
    for _ in 0..config.reps {
        let started = Instant::now();
        let client = ExecServerClient::connect_with(&config.url, config.connect.clone())
            .await
            .map_err(execd_environment::EnvError::from)?;
        samples.push(started.elapsed());
        drop(client);
    }
    report.latency("connect + initialize").execd = summarize(&samples);

    let env = connect(config, true).await?;
    report.latency(crate::report::ROUND_TRIP).execd =
        summarize(&request_round_trip(&env, config.reps).await?);
    spawn_row(&env, config.reps, report).await?;
    crate::echo::measure(&env, config.ssh.as_ref(), config.reps, report).await?;
    Ok(())
}

async fn spawn_row(env: &Environment, reps: usize, report: &mut Report) -> Result<(), BenchError> {
    let (execd, local) = spawn(env, reps).await?;
    let row = report.latency(crate::report::SPAWN_ROW);
    row.execd = summarize(&execd);
    row.local = summarize(&local);
    Ok(())
}

/// Server memory, idle and with idle processes; measured first, before
/// anything leaves freed memory in the server's allocator.
pub async fn measure_memory(config: &BenchConfig, report: &mut Report) -> Result<(), BenchError> {
    let env = connect(config, true).await?;
    if let Some(rss) = config.server_pid.and_then(rss_bytes) {
        report.note("server RSS, idle, one connection", mib(rss));
    }
    idle_memory(&env, config, report).await
}

/// Throughput, measured the way `execd run` and `execd cp` run their
/// client: on the caller's (multi-threaded) runtime.
pub async fn measure_stream(config: &BenchConfig, report: &mut Report) -> Result<(), BenchError> {
    let env = connect(config, true).await?;
    // The JSON/base64 baseline protocol and execd's binary output frames, in turn.
    let json = connect(config, false).await?;
    let (mut json_rates, mut binary_rates) = (Vec::new(), Vec::new());
    for run in 0..crate::stream::RUNS {
        json_rates.push(stream(&json, format!("json{run}"), config.stream_bytes).await?);
        binary_rates.push(stream(&env, format!("binary{run}"), config.stream_bytes).await?);
    }
    report.note(
        "throughput rows",
        format!(
            "median of {} runs each (execd's JSON and binary runs alternate)",
            crate::stream::RUNS
        ),
    );
    report.throughput(&stream_row(config.stream_bytes)).execd = Some(median_rate(json_rates));
    report
        .throughput(&binary_stream_row(config.stream_bytes))
        .execd = Some(median_rate(binary_rates));
    Ok(())
}

/// A connection to the measured server, with or without binary output frames.
pub(crate) async fn connect(
    config: &BenchConfig,
    binary_output: bool,
) -> Result<Environment, BenchError> {
    let options = ConnectOptions {
        binary_output,
        ..config.connect.clone()
    };
    let client = ExecServerClient::connect_with(&config.url, options)
        .await
        .map_err(execd_environment::EnvError::from)?;
    Ok(RemoteEnvironment::new(client).into_environment())
}

/// The protocol's own cost: a `process/write` the server answers at once
/// (`stdinClosed`: the process has no stdin).
async fn request_round_trip(env: &Environment, reps: usize) -> Result<Vec<Duration>, BenchError> {
    let mut ghost = env
        .exec
        .start(params("rtt".into(), &["sleep", "3600"], false))
        .await?;
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        let status = ghost.process.write(Bytes::from_static(b"x")).await?;
        samples.push(started.elapsed());
        if status != execd_protocol::process::WriteStatus::StdinClosed {
            return Err(BenchError::Check(format!(
                "unexpected write status {status:?}"
            )));
        }
    }
    ghost.process.terminate().await?;
    drain(&mut ghost.events, false).await?;
    Ok(samples)
}

/// Spawn round trips over the protocol and, taken in turn with them (so
/// drift in the machine's load lands on both alike), local
/// fork+exec+wait of the same program.
async fn spawn(
    env: &Environment,
    reps: usize,
) -> Result<(Vec<Duration>, Vec<Duration>), BenchError> {
    let mut samples = Vec::with_capacity(reps);
    let mut local = Vec::with_capacity(reps);
    for i in 0..reps {
        local.push(crate::local::spawn_once()?);
        let started = Instant::now();
        let mut process = env
            .exec
            .start(params(format!("spawn{i}"), &["/bin/true"], false))
            .await?;
        let drained = drain(&mut process.events, false).await?;
        samples.push(started.elapsed());
        if drained.exit_code != Some(0) {
            return Err(BenchError::Check(format!(
                "/bin/true exited {:?}",
                drained.exit_code
            )));
        }
    }
    Ok((samples, local))
}

/// Bytes per second of `head -c N /dev/zero`, start to closed, every byte checked.
pub(crate) async fn stream(env: &Environment, id: String, bytes: u64) -> Result<f64, BenchError> {
    let count = bytes.to_string();
    let started = Instant::now();
    let mut process = env
        .exec
        .start(params(id, &["head", "-c", &count, "/dev/zero"], false))
        .await?;
    let drained = drain(&mut process.events, false).await?;
    let elapsed = started.elapsed();
    if drained.bytes != bytes {
        return Err(BenchError::Check(format!(
            "streamed {} bytes, expected {bytes}",
            drained.bytes
        )));
    }
    Ok(bytes as f64 / elapsed.as_secs_f64())
}

/// Server memory per idle process (each with stdin, stdout and stderr pipes).
async fn idle_memory(
    env: &Environment,
    config: &BenchConfig,
    report: &mut Report,
) -> Result<(), BenchError> {
    let n = config.fanout;
    let Some(pid) = config.server_pid else {
        return Ok(());
    };
    let before = rss_bytes(pid).unwrap_or(0);
    let mut idle = Vec::with_capacity(n);
    for i in 0..n {
        let mut p = params(format!("idle{i}"), &["sleep", "3600"], false);
        p.pipe_stdin = true;
        idle.push(env.exec.start(p).await?);
    }
    let during = rss_bytes(pid).unwrap_or(0);
    report.note(
        &format!("server RSS with {n} idle processes"),
        format!(
            "{} ({:.1} KiB per process beyond idle)",
            mib(during),
            during.saturating_sub(before) as f64 / n as f64 / 1024.0
        ),
    );
    for process in &idle {
        process.process.terminate().await?;
    }
    for mut process in idle {
        drain(&mut process.events, false).await?;
    }
    Ok(())
}
