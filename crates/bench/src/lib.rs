//! `execd bench`: how much a server speaking the execd protocol adds to
//! running a command, measured against baselines taken in the same run.
//!
//! - [`stats`]: samples → median / p90 / p99.
//! - [`process`]: a measured process's params and bounded reads.
//! - [`remote`]: the measurements over the protocol (any compatible server).
//! - [`echo`]: the PTY echo row, execd and its baselines measured round-robin.
//! - [`fanout`]: many processes at once, over the protocol and with `tokio::process`.
//! - [`files`]: `execd cp` streams vs `scp` and `tar | ssh`.
//! - [`local`]: the local limit: the same work done directly in this process.
//! - [`ssh`]: OpenSSH to a loopback sshd, when one is configured.
//! - [`stream`]: reading a child's zero stream, checked, as a rate.
//! - [`resume`]: streaming with an output window vs without, and resuming after a cut.
//! - [`watch`]: `fs/watch` latency, a write to its `fs/changed`.
//! - [`report`]: the table.

pub mod echo;
pub mod fanout;
pub mod files;
pub mod local;
pub mod process;
pub mod remote;
pub mod report;
pub mod resume;
pub mod ssh;
pub mod stats;
pub mod stream;
pub mod watch;

use std::path::PathBuf;

pub use report::Report;

/// What to measure and how much.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Server to measure.
    pub url: String,
    /// How to connect to it (token, CA file); each measurement sets
    /// `binary_output` itself.
    pub connect: execd_client::ConnectOptions,
    /// The server's pid, when it runs on this machine (for RSS figures).
    pub server_pid: Option<u32>,
    /// Repetitions of each latency measurement.
    pub reps: usize,
    /// Bytes streamed by the throughput measurement.
    pub stream_bytes: u64,
    /// Processes started at once by the fan-out measurement.
    pub fanout: usize,
    /// Size of the file the `cp` rows copy up and down.
    pub copy_bytes: u64,
    /// Files in the tree the `cp -r` row copies up.
    pub copy_files: usize,
    /// OpenSSH baseline, if configured.
    pub ssh: Option<ssh::SshTarget>,
    /// Where the bench binary lives (for describing the run).
    pub command_line: String,
    /// Write the Markdown report here as well as to stdout.
    pub markdown_out: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Env(#[from] execd_environment::EnvError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("check failed: {0}")]
    Check(String),
}

pub(crate) fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// Run every measurement and return the report.
pub async fn run(config: &BenchConfig) -> Result<Report, BenchError> {
    let mut report = Report::new(config);
    remote::measure_memory(config, &mut report).await?;
    let latency_config = config.clone();
    let mut report = tokio::task::spawn_blocking(move || {
        remote::measure_latency(&latency_config, &mut report).map(|()| report)
    })
    .await
    .map_err(|err| BenchError::Check(format!("the latency measurements failed: {err}")))??;
    remote::measure_bulk(config, &mut report).await?;
    watch::measure(config, &mut report).await?;
    resume::measure_window(config, &mut report).await?;
    resume::measure_resume(config, &mut report).await?;
    local::measure(config, &mut report).await?;
    if config.copy_bytes > 0 || config.copy_files > 0 {
        files::measure(config, &mut report).await?;
    }
    if let Some(target) = &config.ssh {
        ssh::measure(config, target, &mut report).await?;
    }
    Ok(report)
}
