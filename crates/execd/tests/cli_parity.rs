//! The client subcommands at ssh/scp parity (issue 15), end to end with the
//! built `execd` binary against real `execd serve` children: the words of
//! `run` go to the remote account's shell (`--exec`: argv), 127/126 for a
//! program not found / not executable, `cp` keeps modes (and times with
//! `-p`), the remote environment and directory come from the server's
//! account, the connection messages (nobody there, wrong scheme, not an
//! execd server, server shut down), the start and stop lines of `execd
//! serve`, and the man-page parts of `--help`.
//!
//! Every wait is bounded (`TIMEOUT`, `RUN_TIMEOUT`); every child is killed
//! when its handle is dropped.

use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime};

use execd_test_support::binary::{next_line, wait_exit};
use execd_test_support::procs::child_of;
use execd_test_support::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));

/// `execd SUBCOMMAND --url URL ARGS...`.
fn on(subcommand: &str, url: &str, args: &[&str]) -> Command {
    let mut all = vec![subcommand, "--url", url];
    all.extend_from_slice(args);
    EXECD.command(&all)
}

async fn run(url: &str, args: &[&str]) -> Output {
    output_of(on("run", url, args), None).await
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The command exited with `code` (its stderr shown if not).
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout_of(output),
        stderr_of(output)
    );
}

fn assert_stderr_has(output: &Output, wanted: &str) {
    let stderr = stderr_of(output);
    assert!(stderr.contains(wanted), "stderr lacks {wanted:?}: {stderr}");
}

/// The account this test (and so the servers it starts) runs as.
fn account() -> nix::unistd::User {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .expect("read the user database")
        .expect("this user has an entry")
}

// 1. The command line -------------------------------------------------------

#[tokio::test]
async fn run_hands_the_words_to_the_remote_shell() {
    let server = EXECD.serve().await;
    let dir = TempDir::new("parity-glob");
    for name in ["a.log", "b.log", "c.txt"] {
        std::fs::write(dir.join(name), b"x").expect("write file");
    }
    let cwd = dir.text("");
    // A pipeline and a glob, as one word (quoted locally, as with ssh).
    let output = run(&server.url, &["--cwd", &cwd, "--", "ls *.log | wc -l"]).await;
    assert_exit(&output, 0);
    assert_eq!(stdout_of(&output).trim(), "2");
    // Separate words are joined with spaces, so `&&` works between them.
    let output = run(&server.url, &["--", "echo", "one", "&&", "echo", "two"]).await;
    assert_exit(&output, 0);
    assert_eq!(stdout_of(&output), "one\ntwo\n");
    // Without `--`: the first word that is not an option starts the command.
    let output = run(&server.url, &["echo $((6 * 7))"]).await;
    assert_exit(&output, 0);
    assert_eq!(stdout_of(&output), "42\n");
}

#[tokio::test]
async fn run_exec_passes_argv_exactly() {
    let server = EXECD.serve().await;
    let output = run(
        &server.url,
        &["--exec", "--", "printf", "[%s]\\n", "a  b", "*", "$HOME"],
    )
    .await;
    assert_exit(&output, 0);
    assert_eq!(stdout_of(&output), "[a  b]\n[*]\n[$HOME]\n");
    // The same words through the shell are split and expanded.
    let output = run(&server.url, &["--", "printf", "'[%s]\\n'", "a  b"]).await;
    assert_exit(&output, 0);
    assert_eq!(stdout_of(&output), "[a]\n[b]\n");
}

// 2. Exit status -------------------------------------------------------------

#[tokio::test]
async fn missing_and_unexecutable_programs_exit_127_and_126() {
    let server = EXECD.serve().await;
    let dir = TempDir::new("parity-126");
    let script = dir.join("not-executable.sh");
    std::fs::write(&script, b"#!/bin/sh\necho ran\n").expect("write script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let script = dir.text("not-executable.sh");

    let output = run(&server.url, &["--exec", "--", "no-such-command-x"]).await;
    assert_exit(&output, 127);
    assert_stderr_has(
        &output,
        "execd run: cannot start no-such-command-x: program \"no-such-command-x\" not found",
    );
    let output = run(&server.url, &["--exec", "--", &script]).await;
    assert_exit(&output, 126);
    assert_stderr_has(&output, "is not executable");
    // Through the shell, the shell answers the same.
    let output = run(&server.url, &["--", "no-such-command-x"]).await;
    assert_exit(&output, 127);
    let output = run(&server.url, &["--", &script]).await;
    assert_exit(&output, 126);
    // A command's own status is passed on, 255 included.
    let output = run(&server.url, &["--", "exit 255"]).await;
    assert_exit(&output, 255);
}

// 3. cp ----------------------------------------------------------------------

fn mode_of(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

fn mtime_of(path: &std::path::Path) -> SystemTime {
    std::fs::metadata(path)
        .expect("stat")
        .modified()
        .expect("mtime")
}

fn atime_of(path: &std::path::Path) -> SystemTime {
    std::fs::metadata(path)
        .expect("stat")
        .accessed()
        .expect("atime")
}

/// Set a file's access and modification times.
fn set_times(path: &std::path::Path, accessed: SystemTime, modified: SystemTime) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .or_else(|_| std::fs::File::open(path))
        .expect("open to set times");
    let times = std::fs::FileTimes::new()
        .set_accessed(accessed)
        .set_modified(modified);
    file.set_times(times).expect("set times");
}

#[tokio::test]
async fn cp_keeps_mode_bits_and_with_p_times() {
    let server = EXECD.serve().await;
    let dir = TempDir::new("parity-cp");
    let tool = dir.join("tool.sh");
    std::fs::write(&tool, b"#!/bin/sh\necho tool\n").expect("write");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let old_modified = SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000_000_123);
    let old_accessed = SystemTime::UNIX_EPOCH + Duration::from_millis(1_100_000_000_456);
    set_times(&tool, old_accessed, old_modified);

    // To the server: the mode is kept, the times are not.
    let remote = dir.text("on-server.sh");
    let output = EXECD
        .output(&[
            "cp",
            &tool.display().to_string(),
            &format!("{}:{remote}", server.url),
        ])
        .await;
    assert_exit(&output, 0);
    assert!(
        output.stderr.is_empty(),
        "no summary off a terminal: {}",
        stderr_of(&output)
    );
    assert_eq!(mode_of(&dir.join("on-server.sh")), 0o750);
    assert_ne!(mtime_of(&dir.join("on-server.sh")), old_modified);
    // So the copy runs there.
    let output = run(&server.url, &["--exec", "--", &remote]).await;
    assert_exit(&output, 0);
    assert_eq!(stdout_of(&output), "tool\n");

    // Back from the server with -p: mode and both times (reading the
    // file above moved its access time).
    set_times(&tool, old_accessed, old_modified);
    let back = dir.join("back.sh");
    let output = EXECD
        .output(&[
            "cp",
            "-p",
            &format!("{}:{}", server.url, tool.display()),
            &back.display().to_string(),
        ])
        .await;
    assert_exit(&output, 0);
    assert_eq!(mode_of(&back), 0o750);
    assert_eq!(mtime_of(&back), old_modified);
    assert_eq!(atime_of(&back), old_accessed);

    // A tree: a read-only directory keeps its mode (set after its contents).
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("locked")).expect("mkdir");
    std::fs::write(tree.join("locked/inside"), b"in").expect("write");
    std::fs::set_permissions(
        tree.join("locked/inside"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    std::fs::set_permissions(tree.join("locked"), std::fs::Permissions::from_mode(0o555))
        .expect("chmod");
    let copied = dir.join("tree-copy");
    let output = EXECD
        .output(&[
            "cp",
            "-r",
            &tree.display().to_string(),
            &format!("{}:{}", server.url, copied.display()),
        ])
        .await;
    assert_exit(&output, 0);
    assert_eq!(mode_of(&copied.join("locked")), 0o555);
    assert_eq!(mode_of(&copied.join("locked/inside")), 0o600);
    assert_eq!(
        std::fs::read(copied.join("locked/inside")).expect("read"),
        b"in"
    );
    for locked in [tree.join("locked"), copied.join("locked")] {
        // Let TempDir remove them even when not root.
        std::fs::set_permissions(locked, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

#[tokio::test]
async fn cp_prints_one_summary_line_on_a_terminal() {
    let server = EXECD.serve().await;
    let dir = TempDir::new("parity-cp-summary");
    std::fs::write(dir.join("big.bin"), noise(2 * 1024 * 1024, 7)).expect("write");
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut command = EXECD.command(&[
        "cp",
        &dir.text("big.bin"),
        &format!("{}:{}", server.url, dir.text("copy.bin")),
    ]);
    command.stderr(Stdio::from(pty.slave));
    let mut child = command.spawn().expect("spawn execd cp");
    // Only the child holds the terminal now: EOF (EIO) comes when it exits.
    drop(command);
    let status = wait_exit(&mut child, "the copy").await;
    assert_eq!(status.code(), Some(0));
    let mut master = std::fs::File::from(pty.master);
    let read = tokio::task::spawn_blocking(move || {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut master, &mut text);
        String::from_utf8_lossy(&text).into_owned()
    });
    let text = tokio::time::timeout(TIMEOUT, read)
        .await
        .expect("the terminal's output within the timeout")
        .expect("reader");
    // After the bar (cleared with \r and an erase-line sequence).
    let start = text
        .find("1 file, 2.00 MiB in ")
        .unwrap_or_else(|| panic!("no summary line on the terminal: {text:?}"));
    let summary = text[start..].lines().next().unwrap_or_default();
    assert!(summary.ends_with("/s)"), "{summary:?}");
    assert!(
        text.ends_with("/s)\r\n"),
        "the summary is the last line: {text:?}"
    );
    assert_eq!(
        std::fs::read(dir.join("copy.bin")).expect("copy"),
        noise(2 * 1024 * 1024, 7)
    );
}

// 4. Environment and directory ------------------------------------------------

#[tokio::test]
async fn run_gets_the_accounts_environment_and_starts_in_its_home() {
    let server = EXECD.serve().await;
    let me = account();
    let mut command = on(
        "run",
        &server.url,
        &[
            "--",
            "echo \"$HOME|$USER|$LOGNAME|$SHELL|$LANG|$LC_TIME\"; pwd; printenv TERM || echo no TERM",
        ],
    );
    command
        .env("LANG", "C.UTF-8")
        .env("LC_TIME", "C")
        .env("TERM", "local-term");
    let output = output_of(command, None).await;
    assert_exit(&output, 0);
    let home = me.dir.display().to_string();
    let name = me.name.clone();
    let shell = me.shell.display().to_string();
    // No PTY: no TERM.
    assert_eq!(
        stdout_of(&output),
        format!("{home}|{name}|{name}|{shell}|C.UTF-8|C\n{home}\nno TERM\n")
    );

    // Under a PTY, this side's TERM.
    let mut command = on("run", &server.url, &["--tty", "--", "printenv TERM"]);
    command.env("TERM", "local-term");
    let output = output_of(command, None).await;
    assert_exit(&output, 0);
    assert_eq!(stdout_of(&output).trim_end(), "local-term");

    // --env and --cwd override.
    let output = run(
        &server.url,
        &[
            "--env",
            "HOME=/nowhere",
            "--cwd",
            "/tmp",
            "--",
            "echo $HOME; pwd",
        ],
    )
    .await;
    assert_exit(&output, 0);
    assert_eq!(stdout_of(&output), "/nowhere\n/tmp\n");
}

// 5. Connection messages -----------------------------------------------------

/// A loopback port nobody listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test]
async fn host_port_means_ws_and_nobody_there_cannot_connect() {
    let server = EXECD.serve().await;
    let host_port = server.url.trim_start_matches("ws://").to_string();
    let output = run(&host_port, &["--", "echo ok"]).await;
    assert_exit(&output, 0);
    assert_eq!(stdout_of(&output), "ok\n");

    let port = closed_port();
    let output = run(&format!("127.0.0.1:{port}"), &["--", "true"]).await;
    assert_exit(&output, 255);
    assert_stderr_has(
        &output,
        &format!("execd run: cannot connect to ws://127.0.0.1:{port}: connection refused"),
    );
    // Each subcommand names itself.
    let output = output_of(on("shell", &format!("127.0.0.1:{port}"), &[]), None).await;
    assert_exit(&output, 255);
    assert_stderr_has(&output, "execd shell: cannot connect to ws://127.0.0.1:");
    let output = EXECD
        .output(&[
            "cp",
            &format!("ws://127.0.0.1:{port}:/etc/hostname"),
            "/tmp/x",
        ])
        .await;
    assert_exit(&output, 1);
    assert_stderr_has(&output, "execd cp: cannot connect to ws://127.0.0.1:");
}

#[tokio::test]
async fn a_wrong_scheme_suggests_ws() {
    let output = run("http://127.0.0.1:7878", &["--", "true"]).await;
    assert_exit(&output, 255);
    assert_stderr_has(&output, "use ws://127.0.0.1:7878");
    let output = run("https://example.invalid:1", &["--", "true"]).await;
    assert_exit(&output, 255);
    assert_stderr_has(&output, "use wss://example.invalid:1");
}

#[tokio::test]
async fn a_server_that_is_not_execd_is_named_as_such() {
    // A plain TCP echo server: it answers the upgrade request with itself.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let echo = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                while let Ok(n) = stream.read(&mut buffer).await {
                    if n == 0 || stream.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let url = format!("ws://127.0.0.1:{port}");
    let output = run(&url, &["--", "true"]).await;
    echo.abort();
    assert_exit(&output, 255);
    assert_stderr_has(
        &output,
        &format!("execd run: {url} is not an execd server (it answered"),
    );
}

#[tokio::test]
async fn an_http_server_that_is_not_execd_is_named_as_such() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let http = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = vec![0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let answer = b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot here\n";
            let _ = stream.write_all(answer).await;
        }
    });
    let url = format!("ws://127.0.0.1:{port}");
    let output = run(&url, &["--", "true"]).await;
    http.abort();
    assert_exit(&output, 255);
    assert_stderr_has(
        &output,
        &format!("execd run: {url} is not an execd server (it answered HTTP 404 Not Found"),
    );
}

/// `execd serve --no-auth` on a free port, stderr piped: the child, its
/// URL, and its stderr lines.
async fn serve_with_logs() -> (Child, String, tokio::io::Lines<BufReader<ChildStderr>>) {
    let mut child = EXECD
        .command(&["serve", "--listen", "ws://127.0.0.1:0", "--no-auth"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn execd serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = next_line(&mut lines).await.expect("the URL line");
    // Keep stdout open (the server writes nothing more to it).
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
    (child, url, stderr)
}

/// The first stderr line containing `wanted` (bounded).
async fn log_line(lines: &mut tokio::io::Lines<BufReader<ChildStderr>>, wanted: &str) -> String {
    let find = async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            if line.contains(wanted) {
                return line;
            }
        }
        panic!("stderr ended without a line containing {wanted:?}");
    };
    tokio::time::timeout(TIMEOUT, find)
        .await
        .unwrap_or_else(|_| panic!("no log line containing {wanted:?} within {TIMEOUT:?}"))
}

#[tokio::test]
async fn a_server_stopped_mid_command_says_it_shut_down() {
    let (mut server, url, _logs) = serve_with_logs().await;
    let mut client = on("run", &url, &["--", "echo started; exec sleep 600"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn execd run");
    let stdout = client.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    assert_eq!(next_line(&mut lines).await.as_deref(), Some("started"));
    let pid = Pid::from_raw(server.id().expect("server pid") as i32);
    kill(pid, Signal::SIGTERM).expect("SIGTERM the server");
    let status = wait_exit(&mut client, "the server stopped").await;
    let mut stderr = String::new();
    if let Some(mut err) = client.stderr.take() {
        err.read_to_string(&mut stderr).await.expect("read stderr");
    }
    assert_eq!(status.code(), Some(255), "stderr: {stderr}");
    assert!(
        stderr.contains("execd run: server shut down: execd serve is stopping"),
        "stderr: {stderr}"
    );
    wait_exit(&mut server, "SIGTERM").await;
}

#[tokio::test]
async fn a_server_killed_mid_command_is_a_lost_connection() {
    let (mut server, url, _logs) = serve_with_logs().await;
    let supervisor = server.id().expect("execd serve pid") as i32;
    let serving = child_of(supervisor).expect("execd serve forked the server");
    let mut client = on("run", &url, &["--", "echo started; exec sleep 600"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn execd run");
    let stdout = client.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    assert_eq!(next_line(&mut lines).await.as_deref(), Some("started"));
    // No chance to say goodbye.
    kill(Pid::from_raw(serving), Signal::SIGKILL).expect("SIGKILL the server");
    let status = wait_exit(&mut client, "the server was killed").await;
    let mut stderr = String::new();
    if let Some(mut err) = client.stderr.take() {
        err.read_to_string(&mut stderr).await.expect("read stderr");
    }
    assert_eq!(status.code(), Some(255), "stderr: {stderr}");
    // The client tries to resume, finds nothing listening, and says the
    // session is gone. The "reconnecting…" notice comes first when the
    // notice printer sees the link reconnecting at all: a refused resume
    // can close it before then (the printer watches the latest state).
    let gone = "execd run: connection lost: the session is gone: cannot connect to";
    let reconnecting = "execd run: connection lost; reconnecting…\n";
    let rest = stderr.strip_prefix(reconnecting).unwrap_or(&stderr);
    assert!(rest.starts_with(gone), "stderr: {stderr}");
    wait_exit(&mut server, "its server was killed").await;
}

// 6. The log lines of execd serve ---------------------------------------------

#[tokio::test]
async fn serve_logs_one_line_at_start_and_one_at_shutdown() {
    let (mut server, url, mut logs) = serve_with_logs().await;
    let start = log_line(&mut logs, "listening on").await;
    for part in [
        format!("execd {}", env!("CARGO_PKG_VERSION")),
        format!("listening on {url}"),
        "auth: none (--no-auth)".to_string(),
        "TLS: off".to_string(),
        "INFO".to_string(),
    ] {
        assert!(start.contains(&part), "start line lacks {part:?}: {start}");
    }
    let pid = Pid::from_raw(server.id().expect("server pid") as i32);
    kill(pid, Signal::SIGTERM).expect("SIGTERM the server");
    let stop = log_line(&mut logs, "shutting down").await;
    assert!(stop.contains("SIGTERM"), "{stop}");
    let status = wait_exit(&mut server, "SIGTERM").await;
    assert!(status.success() || status.code().is_some(), "{status:?}");
}

// 7. --help --------------------------------------------------------------------

#[tokio::test]
async fn help_says_what_happens_with_signals_exit_codes_and_the_environment() {
    for (subcommand, wanted) in [
        (
            "run",
            &[
                "SIGINT",
                "SIGKILL",
                "--terminate-grace-ms",
                "127",
                "126",
                "255",
                "HOME",
                "LC_*",
                "--exec",
            ][..],
        ),
        ("shell", &["login shell", "SIGTERM", "255", "HOME"][..]),
        (
            "cp",
            &["-p", "permission bits", "Exit status", "Signals"][..],
        ),
    ] {
        let output = EXECD.output(&[subcommand, "--help"]).await;
        assert_exit(&output, 0);
        let help = stdout_of(&output);
        for word in wanted {
            assert!(
                help.contains(word),
                "execd {subcommand} --help lacks {word:?}:\n{help}"
            );
        }
    }
}
