//! `execd run`: run one command on an execd server, like `ssh host cmd`.
//!
//! Owns the command line of `run`, the forwarding of local stdin (then EOF)
//! to the process and of its output to local stdout/stderr byte for byte,
//! local signals and window size changes, raw mode of the local terminal
//! under `--tty`, and the mapping of how the process ended to this
//! program's exit code. What is started, in which environment and
//! directory, is `remote_command`'s; the wording of connection errors is
//! `messages`'. Built on the client library's environment traits.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Args;
use execd_client::manager::URL_VARIABLE;
use execd_client::{EnvError, ExecProcess, ExecServerClient, RemoteEnvironment, StartedProcess};
use execd_protocol::event::{EventKind, ExitInfo};
use execd_protocol::limits::Limit;
use execd_protocol::process::StartParams;
use execd_protocol::process::{OutputStream, TerminalSize, WriteStatus};
use nix::sys::signal::Signal;
use nix::sys::termios::{self, SetArg, Termios};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::connect_args::ConnectArgs;
use crate::messages::{connect_error, describe};
use crate::remote_command::{self, environment_name, parse_env_arg, variables, EnvArg, Launch};

/// Exit code for a failure of `execd run` itself (as `ssh` does).
const EXIT_FAILURE: u8 = 255;
/// Exit code for a command line that cannot be used (as clap does).
const EXIT_USAGE: u8 = 2;
/// Largest piece of local stdin sent in one `process/write`.
const STDIN_PIECE: usize = 64 * 1024;
/// Pieces of stdin read ahead of the remote side.
const STDIN_QUEUE: usize = 4;
/// How often a write answered `starting` is retried, and how far apart.
const STARTING_RETRIES: u32 = 100;
const STARTING_BACKOFF: Duration = Duration::from_millis(10);
/// Pauses before sending a chunk again that a full stdin queue refused.
const QUEUE_FULL_FIRST_PAUSE: Duration = Duration::from_millis(2);
const QUEUE_FULL_MAX_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, Args)]
#[command(
    override_usage = "execd run [OPTIONS] [--] <WORDS>...",
    after_long_help = RUN_HELP
)]
pub struct RunArgs {
    /// Server to run on (`ws://HOST:PORT`, `wss://HOST:PORT`, or
    /// `HOST:PORT` for ws://); defaults to $EXECD_URL.
    #[arg(long)]
    pub url: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Run under a pseudo-terminal; a local terminal on stdin is put in raw
    /// mode while the command runs.
    #[arg(long)]
    pub tty: bool,
    /// Run the words as argv, with no shell: the first is the program, each
    /// other word one argument, exactly as given.
    #[arg(long)]
    pub exec: bool,
    /// Working directory of the command on the server (absolute); default:
    /// the remote account's home.
    #[arg(long)]
    pub cwd: Option<String>,
    /// `K=V`: set a variable in the command's environment (repeatable;
    /// overrides the defaults: HOME, USER, LOGNAME, SHELL, PATH, LANG, LC_*,
    /// TERM). `NAME` (no `=`): run on the environment NAME of the
    /// environments file ($EXECD_ENVIRONMENTS, else
    /// $XDG_CONFIG_HOME/execd/environments.toml or
    /// ~/.config/execd/environments.toml): its URL, token and CA file.
    #[arg(long = "env", value_name = "K=V|NAME", value_parser = parse_env_arg)]
    pub env: Vec<EnvArg>,
    /// The command: its words are joined with spaces and run by the remote
    /// account's shell (`$SHELL -c`), as ssh does; with --exec, argv.
    #[arg(
        value_name = "WORDS",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
    /// Start the account's login shell instead of a command (`execd shell`).
    #[arg(skip)]
    pub login_shell: bool,
}

/// The man-page part of `execd run --help`.
const RUN_HELP: &str = "\
The command line:
  The words after the options (or after --) are joined with single spaces
  and run as `$SHELL -c \"<words>\"` by the remote account's login shell (as
  the server reports it; /bin/sh if it does not), as ssh does: pipes, globs,
  redirections and && work, and quoting is the remote shell's
  (execd run 'ls *.log | wc -l'). --exec runs the words as argv instead,
  with no shell, each word one argument exactly as given.

Environment of the command:
  HOME, USER, LOGNAME and SHELL of the account the server runs as; PATH
  (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin); LANG and
  LC_* from this side (ssh's default SendEnv); TERM under --tty (this
  side's, else xterm-256color). --env K=V adds or overrides. It starts in
  the account's home directory unless --cwd says otherwise.

Signals:
  Ctrl-C (SIGINT), SIGTERM and SIGHUP received here are sent to the remote
  process. A second one makes the server terminate it: SIGTERM to its
  process group, then SIGKILL after the server's grace period (execd serve
  --terminate-grace-ms, 2000 by default). A third gives up waiting and
  exits 255, leaving the server to clean up. Under --tty the local terminal
  is in raw mode, so Ctrl-C is a byte for the remote terminal instead, and
  window size changes (SIGWINCH) are forwarded.

Exit status:
  The command's exit status; 128+N if signal N ended it; 127 if the program
  was not found, 126 if it is not executable (with --exec; without it the
  remote shell answers the same); 2 for a bad command line (no server
  given); 255 if execd itself failed: cannot connect, not an execd server,
  connection lost, server shut down.";

/// Why `run` stops without the remote exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_FAILURE,
            message: message.into(),
        }
    }
}

/// Run the command; returns the exit code for this program. Errors are
/// printed here (after the terminal has been restored), under `name` (the
/// subcommand: `execd run`, `execd shell`).
pub async fn run(args: RunArgs, name: &str) -> u8 {
    match run_command(args, name).await {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("{name}: {}", failure.message);
            failure.code
        }
    }
}

async fn run_command(args: RunArgs, name: &str) -> Result<u8, Failure> {
    let environment = environment_name(&args.env).map_err(|message| Failure {
        code: EXIT_USAGE,
        message,
    })?;
    let (url, options) = crate::connect_args::resolve(environment, args.url.clone(), &args.connect)
        .map_err(Failure::new)?;
    let Some(url) = url else {
        return Err(Failure {
            code: EXIT_USAGE,
            message: format!(
                "no server given: pass --url ws://HOST:PORT, --env NAME, or set {URL_VARIABLE}"
            ),
        });
    };
    let stdin_is_terminal = std::io::stdin().is_terminal();
    let client = ExecServerClient::connect_with(&url, options)
        .await
        .map_err(|err| Failure::new(connect_error(&url, &EnvError::from(err))))?;
    let account = client.account().cloned();
    let launch = if args.login_shell {
        Launch::LoginShell
    } else if args.exec {
        Launch::Exec(args.command.clone())
    } else {
        Launch::ShellCommand(args.command.clone())
    };
    let (argv, arg0) = launch.argv(account.as_ref(), args.cwd.is_some());
    let program = argv.first().cloned().unwrap_or_default();
    let params = StartParams {
        process_id: process_id(),
        argv,
        cwd: remote_command::cwd(args.cwd.as_deref(), account.as_ref()),
        env: remote_command::environment(account.as_ref(), args.tty, &variables(&args.env)),
        tty: args.tty,
        pipe_stdin: true,
        arg0,
        size: if args.tty { window_size() } else { None },
        exec_policy: None,
        sandbox: None,
        network_policy: None,
        output_window: None,
    };
    let reconnects = tokio::spawn(crate::reconnect_notice::report(
        client.link_state(),
        args.tty,
        name.to_string(),
    ));
    let environment = RemoteEnvironment::new(client).into_environment();
    let StartedProcess {
        process,
        mut events,
    } = environment
        .exec
        .start(params)
        .await
        .map_err(|err| Failure {
            code: remote_command::start_failure_code(&err).unwrap_or(EXIT_FAILURE),
            message: format!("cannot start {program}: {}", describe(&err)),
        })?;

    // Restored when this function returns, whichever way.
    let _raw = if args.tty && stdin_is_terminal {
        RawMode::enable()
    } else {
        None
    };
    let stdin = tokio::spawn(forward_stdin(process.clone(), read_stdin()));
    let mut signals = LocalSignals::new(args.tty)?;
    let mut output = LocalOutput::new();
    let mut exit: Option<ExitInfo> = None;
    let mut interrupts = 0u32;

    let outcome = loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Ok(event)) => match event.kind {
                    EventKind::Output { stream, chunk } => {
                        if output.write(stream, &chunk) {
                            // Local stdout is gone (e.g. `| head`): like a local
                            // program getting SIGPIPE, the command ends.
                            terminate_quietly(&process);
                        }
                    }
                    EventKind::Exited(info) => {
                        exit = Some(info);
                        // Interrupted while it ran: whatever still holds its
                        // output is not waited for either.
                        if interrupts > 0 {
                            terminate_quietly(&process);
                        }
                    }
                    EventKind::Closed => break Ok(()),
                },
                Some(Err(err)) => break Err(Failure::new(describe(&err))),
                None => break Ok(()),
            },
            Some(local) = signals.next() => match local {
                LocalSignal::Forward(name) => {
                    interrupts += 1;
                    // Once the command has exited, only leftovers holding its
                    // output keep us waiting: an interrupt ends them (at
                    // once, or when the command exits, above).
                    let leftovers = exit.is_some();
                    match interrupts {
                        1 if !leftovers => spawn_quietly(process.clone(), move |p| async move {
                            p.signal(name).await.map(drop)
                        }),
                        1 | 2 => spawn_quietly(process.clone(), move |p| async move {
                            p.signal(name).await?;
                            p.terminate().await.map(drop)
                        }),
                        _ => break Err(Failure::new(format!(
                            "interrupted; giving up on process {}", process.id()
                        ))),
                    }
                }
                LocalSignal::WindowChanged => {
                    if let Some(size) = window_size() {
                        spawn_quietly(process.clone(), move |p| async move {
                            p.resize(size).await
                        });
                    }
                }
            },
        }
    };
    stdin.abort();
    reconnects.abort();
    outcome?;
    match exit {
        Some(info) => Ok(exit_code(&info)),
        None => Err(Failure::new(format!(
            "process {} ended without an exit status",
            process.id()
        ))),
    }
}

/// A process id unique enough for one connection.
fn process_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("run-{}-{nanos}", std::process::id())
}

/// The exit code, or 128+N when signal N ended the process.
fn exit_code(info: &ExitInfo) -> u8 {
    if let Some(number) = info.signal.as_deref().and_then(signal_number) {
        if let Ok(number) = u8::try_from(number) {
            return 128u8.saturating_add(number);
        }
    }
    u8::try_from(info.code).unwrap_or(EXIT_FAILURE)
}

/// `SIGTERM`, `TERM` or `SIG15` → 15.
fn signal_number(name: &str) -> Option<i32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    match Signal::from_str(&full) {
        Ok(signal) => Some(signal as i32),
        Err(_) => full["SIG".len()..].parse().ok().filter(|n| *n > 0),
    }
}

/// Terminate the process in the background; its events tell the outcome.
fn terminate_quietly(process: &Arc<dyn ExecProcess>) {
    spawn_quietly(
        process.clone(),
        |p| async move { p.terminate().await.map(drop) },
    );
}

/// Run `op` on the process in the background, ignoring its outcome: the
/// event stream reports what matters (exit, lost connection).
fn spawn_quietly<F, Fut>(process: Arc<dyn ExecProcess>, op: F)
where
    F: FnOnce(Arc<dyn ExecProcess>) -> Fut,
    Fut: std::future::Future<Output = Result<(), EnvError>> + Send + 'static,
{
    let future = op(process);
    tokio::spawn(async move {
        if let Err(err) = future.await {
            tracing::debug!(%err, "background process call failed");
        }
    });
}

/// Local stdout and stderr; a stream that failed is not written again.
///
/// Written through duplicates of descriptors 1 and 2, not `std::io::stdout()`:
/// that one is line-buffered and scans every chunk for a newline (4 % of all
/// CPU time streaming a gigabyte of zeros), and execd's chunks are already
/// as large as they come, so nothing needs buffering.
struct LocalOutput {
    /// `None` if descriptor 1 could not be duplicated (it is closed).
    stdout: Option<std::fs::File>,
    stdout_failed: bool,
    stderr: Option<std::fs::File>,
}

impl LocalOutput {
    fn new() -> LocalOutput {
        let dup =
            |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned().ok().map(std::fs::File::from);
        LocalOutput {
            stdout: dup(std::io::stdout().as_fd()),
            stdout_failed: false,
            stderr: dup(std::io::stderr().as_fd()),
        }
    }

    /// Write one chunk; true the first time stdout fails.
    fn write(&mut self, stream: OutputStream, chunk: &[u8]) -> bool {
        match stream {
            OutputStream::Stdout | OutputStream::Pty => {
                if self.stdout_failed {
                    return false;
                }
                let written = match &mut self.stdout {
                    Some(out) => out.write_all(chunk).is_ok(),
                    None => false,
                };
                if !written {
                    self.stdout_failed = true;
                    return true;
                }
            }
            OutputStream::Stderr => {
                if let Some(err) = &mut self.stderr {
                    if err.write_all(chunk).is_err() {
                        self.stderr = None;
                    }
                }
            }
        }
        false
    }
}

/// Read local stdin on its own thread (a blocking read cannot be cancelled,
/// so it must not hold up the runtime's shutdown); the channel ends at EOF or
/// on a read error (e.g. stdin closed), and the thread ends when the
/// receiver is dropped.
fn read_stdin() -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(STDIN_QUEUE);
    let reader = move || {
        let mut stdin = std::io::stdin();
        let mut buffer = vec![0u8; STDIN_PIECE];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) => return,
                Ok(n) => {
                    if tx
                        .blocking_send(Bytes::copy_from_slice(&buffer[..n]))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => {
                    tracing::debug!(%err, "local stdin is not readable; closing remote stdin");
                    return;
                }
            }
        }
    };
    if let Err(err) = std::thread::Builder::new()
        .name("execd-run-stdin".into())
        .spawn(reader)
    {
        // The sender went down with the closure: the remote stdin is closed.
        tracing::debug!(%err, "cannot start the stdin thread");
    }
    rx
}

/// Send local stdin to the process, then EOF. Stops early when the process
/// no longer takes input or the connection is gone. A full stdin queue on
/// the server (the program reads slower than we send) is waited out: the
/// same chunk is sent again, with a growing pause, for as long as it takes.
async fn forward_stdin(process: Arc<dyn ExecProcess>, mut input: mpsc::Receiver<Bytes>) {
    while let Some(chunk) = input.recv().await {
        let mut retries = 0;
        let mut pause = QUEUE_FULL_FIRST_PAUSE;
        loop {
            match process.write(chunk.clone()).await {
                Ok(WriteStatus::Accepted) => break,
                Ok(WriteStatus::Starting) if retries < STARTING_RETRIES => {
                    retries += 1;
                    tokio::time::sleep(STARTING_BACKOFF).await;
                }
                Err(EnvError::LimitExceeded(limit)) if limit.limit == Limit::StdinQueueBytes => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(QUEUE_FULL_MAX_PAUSE);
                }
                Ok(_) | Err(_) => return,
            }
        }
    }
    if let Err(err) = process.close_stdin().await {
        tracing::debug!(%err, "closing remote stdin failed");
    }
}

enum LocalSignal {
    /// Pass this signal on to the process (`INT`, `TERM`, `HUP`).
    Forward(&'static str),
    /// The local terminal was resized.
    WindowChanged,
}

/// Signals this program handles while the command runs.
struct LocalSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
    window: Option<tokio::signal::unix::Signal>,
}

impl LocalSignals {
    fn new(tty: bool) -> Result<LocalSignals, Failure> {
        let watch = |kind: SignalKind| {
            signal(kind).map_err(|err| Failure::new(format!("cannot watch signals: {err}")))
        };
        Ok(LocalSignals {
            interrupt: watch(SignalKind::interrupt())?,
            terminate: watch(SignalKind::terminate())?,
            hangup: watch(SignalKind::hangup())?,
            window: if tty {
                Some(watch(SignalKind::window_change())?)
            } else {
                None
            },
        })
    }

    async fn next(&mut self) -> Option<LocalSignal> {
        let LocalSignals {
            interrupt,
            terminate,
            hangup,
            window,
        } = self;
        let window = async {
            match window {
                Some(window) => window.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some(()) = interrupt.recv() => Some(LocalSignal::Forward("INT")),
            Some(()) = terminate.recv() => Some(LocalSignal::Forward("TERM")),
            Some(()) = hangup.recv() => Some(LocalSignal::Forward("HUP")),
            Some(()) = window => Some(LocalSignal::WindowChanged),
            else => None,
        }
    }
}

/// The size of the local terminal (stdin, stdout or stderr, first that is one).
fn window_size() -> Option<TerminalSize> {
    [
        std::io::stdin().as_fd(),
        std::io::stdout().as_fd(),
        std::io::stderr().as_fd(),
    ]
    .into_iter()
    .find_map(|fd| {
        use std::os::fd::AsRawFd;
        let mut size = nix::libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which
        // points to a live, writable `winsize`; the descriptor is borrowed
        // from an open standard stream.
        let rc = unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::TIOCGWINSZ, &mut size) };
        (rc == 0 && size.ws_row > 0 && size.ws_col > 0).then_some(TerminalSize {
            rows: size.ws_row,
            cols: size.ws_col,
        })
    })
}

/// The local terminal on stdin in raw mode; the saved mode comes back on drop.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    /// `None` (with a warning) if the terminal cannot be switched.
    fn enable() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let result = termios::tcgetattr(stdin.as_fd()).and_then(|saved| {
            let mut raw = saved.clone();
            termios::cfmakeraw(&mut raw);
            termios::tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &raw)?;
            Ok(RawMode { saved })
        });
        match result {
            Ok(raw) => Some(raw),
            Err(err) => {
                eprintln!("execd run: warning: cannot put the terminal in raw mode: {err}");
                None
            }
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        if let Err(err) = termios::tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &self.saved) {
            eprintln!("execd run: warning: cannot restore the terminal: {err}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_map_to_128_plus_their_number() {
        let killed = |name: &str| ExitInfo {
            code: -1,
            signal: Some(name.to_string()),
        };
        assert_eq!(exit_code(&killed("SIGTERM")), 143);
        assert_eq!(exit_code(&killed("SIGKILL")), 137);
        assert_eq!(exit_code(&killed("INT")), 130);
        assert_eq!(exit_code(&killed("SIG40")), 168);
        assert_eq!(exit_code(&killed("nonsense")), 255);
        let exited = |code| ExitInfo { code, signal: None };
        assert_eq!(exit_code(&exited(0)), 0);
        assert_eq!(exit_code(&exited(7)), 7);
        assert_eq!(exit_code(&exited(-1)), 255);
    }
}
