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
    /// Measure only these parts (empty: every part).
    pub only: Vec<Part>,
}

/// A part of the run that `execd bench --only` can pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Server memory, idle and with idle processes.
    Memory,
    /// Connect, request round trip, spawn and PTY echo.
    Latency,
    /// The spawn row alone (also measured by `latency`).
    Spawn,
    /// Streaming a child's output, JSON and binary frames.
    Stream,
    /// Many processes started at once.
    Fanout,
    /// `fs/watch` latency.
    Watch,
    /// Streaming with an output window against without.
    Window,
    /// A cut connection to its first replayed byte.
    Resume,
    /// The local limits the other rows are compared with.
    Local,
    /// `cp` of a file and of a tree.
    Files,
    /// The OpenSSH rows.
    Ssh,
}

impl Part {
    pub const ALL: [Part; 11] = [
        Part::Memory,
        Part::Latency,
        Part::Spawn,
        Part::Stream,
        Part::Fanout,
        Part::Watch,
        Part::Window,
        Part::Resume,
        Part::Local,
        Part::Files,
        Part::Ssh,
    ];

    /// The name `--only` takes.
    pub fn name(self) -> &'static str {
        match self {
            Part::Memory => "memory",
            Part::Latency => "latency",
            Part::Spawn => "spawn",
            Part::Stream => "stream",
            Part::Fanout => "fanout",
            Part::Watch => "watch",
            Part::Window => "window",
            Part::Resume => "resume",
            Part::Local => "local",
            Part::Files => "files",
            Part::Ssh => "ssh",
        }
    }
}

impl std::str::FromStr for Part {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Part::ALL
            .into_iter()
            .find(|part| part.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Part::ALL.iter().map(|part| part.name()).collect();
                format!("no bench part {name:?} (parts: {})", names.join(", "))
            })
    }
}

impl BenchConfig {
    /// True if `part` is to be measured.
    pub fn wants(&self, part: Part) -> bool {
        self.only.is_empty() || self.only.contains(&part)
    }
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
    if config.wants(Part::Memory) {
        remote::measure_memory(config, &mut report).await?;
    }
    let spawn_only = !config.wants(Part::Latency) && config.wants(Part::Spawn);
    if config.wants(Part::Latency) || spawn_only {
        let latency_config = config.clone();
        report = tokio::task::spawn_blocking(move || {
            remote::measure_latency(&latency_config, spawn_only, &mut report).map(|()| report)
        })
        .await
        .map_err(|err| BenchError::Check(format!("the latency measurements failed: {err}")))??;
    }
    if config.wants(Part::Stream) {
        remote::measure_stream(config, &mut report).await?;
    }
    if config.wants(Part::Fanout) {
        fanout::measure(config, &mut report).await?;
    }
    if config.wants(Part::Watch) {
        watch::measure(config, &mut report).await?;
    }
    if config.wants(Part::Window) {
        resume::measure_window(config, &mut report).await?;
    }
    if config.wants(Part::Resume) {
        resume::measure_resume(config, &mut report).await?;
    }
    if config.wants(Part::Local) {
        local::measure(config, &mut report).await?;
    }
    if config.wants(Part::Files) && (config.copy_bytes > 0 || config.copy_files > 0) {
        files::measure(config, &mut report).await?;
    }
    if let (true, Some(target)) = (config.wants(Part::Ssh), &config.ssh) {
        ssh::measure(config, target, &mut report).await?;
    }
    Ok(report)
}
