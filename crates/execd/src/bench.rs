//! `execd bench`: measure a server speaking the execd protocol (ours by
//! default, started here so its memory can be read) against the local limit
//! and, when configured, OpenSSH. The work itself is in `execd-bench`.

use std::path::PathBuf;
use std::process::Stdio;

use clap::Args;
use execd_bench::ssh::SshTarget;
use execd_bench::{BenchConfig, Part};
use execd_transport::token::{Token, TOKEN_VARIABLE};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::connect_args::ConnectArgs;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server to measure; without it, `execd serve` is started on a free
    /// loopback port with a fresh token of its own (and process limits
    /// raised to fit --fanout). A --url server must allow --fanout
    /// processes per connection.
    #[arg(long)]
    url: Option<String>,
    /// Token and CA for the --url server.
    #[command(flatten)]
    connect: ConnectArgs,
    /// Pid of the server given by --url, if it runs here (for memory
    /// figures). For `execd serve` that is the child of the process started.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Repetitions of each latency measurement.
    #[arg(long, default_value_t = 300)]
    reps: usize,
    /// MiB streamed by the throughput measurement.
    #[arg(long, default_value_t = 1024)]
    stream_mib: u64,
    /// Processes started at once by the fan-out measurement.
    #[arg(long, default_value_t = 1000)]
    fanout: usize,
    /// MiB of the file the `cp` rows copy up and down (0 with
    /// --copy-files 0: no cp rows).
    #[arg(long, default_value_t = 512)]
    copy_mib: u64,
    /// Small files in the tree the `cp -r` rows copy up and back down.
    #[arg(long, default_value_t = 5000)]
    copy_files: usize,
    /// Port of a loopback sshd for the OpenSSH baseline (see bench/run.sh).
    #[arg(long, requires = "ssh_key")]
    ssh_port: Option<u16>,
    /// User for the OpenSSH baseline.
    #[arg(long, default_value = "root")]
    ssh_user: String,
    /// Private key for the OpenSSH baseline.
    #[arg(long)]
    ssh_key: Option<PathBuf>,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    markdown_out: Option<PathBuf>,
    /// Measure only these parts, comma-separated: memory, latency, spawn, stream,
    /// fanout, watch, window, resume, local, files, ssh.
    #[arg(long, value_delimiter = ',')]
    only: Vec<Part>,
}

pub async fn run(args: BenchArgs) -> Result<(), String> {
    let mut own_server = None;
    let mut connect = args.connect.options()?;
    let (url, server_pid) = match args.url {
        Some(url) => (url, args.server_pid),
        None => {
            let exe = std::env::current_exe().map_err(|err| format!("cannot find execd: {err}"))?;
            let token = Token::generate().map_err(|err| err.to_string())?;
            // Room for the fan-out (and the idle processes of the memory
            // row) on one connection, past the per-connection default.
            let limit = (args.fanout + 64).max(1024).to_string();
            let mut child = tokio::process::Command::new(exe)
                .args(["serve", "--listen", "ws://127.0.0.1:0"])
                .args(["--max-processes", &limit])
                .args(["--max-processes-per-connection", &limit])
                .env(TOKEN_VARIABLE, token.as_str())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|err| format!("cannot start execd serve: {err}"))?;
            let stdout = child.stdout.take().ok_or("execd serve has no stdout")?;
            let url = BufReader::new(stdout)
                .lines()
                .next_line()
                .await
                .map_err(|err| format!("reading the server URL: {err}"))?
                .ok_or("execd serve exited before printing its URL")?;
            // `execd serve` is the supervisor; the server is its child.
            let pid = child.id().and_then(server_below);
            own_server = Some(child);
            connect.token = Some(token);
            (url, pid)
        }
    };
    let ssh = match (args.ssh_port, args.ssh_key) {
        (Some(port), Some(identity)) => Some(SshTarget {
            port,
            user: args.ssh_user,
            identity,
        }),
        _ => None,
    };
    let config = BenchConfig {
        url,
        connect,
        server_pid,
        reps: args.reps.max(1),
        stream_bytes: args.stream_mib << 20,
        fanout: args.fanout,
        copy_bytes: args.copy_mib << 20,
        copy_files: args.copy_files,
        ssh,
        command_line: std::env::args().collect::<Vec<_>>().join(" "),
        markdown_out: args.markdown_out.clone(),
        only: args.only,
    };
    let report = execd_bench::run(&config)
        .await
        .map_err(|err| err.to_string())?;
    let markdown = report.markdown();
    print!("{markdown}");
    if let Some(path) = &args.markdown_out {
        std::fs::write(path, &markdown)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
    }
    drop(own_server);
    Ok(())
}

/// The child of `supervisor` (the one process `execd serve` forks: the
/// server), found in `/proc`.
fn server_below(supervisor: u32) -> Option<u32> {
    let supervisor = supervisor.to_string();
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid ...": the name may hold spaces.
            let ppid = stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?;
            (ppid == supervisor).then(|| entry.file_name().to_str()?.parse().ok())?
        })
}
