//! `execd serve` as a container's init: PID 1 of a fresh PID namespace
//! (`unshare --pid --fork --mount-proc`, which needs root, as CI has).
//! Orphans handed to PID 1 must be reaped, and SIGTERM to PID 1 must end the
//! server cleanly. Every wait is bounded; the namespace is killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use execd_test_support::procs::child_of;
use execd_test_support::TIMEOUT;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const EXECD: &str = env!("CARGO_BIN_EXE_execd");

/// `unshare` running `execd serve` as PID 1 of a new PID namespace.
struct Namespace {
    unshare: Child,
    /// The init (PID 1 inside), as seen from outside.
    init: Pid,
    url: String,
}

impl Namespace {
    fn start() -> Namespace {
        let mut unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", EXECD, "serve"])
            .args(["--listen", "ws://127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run unshare (util-linux)");
        let stdout = unshare.stdout.take().expect("piped stdout");
        let mut url = String::new();
        BufReader::new(stdout)
            .read_line(&mut url)
            .expect("read the server's URL");
        assert!(
            url.starts_with("ws://"),
            "execd serve as PID 1 did not print its URL (got {url:?}); is this root?"
        );
        let init = child_of(unshare.id() as i32).expect("unshare's child (the namespace's PID 1)");
        Namespace {
            unshare,
            init: Pid::from_raw(init),
            url: url.trim().to_string(),
        }
    }

    /// Run `sh -c script` in the namespace through `execd run`; its stdout.
    fn sh(&self, script: &str) -> String {
        let output = Command::new(EXECD)
            .args([
                "run", "--url", &self.url, "--exec", "--", "sh", "-c", script,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run execd run");
        assert!(output.status.success(), "{script:?} failed: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Killing a namespace's PID 1 kills everything in it.
        let _ = kill(self.init, Signal::SIGKILL);
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

#[test]
fn as_pid1_execd_reaps_orphans_and_ends_on_sigterm() {
    let namespace = Namespace::start();
    // Processes whose parent is PID 1, other than the server and this shell.
    let orphans = "cat /proc/[0-9]*/stat 2>/dev/null \
        | awk -v me=$$ '$4 == 1 && $1 != me && $2 != \"(execd)\" {n++} END {print n+0}'";
    // Each subshell forks a `sleep` and exits (the loop waits for it), so the
    // sleeps are orphans, handed to PID 1; a second later they exit, and
    // unreaped they would stay zombies. Their stdio is not the pipes, so
    // `execd run` returns at once.
    namespace.sh("for i in 1 2 3 4 5; do (sleep 1 </dev/null >/dev/null 2>&1 &); done");
    assert_eq!(
        namespace.sh(orphans).trim(),
        "5",
        "the sleeps are not orphans"
    );
    let started = Instant::now();
    while namespace.sh(orphans).trim() != "0" {
        assert!(
            started.elapsed() < TIMEOUT,
            "orphans were not reaped by PID 1:\n{}",
            namespace.sh("cat /proc/[0-9]*/stat")
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // SIGTERM to PID 1 reaches the server, which shuts down; the init then
    // exits with the server's status.
    let mut namespace = namespace;
    kill(namespace.init, Signal::SIGTERM).expect("signal the namespace's PID 1");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = namespace.unshare.try_wait().expect("wait for unshare") {
            break status;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "execd as PID 1 did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "execd as PID 1 exited with {status}");
}
