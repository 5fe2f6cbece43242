//! The `execd` binary: a thin command line over the server crate (`serve`)
//! and the client library (`run`, `shell`, `cp`, `bench`).

mod allocator;
mod bench;
mod cgroup;
mod codex_limit_args;
mod connect_args;
mod cp;
mod cp_operand;
mod cp_side;
mod cp_stream;
mod exec_wrapper;
mod inherited_fds;
mod messages;
mod proxy_args;
mod reconnect_notice;
mod remote_command;
mod run;
mod serve;
mod shell;
mod socket_activation;
mod supervisor;
mod watch_limit_args;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "execd",
    version,
    about = "Run processes and touch files over WebSocket JSON-RPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the execd protocol (WebSocket on loopback by default, or stdio).
    Serve(Box<serve::ServeArgs>),
    /// Run a command on an execd server, like `ssh host cmd`: the words are
    /// run by the remote account's shell (`--exec`: as argv), its output
    /// comes here, local stdin goes to it, and its exit code (128+N for
    /// signal N, 127 not found, 126 not executable) becomes ours; 255 if
    /// execd itself fails.
    Run(run::RunArgs),
    /// An interactive login shell on an execd server, like `ssh host`: the
    /// remote account's shell, in its home, under a pseudo-terminal.
    Shell(shell::ShellArgs),
    /// Measure a server speaking the execd protocol against local and
    /// OpenSSH baselines.
    Bench(bench::BenchArgs),
    /// Run one command through the exec policy of the execd process tree
    /// this runs in (allowed: exec it; denied: exit 1; escalated: execd runs
    /// it outside the sandbox and we exit with its status).
    ExecWrapper(exec_wrapper::ExecWrapperArgs),
    /// Copy files or directories (-r) between this machine and execd servers
    /// (`ws://HOST:PORT:/path`, or `:/path` for the --url server).
    Cp(cp::CpArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Serve(args) => init_logging(args.log_format(), SERVE_LOG_FILTER),
        _ => init_logging(serve::LogFormat::Human, "warn"),
    }
    // The exec wrapper runs (and execs) without a runtime.
    let command = match cli.command {
        Command::ExecWrapper(args) => return exec_wrapper::run(args),
        command => command,
    };
    // A minimal supervisor stays in front of the server (and is the init
    // as a container's PID 1), so nothing the server started outlives it.
    let mut activated = None;
    if let Command::Serve(args) = &command {
        // Before the fork: systemd named this process (the supervisor).
        activated = match socket_activation::take() {
            Ok(listener) => listener,
            Err(err) => {
                eprintln!("execd serve: {err}");
                return ExitCode::FAILURE;
            }
        };
        // Nothing the server's parent left open (systemd's socket too)
        // reaches its programs.
        inherited_fds::close_on_exec();
        if let supervisor::Role::Exited(code) = supervisor::split(args.terminate_grace()) {
            return code;
        }
    }
    // Output held for acknowledgement, and file pieces, are freed in bulk:
    // keep that memory for reuse.
    allocator::keep_freed_memory();
    // The interactive shell drives one connection whose latency is what a
    // person feels: on one thread, a frame read by the connection's reader
    // wakes its consumer without a cross-core wakeup (PTY echo ~0.17 → ~0.12
    // ms). Everything else moves bulk data and uses every core (streaming
    // ~700 vs ~500 MB/s); see docs/BENCHMARKS.md.
    let runtime = match command {
        Command::Shell(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Runtime::new(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("execd: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        Command::Serve(args) => {
            let result = runtime.block_on(serve::run(*args, activated));
            // Whatever a blocking task may still be doing, exit now.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            report("execd", result)
        }
        Command::Run(args) => ExitCode::from(runtime.block_on(run::run(args, "execd run"))),
        Command::Shell(args) => ExitCode::from(runtime.block_on(shell::run(args))),
        Command::Bench(args) => report("execd bench", runtime.block_on(bench::run(args))),
        Command::Cp(args) => report("execd cp", runtime.block_on(cp::run(args))),
        Command::ExecWrapper(args) => exec_wrapper::run(args),
    }
}

/// `execd serve` says where its token file is (info, target `execd::serve`).
const SERVE_LOG_FILTER: &str = "warn,execd::serve=info";

/// Log to stderr, filtered by `RUST_LOG` or else `default_filter`. The JSON
/// format also turns on the audit events (`execd::audit`, info) by default.
fn init_logging(format: serve::LogFormat, default_filter: &str) {
    let filter = |default: String| {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default))
    };
    // A write that fails (stderr closed by whoever started us) is dropped:
    // tracing's fallback report of it would `eprintln!`, and panic.
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match format {
        serve::LogFormat::Human => builder
            .with_env_filter(filter(default_filter.into()))
            .init(),
        serve::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            // A request with W3C trace context runs in a span carrying its
            // trace id (execd_server::request_span): shown as `span`.
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter(format!(
                "{default_filter},{}=info",
                execd_server::audit::TARGET
            )))
            .init(),
    }
}

/// Exit 0, or print the error under `prefix` and exit 1.
fn report(prefix: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{prefix}: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;
    use execd_protocol::limits::Limit;

    /// Every limit's error names an `execd serve` flag: each must exist.
    #[test]
    fn every_limit_names_a_serve_flag() {
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").expect("serve subcommand");
        let flags: Vec<String> = serve
            .get_arguments()
            .filter_map(|arg| arg.get_long().map(|long| format!("--{long}")))
            .collect();
        for limit in Limit::ALL {
            assert!(
                flags.iter().any(|flag| flag == limit.flag()),
                "{} names {}, which execd serve does not have",
                limit.name(),
                limit.flag()
            );
        }
    }
}
