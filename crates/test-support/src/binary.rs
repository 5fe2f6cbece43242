//! The built `execd` binary as tests drive it. A library cannot name the
//! binary (`CARGO_BIN_EXE_execd` exists only for the binary's own tests), so
//! the test file passes it in: `const EXECD: Execd =
//! Execd(env!("CARGO_BIN_EXE_execd"));`. Every child is killed when its
//! handle is dropped, and every wait on one is bounded. A server started
//! with [`Execd::serve_json_logs`] keeps its stderr: stopping it hands back
//! every log line, parsed.

use std::os::fd::{BorrowedFd, RawFd};
use std::process::{ExitStatus, Output, Stdio};

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::sys::signal::{kill, Signal};
use nix::unistd::{dup2_raw, Pid};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::files::TempDir;
use crate::procs::first_pid;
use crate::{RUN_TIMEOUT, TIMEOUT};

/// The `execd` binary under test, by path.
#[derive(Debug, Clone, Copy)]
pub struct Execd(pub &'static str);

impl Execd {
    pub fn path(&self) -> &'static str {
        self.0
    }

    /// `execd args`: stdin empty, stdout piped, stderr shown in the test's
    /// output, no inherited `EXECD_URL`, killed when dropped.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.0);
        command
            .args(args)
            .env_remove("EXECD_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        command
    }

    /// Run `execd args` to its end (bounded), capturing stdout and stderr.
    pub async fn output(&self, args: &[&str]) -> Output {
        output_of(self.command(args), None).await
    }

    /// `execd serve` on a free loopback port, once it has printed its URL.
    /// A connection's processes end with it, however it ends (`--detach-grace
    /// 0`), unless the test passes a `--detach-grace` of its own.
    pub async fn serve(&self) -> ExecdServer {
        self.serve_with(&[]).await
    }

    /// [`Execd::serve`] with more `execd serve` arguments.
    pub async fn serve_with(&self, extra: &[&str]) -> ExecdServer {
        ExecdServer::start(self.serve_command(extra)).await
    }

    /// `execd serve --log-format json` with `extra` arguments and its stderr
    /// captured; clients must present `token` (`$EXECD_TOKEN`), or with
    /// `None` it runs `--no-auth`. `$HOME` is a fresh directory (so no token
    /// file of the user's is read or made) and `$RUST_LOG` is unset.
    pub async fn serve_json_logs(&self, token: Option<&str>, extra: &[&str]) -> JsonLogServer {
        let home = TempDir::new("home");
        let mut args = extra.to_vec();
        args.extend(["--log-format", "json"]);
        if token.is_none() {
            args.push("--no-auth");
        }
        let mut command = self.serve_command(&args);
        command
            .env("HOME", home.path())
            .env_remove("EXECD_TOKEN")
            .env_remove("RUST_LOG")
            .stderr(Stdio::piped());
        if let Some(token) = token {
            command.env("EXECD_TOKEN", token);
        }
        let mut server = ExecdServer::start(command).await;
        // Read stderr all along, so the server never blocks on it.
        let mut stderr = server.child.stderr.take().expect("stderr is piped");
        let reading = tokio::spawn(async move {
            let mut text = String::new();
            stderr.read_to_string(&mut text).await.map(|_| text)
        });
        JsonLogServer {
            server,
            reading,
            _home: home,
        }
    }

    /// `execd serve` on a free loopback port with `extra` arguments; a
    /// connection's processes end with it unless `extra` says otherwise.
    /// [`ExecdServer::start`] runs it.
    pub fn serve_command(&self, extra: &[&str]) -> Command {
        let mut args = vec!["serve", "--listen", "ws://127.0.0.1:0"];
        if !extra.contains(&"--detach-grace") {
            args.extend(["--detach-grace", "0"]);
        }
        args.extend_from_slice(extra);
        self.command(&args)
    }
}

/// `command`'s program inherits `fd`, a descriptor of this process (close-on-exec
/// or not), as its descriptor `target`. Only the child's copy is made
/// inheritable, so programs that other tests of this process start
/// meanwhile do not inherit it.
pub fn pass_descriptor(command: &mut Command, fd: RawFd, target: RawFd) {
    // SAFETY: runs in the child between fork and exec, where it only calls
    // fcntl or dup2 (async-signal-safe) on descriptors the child holds.
    unsafe {
        command.pre_exec(move || {
            let from = BorrowedFd::borrow_raw(fd);
            if fd == target {
                fcntl(from, FcntlArg::F_SETFD(FdFlag::empty()))?;
            } else {
                // The copy belongs to the program: not closed here.
                std::mem::forget(dup2_raw(from, target)?);
            }
            Ok(())
        });
    }
}

/// A running `execd serve` child on a loopback port.
pub struct ExecdServer {
    pub child: Child,
    pub url: String,
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl ExecdServer {
    /// Spawn `command` (an `execd serve`) and wait (bounded) for its URL.
    pub async fn start(mut command: Command) -> ExecdServer {
        let mut child = command.spawn().expect("spawn execd serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let url = next_line(&mut stdout)
            .await
            .expect("execd serve closed stdout without printing its URL");
        let port = url
            .strip_prefix("ws://127.0.0.1:")
            .and_then(|port| port.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("first stdout line is not ws://127.0.0.1:PORT: {url:?}"));
        assert_ne!(port, 0, "execd printed port 0: {url}");
        ExecdServer {
            child,
            url,
            _stdout: stdout,
        }
    }
}

/// A running `execd serve --log-format json` ([`Execd::serve_json_logs`])
/// whose stderr is read all along; [`JsonLogServer::stop_and_logs`] ends it.
pub struct JsonLogServer {
    server: ExecdServer,
    reading: JoinHandle<std::io::Result<String>>,
    _home: TempDir,
}

impl JsonLogServer {
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// SIGTERM the server, wait (bounded) for it to exit with success, and
    /// hand back what it wrote to stderr, each line a JSON object.
    pub async fn stop_and_logs(mut self) -> JsonLog {
        let pid = self
            .server
            .child
            .id()
            .expect("execd serve is still running");
        let pid = Pid::from_raw(i32::try_from(pid).expect("a pid fits an i32"));
        kill(pid, Signal::SIGTERM).expect("SIGTERM execd serve");
        let status = wait_exit(&mut self.server.child, "SIGTERM").await;
        assert!(status.success(), "execd serve after SIGTERM: {status}");
        let text = tokio::time::timeout(TIMEOUT, self.reading)
            .await
            .unwrap_or_else(|_| panic!("execd serve's stderr did not end within {TIMEOUT:?}"))
            .expect("the stderr reader")
            .expect("read execd serve's stderr");
        let lines = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|err| panic!("stderr line is not JSON ({err}): {line}"))
            })
            .collect();
        JsonLog { text, lines }
    }
}

/// What an `execd serve --log-format json` wrote to stderr: the text as it
/// was, and each of its lines parsed.
pub struct JsonLog {
    pub text: String,
    pub lines: Vec<Value>,
}

impl JsonLog {
    /// The audit events (target `execd::audit`), in the order written.
    pub fn audit(&self) -> Vec<Value> {
        self.lines
            .iter()
            .filter(|line| line["target"] == "execd::audit")
            .cloned()
            .collect()
    }
}

/// Run `command` to its end (bounded by [`RUN_TIMEOUT`]) with stdout and
/// stderr captured, feeding it `input` (then EOF) if given.
pub async fn output_of(mut command: Command, input: Option<&[u8]>) -> Output {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    if input.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().expect("spawn execd");
    let feeding = match (input, child.stdin.take()) {
        (Some(input), Some(mut stdin)) => {
            let input = input.to_vec();
            Some(tokio::spawn(async move {
                stdin.write_all(&input).await.expect("write to execd stdin");
                // Dropping `stdin` closes it: EOF for execd.
            }))
        }
        _ => None,
    };
    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("execd did not finish within {RUN_TIMEOUT:?}"))
        .expect("wait for execd");
    if let Some(feeding) = feeding {
        feeding.await.expect("stdin feeder");
    }
    output
}

pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Next line of a child's stdout (bounded); `None` at its end.
pub async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> Option<String> {
    tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("no line from execd within {TIMEOUT:?}"))
        .expect("read execd stdout")
}

/// Wait (bounded) for `child` to exit after `what` should have ended it.
pub async fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    tokio::time::timeout(TIMEOUT, child.wait())
        .await
        .unwrap_or_else(|_| panic!("execd did not exit within {TIMEOUT:?} after {what}"))
        .expect("wait for execd")
}

/// The pid that `child` (stdout piped) printed as its first line.
pub async fn printed_pid(child: &mut Child) -> i32 {
    let stdout = child.stdout.take().expect("stdout is piped");
    let line = next_line(&mut BufReader::new(stdout).lines())
        .await
        .expect("the child ended before printing a pid");
    first_pid(&line)
}
