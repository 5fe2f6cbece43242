//! End-to-end tests of the client subcommands of the built `execd` binary,
//! `execd run` and `execd cp`, against real `execd serve` children.
//!
//! Every wait is bounded (execd-test-support's `TIMEOUT`, `RUN_TIMEOUT`);
//! every spawned `execd` is killed
//! when its handle is dropped, and temporary directories (local and "remote":
//! the servers run on this machine) are removed on drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use execd_test_support::binary::printed_pid;
use execd_test_support::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));

/// `execd run --url URL ARGS...` against `server`; ARGS are options, `--`
/// and the command.
fn run_on(server: &ExecdServer, args: &[&str]) -> Command {
    let mut all = vec!["run", "--url", server.url.as_str(), "--exec"];
    all.extend_from_slice(args);
    EXECD.command(&all)
}

/// `execd cp args...`, which must exit with `code`.
async fn cp(args: &[&str], code: i32) -> Output {
    let mut all = vec!["cp"];
    all.extend_from_slice(args);
    let output = EXECD.output(&all).await;
    assert_exit(&output, code);
    output
}

/// `URL:path`: `path` on `server`, as `execd cp` names it.
fn on(server: &ExecdServer, path: &str) -> String {
    format!("{}:{path}", server.url)
}

/// The command under test printed `stdout` and exited with `code` (a long
/// `stdout` is compared without printing it).
fn assert_output(output: &Output, stdout: &[u8], code: i32) {
    if stdout.len() <= 1024 {
        assert_eq!(output.stdout, stdout, "stderr: {}", stderr_of(output));
    } else {
        assert!(
            output.stdout == stdout,
            "stdout differs: {} bytes, {} expected",
            output.stdout.len(),
            stdout.len()
        );
    }
    assert_exit(output, code);
}

/// The command under test exited with `code` (its stderr shown if not).
fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stderr: {}",
        stderr_of(output)
    );
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
    let server = EXECD.serve().await;
    let output = output_of(
        run_on(
            &server,
            &["--", "bash", "-c", "echo out; echo err >&2; exit 7"],
        ),
        None,
    )
    .await;
    assert!(
        stderr_of(&output).contains("err\n"),
        "stderr: {}",
        stderr_of(&output)
    );
    assert_output(&output, b"out\n", 7);
}

#[tokio::test]
async fn run_takes_the_url_from_execd_url() {
    let server = EXECD.serve().await;
    let mut command = EXECD.command(&["run", "--", "echo", "from", "env"]);
    command.env("EXECD_URL", &server.url);
    let output = output_of(command, None).await;
    assert_output(&output, b"from env\n", 0);
}

#[tokio::test]
async fn run_without_a_url_fails_clearly() {
    let output = EXECD.output(&["run", "--", "true"]).await;
    assert_exit(&output, 2);
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("--url") && stderr.contains("EXECD_URL"),
        "stderr: {stderr}"
    );
}

#[tokio::test]
async fn run_forwards_stdin_and_its_eof() {
    let server = EXECD.serve().await;
    let output = output_of(run_on(&server, &["--", "cat"]), Some(b"hello\nworld\n")).await;
    assert_output(&output, b"hello\nworld\n", 0);

    // Megabytes of binary input, through and back.
    let data = noise(2_500_000, 7);
    let output = output_of(run_on(&server, &["--", "cat"]), Some(&data)).await;
    assert_output(&output, &data, 0);
}

#[tokio::test]
async fn run_exits_with_128_plus_the_signal() {
    let server = EXECD.serve().await;
    let output = output_of(
        run_on(&server, &["--", "bash", "-c", "kill -TERM $$"]),
        None,
    )
    .await;
    assert_exit(&output, 143);
}

#[tokio::test]
async fn run_sets_env_and_cwd() {
    let server = EXECD.serve().await;
    let output = output_of(
        run_on(
            &server,
            &[
                "--env",
                "A=B",
                "--cwd",
                "/usr",
                "--",
                "bash",
                "-c",
                "echo $A; pwd",
            ],
        ),
        None,
    )
    .await;
    assert_output(&output, b"B\n/usr\n", 0);
}

#[tokio::test]
async fn run_passes_megabytes_of_binary_output_exactly() {
    let server = EXECD.serve().await;
    let dir = TempDir::new("run-binary");
    let data = noise(3_000_000, 42);
    std::fs::write(dir.join("data.bin"), &data).expect("write data");
    let output = output_of(run_on(&server, &["--", "cat", &dir.text("data.bin")]), None).await;
    assert_output(&output, &data, 0);
}

#[tokio::test]
async fn run_does_not_wait_for_local_stdin_once_the_process_closed() {
    let server = EXECD.serve().await;
    let mut child = run_on(&server, &["--", "echo", "done"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn execd run");
    // Keep stdin open (never written, never closed) while waiting.
    let _stdin = child.stdin.take();
    let status = tokio::time::timeout(RUN_TIMEOUT, child.wait())
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
    let server = EXECD.serve().await;
    let script = "setsid sleep 1000 & \
        until [ \"$(cut -d' ' -f6 /proc/$!/stat)\" = $! ]; do :; done; echo $!";
    let mut child = run_on(&server, &["--", "bash", "-c", script])
        .spawn()
        .expect("spawn execd run");
    let pid = printed_pid(&mut child).await;
    assert!(is_alive(pid), "the leftover is not running");
    let run = Pid::from_raw(child.id().expect("execd run is running") as i32);
    kill(run, Signal::SIGTERM).expect("signal execd run");
    let status = tokio::time::timeout(RUN_TIMEOUT, child.wait())
        .await
        .expect("execd run kept waiting for the leftover")
        .expect("wait for execd run");
    // The command exited (0) before the interrupt reached it, or the
    // forwarded SIGTERM ended it (143).
    assert!(
        matches!(status.code(), Some(0 | 143)),
        "execd run ended with {status}"
    );
    // The leftover does not survive.
    wait_dead(&[pid]).await;
}

#[tokio::test]
async fn run_with_tty_merges_output_on_a_terminal() {
    let server = EXECD.serve().await;
    let mut command = run_on(
        &server,
        &[
            "--tty",
            "--",
            "bash",
            "-c",
            "test -t 0 && test -t 1 && echo tty; echo $TERM; echo err >&2; exit 3",
        ],
    );
    command.env_remove("TERM");
    let output = output_of(command, None).await;
    assert_output(&output, b"tty\r\nxterm-256color\r\nerr\r\n", 3);
}

#[tokio::test]
async fn run_with_tty_ends_when_piped_input_ends() {
    let server = EXECD.serve().await;
    // Local stdin is a pipe, not a terminal: its EOF becomes the remote
    // terminal's EOF character, so `cat` under the PTY finishes.
    let command = run_on(&server, &["--tty", "--", "cat"]);
    let output = output_of(command, Some(b"one\ntwo\n")).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("two\r\n"),
        "{text:?} / {}",
        stderr_of(&output)
    );
    assert_exit(&output, 0);
}

#[tokio::test]
async fn run_exits_255_when_the_connection_drops() {
    let mut server = EXECD.serve().await;
    let mut child = run_on(&server, &["--", "bash", "-c", "echo $$; exec sleep 600"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn execd run");
    // A killed server cannot clean up: the sleeper is killed on drop.
    let _sleeper = Watched::new(printed_pid(&mut child).await);

    server.child.start_kill().expect("kill the server");
    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .expect("execd run did not notice the lost connection")
        .expect("wait for execd run");
    assert_exit(&output, 255);
    let stderr = stderr_of(&output);
    assert!(stderr.contains("execd run:"), "stderr: {stderr}");
}

// ---------------------------------------------------------------------------
// execd cp

#[tokio::test]
async fn cp_copies_a_tree_to_the_server_and_back() {
    let server = EXECD.serve().await;
    let local = TempDir::new("cp-local");
    let remote = TempDir::new("cp-remote");
    let source = local.join("src");
    make_tree(&source);

    // The destination does not exist: it becomes the copy.
    let remote_copy = remote.text("copy");
    let output = cp(&["-r", &local.text("src"), &on(&server, &remote_copy)], 0).await;
    assert!(output.stdout.is_empty());
    assert_same_tree(&source, Path::new(&remote_copy));

    let back = local.text("back");
    cp(&["-r", &on(&server, &remote_copy), &back], 0).await;
    assert_same_tree(&source, Path::new(&back));

    // An existing directory receives the source under its own name.
    cp(
        &[
            "-r",
            "--url",
            &server.url,
            &local.text("src"),
            &format!(":{}", remote.text("")),
        ],
        0,
    )
    .await;
    assert_same_tree(&source, &remote.join("src"));
}

#[tokio::test]
async fn cp_copies_a_single_file_there_and_back() {
    let server = EXECD.serve().await;
    let local = TempDir::new("cp-file-local");
    let remote = TempDir::new("cp-file-remote");
    let data = noise(5 * 1024 * 1024 + 17, 9);
    std::fs::write(local.join("one.bin"), &data).expect("write file");

    let remote_file = remote.text("renamed.bin");
    cp(&[&local.text("one.bin"), &on(&server, &remote_file)], 0).await;
    assert!(std::fs::read(&remote_file).expect("remote copy") == data);

    // Back into an existing local directory: keeps the remote name.
    let into = local.join("into");
    std::fs::create_dir(&into).expect("create dir");
    let mut command = EXECD.command(&["cp", &format!(":{remote_file}"), &local.text("into")]);
    command.env("EXECD_URL", &server.url);
    let output = output_of(command, None).await;
    assert_exit(&output, 0);
    assert!(std::fs::read(into.join("renamed.bin")).expect("local copy") == data);

    // An empty file, and overwriting an existing file.
    std::fs::write(local.join("empty"), b"").expect("write empty");
    cp(&[&local.text("empty"), &on(&server, &remote_file)], 0).await;
    assert_eq!(std::fs::read(&remote_file).expect("remote copy"), b"");
}

#[tokio::test]
async fn cp_between_two_servers_and_locally() {
    let first = EXECD.serve().await;
    let second = EXECD.serve().await;
    let local = TempDir::new("cp-r2r-local");
    let remote = TempDir::new("cp-r2r-remote");
    make_tree(&local.join("src"));

    let on_first = remote.text("on-first");
    let on_second = remote.text("on-second");
    cp(&["-r", &local.text("src"), &on(&first, &on_first)], 0).await;
    cp(&["-r", &on(&first, &on_first), &on(&second, &on_second)], 0).await;
    assert_same_tree(&local.join("src"), Path::new(&on_second));

    // Same server on both sides.
    let same = remote.text("same-server");
    cp(
        &[
            "-r",
            "--url",
            &first.url,
            &format!(":{on_first}"),
            &format!(":{same}"),
        ],
        0,
    )
    .await;
    assert_same_tree(&local.join("src"), Path::new(&same));

    // Local to local.
    cp(&["-r", &local.text("src"), &local.text("plain")], 0).await;
    assert_same_tree(&local.join("src"), &local.join("plain"));
}

#[tokio::test]
async fn cp_reports_errors() {
    let server = EXECD.serve().await;
    let local = TempDir::new("cp-errors");
    let missing = local.text("no-such-file");
    let output = cp(&[&on(&server, &missing), &local.text("out")], 1).await;
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with("execd cp: ") && stderr.contains(&missing),
        "stderr: {stderr}"
    );
    assert!(!local.join("out").exists());

    std::fs::create_dir(local.join("dir")).expect("create dir");
    let output = cp(
        &[&local.text("dir"), &on(&server, &local.text("dir-copy"))],
        1,
    )
    .await;
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with("execd cp: ") && stderr.contains("-r"),
        "stderr: {stderr}"
    );
    assert!(!local.join("dir-copy").exists());

    // `:/path` without a server to refer to.
    let output = cp(&[":/etc/hostname", &local.text("x")], 1).await;
    assert!(
        stderr_of(&output).contains("EXECD_URL"),
        "stderr: {}",
        stderr_of(&output)
    );
}
