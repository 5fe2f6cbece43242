//! End-to-end tests of the client subcommands of the built `execd` binary,
//! `execd run` and `execd cp`, against real `execd serve` children.
//!
//! Every wait is bounded by [`TIMEOUT`]; every spawned `execd` is killed
//! when its handle is dropped, and temporary directories (local and "remote":
//! the servers run on this machine) are removed on drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Every wait in these tests is bounded by this.
const TIMEOUT: Duration = Duration::from_secs(60);

const EXECD: &str = env!("CARGO_BIN_EXE_execd");

/// A running `execd serve` on a free loopback port.
struct Server {
    child: Child,
    url: String,
    _stdout: Lines<BufReader<ChildStdout>>,
}

async fn server() -> Server {
    let mut child = Command::new(EXECD)
        .args(["serve", "--listen", "ws://127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn execd serve");
    let stdout = child.stdout.take().expect("server stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .expect("execd serve printed no URL in time")
        .expect("read execd serve stdout")
        .expect("execd serve exited before printing its URL");
    assert!(url.starts_with("ws://127.0.0.1:"), "unexpected URL {url:?}");
    Server {
        child,
        url,
        _stdout: lines,
    }
}

/// A command for the binary under test, without any inherited `EXECD_URL`.
fn execd(args: &[&str]) -> Command {
    let mut command = Command::new(EXECD);
    command
        .args(args)
        .env_remove("EXECD_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Run to completion (bounded), feeding `input` to stdin and closing it.
async fn output_of(mut command: Command, input: Option<&[u8]>) -> Output {
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
    let output = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("execd did not finish within {TIMEOUT:?}"))
        .expect("wait for execd");
    if let Some(feeding) = feeding {
        feeding.await.expect("stdin feeder");
    }
    output
}

async fn execd_output(args: &[&str]) -> Output {
    output_of(execd(args), None).await
}

/// The pid that the command under `execd run` printed as its first line.
async fn printed_pid(child: &mut Child) -> i32 {
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .expect("no pid line in time")
        .expect("read stdout")
        .expect("execd run ended early")
        .trim()
        .parse()
        .expect("a pid")
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A directory removed (with its contents) on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique(name));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn join(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }

    fn text(&self, relative: &str) -> String {
        self.join(relative)
            .to_str()
            .expect("temp paths are UTF-8")
            .to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("execd-client-cli-{name}-{}-{nanos}", std::process::id())
}

/// Deterministic pseudo-random bytes (xorshift64*), different per `seed`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Every file and directory under `root`, by relative path (`None` for a
/// directory, the contents for a file).
fn tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn visit(root: &Path, dir: &Path, into: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            let relative = path.strip_prefix(root).expect("under root").to_path_buf();
            if path.is_dir() {
                into.insert(relative, None);
                visit(root, &path, into);
            } else {
                into.insert(relative, Some(std::fs::read(&path).expect("read file")));
            }
        }
    }
    let mut entries = BTreeMap::new();
    visit(root, root, &mut entries);
    entries
}

fn assert_same_tree(expected: &Path, actual: &Path) {
    let expected_tree = tree(expected);
    let actual_tree = tree(actual);
    let names = |t: &BTreeMap<PathBuf, Option<Vec<u8>>>| t.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&expected_tree),
        names(&actual_tree),
        "{} and {} hold different entries",
        expected.display(),
        actual.display()
    );
    for (name, contents) in &expected_tree {
        assert!(
            actual_tree.get(name) == Some(contents),
            "{} differs between {} and {}",
            name.display(),
            expected.display(),
            actual.display()
        );
    }
}

/// A source tree: nested directories, binary files, an empty file, an empty
/// directory, and a file bigger than two streaming pieces.
fn make_tree(root: &Path) {
    let write = |relative: &str, data: &[u8]| {
        let path = root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(path, data).expect("write test file");
    };
    write("hello.txt", b"hello\n");
    write("empty", b"");
    write("nested/small.bin", &noise(10_000, 1));
    write("nested/deeper/odd name.bin", &noise(70_001, 2));
    write("nested/big.bin", &noise(9 * 1024 * 1024 + 123, 3));
    std::fs::create_dir_all(root.join("nested/empty-dir")).expect("create empty dir");
}

// ---------------------------------------------------------------------------
// execd run

#[tokio::test]
async fn run_streams_stdout_and_stderr_and_returns_the_exit_code() {
    let server = server().await;
    let output = execd_output(&[
        "run",
        "--url",
        &server.url,
        "--",
        "bash",
        "-c",
        "echo out; echo err >&2; exit 7",
    ])
    .await;
    assert_eq!(output.stdout, b"out\n", "stderr: {}", stderr_of(&output));
    assert!(
        stderr_of(&output).contains("err\n"),
        "stderr: {}",
        stderr_of(&output)
    );
    assert_eq!(output.status.code(), Some(7));
}

#[tokio::test]
async fn run_takes_the_url_from_execd_url() {
    let server = server().await;
    let mut command = execd(&["run", "--", "echo", "from", "env"]);
    command.env("EXECD_URL", &server.url);
    let output = output_of(command, None).await;
    assert_eq!(
        output.stdout,
        b"from env\n",
        "stderr: {}",
        stderr_of(&output)
    );
    assert_eq!(output.status.code(), Some(0));
}

#[tokio::test]
async fn run_without_a_url_fails_clearly() {
    let output = execd_output(&["run", "--", "true"]).await;
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("--url") && stderr.contains("EXECD_URL"),
        "stderr: {stderr}"
    );
}

#[tokio::test]
async fn run_forwards_stdin_and_its_eof() {
    let server = server().await;
    let output = output_of(
        execd(&["run", "--url", &server.url, "--", "cat"]),
        Some(b"hello\nworld\n"),
    )
    .await;
    assert_eq!(
        output.stdout,
        b"hello\nworld\n",
        "stderr: {}",
        stderr_of(&output)
    );
    assert_eq!(output.status.code(), Some(0));

    // Megabytes of binary input, through and back.
    let data = noise(2_500_000, 7);
    let output = output_of(
        execd(&["run", "--url", &server.url, "--", "cat"]),
        Some(&data),
    )
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&output)
    );
    assert!(
        output.stdout == data,
        "stdout differs from stdin ({} bytes)",
        output.stdout.len()
    );
}

#[tokio::test]
async fn run_exits_with_128_plus_the_signal() {
    let server = server().await;
    let output = execd_output(&[
        "run",
        "--url",
        &server.url,
        "--",
        "bash",
        "-c",
        "kill -TERM $$",
    ])
    .await;
    assert_eq!(
        output.status.code(),
        Some(143),
        "stderr: {}",
        stderr_of(&output)
    );
}

#[tokio::test]
async fn run_sets_env_and_cwd() {
    let server = server().await;
    let output = execd_output(&[
        "run",
        "--url",
        &server.url,
        "--env",
        "A=B",
        "--cwd",
        "/usr",
        "--",
        "bash",
        "-c",
        "echo $A; pwd",
    ])
    .await;
    assert_eq!(
        output.stdout,
        b"B\n/usr\n",
        "stderr: {}",
        stderr_of(&output)
    );
    assert_eq!(output.status.code(), Some(0));
}

#[tokio::test]
async fn run_passes_megabytes_of_binary_output_exactly() {
    let server = server().await;
    let dir = TempDir::new("run-binary");
    let data = noise(3_000_000, 42);
    std::fs::write(dir.join("data.bin"), &data).expect("write data");
    let output = execd_output(&[
        "run",
        "--url",
        &server.url,
        "--",
        "cat",
        &dir.text("data.bin"),
    ])
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&output)
    );
    assert!(
        output.stdout == data,
        "stdout differs from the file ({} bytes)",
        output.stdout.len()
    );
}

#[tokio::test]
async fn run_does_not_wait_for_local_stdin_once_the_process_closed() {
    let server = server().await;
    let mut child = execd(&["run", "--url", &server.url, "--", "echo", "done"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn execd run");
    // Keep stdin open (never written, never closed) while waiting.
    let _stdin = child.stdin.take();
    let status = tokio::time::timeout(TIMEOUT, child.wait())
        .await
        .expect("execd run hung on an open stdin")
        .expect("wait for execd run");
    assert_eq!(status.code(), Some(0));
    let mut stdout = Vec::new();
    if let Some(mut out) = child.stdout.take() {
        out.read_to_end(&mut stdout).await.expect("read stdout");
    }
    assert_eq!(stdout, b"done\n");
}

/// The command exits but a child that left its group and session keeps the
/// output open: `execd run` waits (as ssh does), and one SIGTERM, before or
/// after the command's exit, ends the leftovers (after the server's grace
/// period) and the wait.
#[tokio::test]
async fn run_ends_leftovers_holding_the_output_on_the_first_interrupt() {
    let server = server().await;
    let script = "setsid sleep 1000 & \
        until [ \"$(cut -d' ' -f6 /proc/$!/stat)\" = $! ]; do :; done; echo $!";
    let mut child = execd(&["run", "--url", &server.url, "--", "bash", "-c", script])
        .spawn()
        .expect("spawn execd run");
    let pid = printed_pid(&mut child).await;
    let leftover = PathBuf::from(format!("/proc/{pid}"));
    assert!(leftover.exists(), "the leftover is not running");
    let run = Pid::from_raw(child.id().expect("execd run is running") as i32);
    kill(run, Signal::SIGTERM).expect("signal execd run");
    let status = tokio::time::timeout(TIMEOUT, child.wait())
        .await
        .expect("execd run kept waiting for the leftover")
        .expect("wait for execd run");
    // The command exited (0) before the interrupt reached it, or the
    // forwarded SIGTERM ended it (143).
    assert!(
        matches!(status.code(), Some(0 | 143)),
        "execd run ended with {status}"
    );
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while leftover.exists() && !is_zombie(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the leftover survived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

#[tokio::test]
async fn run_with_tty_merges_output_on_a_terminal() {
    let server = server().await;
    let mut command = execd(&[
        "run",
        "--url",
        &server.url,
        "--tty",
        "--",
        "bash",
        "-c",
        "test -t 0 && test -t 1 && echo tty; echo $TERM; echo err >&2; exit 3",
    ]);
    command.env_remove("TERM");
    let output = output_of(command, None).await;
    assert_eq!(
        output.stdout,
        b"tty\r\nxterm-256color\r\nerr\r\n",
        "stderr: {}",
        stderr_of(&output)
    );
    assert_eq!(output.status.code(), Some(3));
}

#[tokio::test]
async fn run_with_tty_ends_when_piped_input_ends() {
    let server = server().await;
    // Local stdin is a pipe, not a terminal: its EOF becomes the remote
    // terminal's EOF character, so `cat` under the PTY finishes.
    let command = execd(&["run", "--url", &server.url, "--tty", "--", "cat"]);
    let output = output_of(command, Some(b"one\ntwo\n")).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("two\r\n"),
        "{text:?} / {}",
        stderr_of(&output)
    );
    assert_eq!(output.status.code(), Some(0));
}

#[tokio::test]
async fn run_exits_255_when_the_connection_drops() {
    let mut server = server().await;
    let mut child = execd(&[
        "run",
        "--url",
        &server.url,
        "--",
        "bash",
        "-c",
        "echo $$; exec sleep 600",
    ])
    .spawn()
    .expect("spawn execd run");
    let pid = printed_pid(&mut child).await;
    // A killed server cannot clean up: the sleeper is killed here.
    struct KillOnDrop(i32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = kill(Pid::from_raw(self.0), Signal::SIGKILL);
        }
    }
    let _sleeper = KillOnDrop(pid);

    server.child.start_kill().expect("kill the server");
    let output = tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .expect("execd run did not notice the lost connection")
        .expect("wait for execd run");
    assert_eq!(output.status.code(), Some(255));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("execd run:"), "stderr: {stderr}");
}

// ---------------------------------------------------------------------------
// execd cp

#[tokio::test]
async fn cp_copies_a_tree_to_the_server_and_back() {
    let server = server().await;
    let local = TempDir::new("cp-local");
    let remote = TempDir::new("cp-remote");
    let source = local.join("src");
    make_tree(&source);

    // The destination does not exist: it becomes the copy.
    let remote_copy = remote.text("copy");
    let output = execd_output(&[
        "cp",
        "-r",
        &local.text("src"),
        &format!("{}:{remote_copy}", server.url),
    ])
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&output)
    );
    assert!(output.stdout.is_empty());
    assert_same_tree(&source, Path::new(&remote_copy));

    let back = local.text("back");
    let output = execd_output(&["cp", "-r", &format!("{}:{remote_copy}", server.url), &back]).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&output)
    );
    assert_same_tree(&source, Path::new(&back));

    // An existing directory receives the source under its own name.
    let output = execd_output(&[
        "cp",
        "-r",
        "--url",
        &server.url,
        &local.text("src"),
        &format!(":{}", remote.text("")),
    ])
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&output)
    );
    assert_same_tree(&source, &remote.join("src"));
}

#[tokio::test]
async fn cp_copies_a_single_file_there_and_back() {
    let server = server().await;
    let local = TempDir::new("cp-file-local");
    let remote = TempDir::new("cp-file-remote");
    let data = noise(5 * 1024 * 1024 + 17, 9);
    std::fs::write(local.join("one.bin"), &data).expect("write file");

    let remote_file = remote.text("renamed.bin");
    let output = execd_output(&[
        "cp",
        &local.text("one.bin"),
        &format!("{}:{remote_file}", server.url),
    ])
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&output)
    );
    assert!(std::fs::read(&remote_file).expect("remote copy") == data);

    // Back into an existing local directory: keeps the remote name.
    let into = local.join("into");
    std::fs::create_dir(&into).expect("create dir");
    let mut command = execd(&["cp", &format!(":{remote_file}"), &local.text("into")]);
    command.env("EXECD_URL", &server.url);
    let output = output_of(command, None).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&output)
    );
    assert!(std::fs::read(into.join("renamed.bin")).expect("local copy") == data);

    // An empty file, and overwriting an existing file.
    std::fs::write(local.join("empty"), b"").expect("write empty");
    let output = execd_output(&[
        "cp",
        &local.text("empty"),
        &format!("{}:{remote_file}", server.url),
    ])
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&output)
    );
    assert_eq!(std::fs::read(&remote_file).expect("remote copy"), b"");
}

#[tokio::test]
async fn cp_between_two_servers_and_locally() {
    let first = server().await;
    let second = server().await;
    let local = TempDir::new("cp-r2r-local");
    let remote = TempDir::new("cp-r2r-remote");
    make_tree(&local.join("src"));

    let on_first = remote.text("on-first");
    let on_second = remote.text("on-second");
    let output = execd_output(&[
        "cp",
        "-r",
        &local.text("src"),
        &format!("{}:{on_first}", first.url),
    ])
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&output)
    );
    let output = execd_output(&[
        "cp",
        "-r",
        &format!("{}:{on_first}", first.url),
        &format!("{}:{on_second}", second.url),
    ])
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&output)
    );
    assert_same_tree(&local.join("src"), Path::new(&on_second));

    // Same server on both sides.
    let same = remote.text("same-server");
    let output = execd_output(&[
        "cp",
        "-r",
        "--url",
        &first.url,
        &format!(":{on_first}"),
        &format!(":{same}"),
    ])
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&output)
    );
    assert_same_tree(&local.join("src"), Path::new(&same));

    // Local to local.
    let output = execd_output(&["cp", "-r", &local.text("src"), &local.text("plain")]).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        stderr_of(&output)
    );
    assert_same_tree(&local.join("src"), &local.join("plain"));
}

#[tokio::test]
async fn cp_reports_errors() {
    let server = server().await;
    let local = TempDir::new("cp-errors");
    let missing = local.text("no-such-file");
    let output = execd_output(&[
        "cp",
        &format!("{}:{missing}", server.url),
        &local.text("out"),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with("execd cp: ") && stderr.contains(&missing),
        "stderr: {stderr}"
    );
    assert!(!local.join("out").exists());

    std::fs::create_dir(local.join("dir")).expect("create dir");
    let output = execd_output(&[
        "cp",
        &local.text("dir"),
        &format!("{}:{}", server.url, local.text("dir-copy")),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with("execd cp: ") && stderr.contains("-r"),
        "stderr: {stderr}"
    );
    assert!(!local.join("dir-copy").exists());

    // `:/path` without a server to refer to.
    let output = execd_output(&["cp", ":/etc/hostname", &local.text("x")]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("EXECD_URL"),
        "stderr: {}",
        stderr_of(&output)
    );
}
