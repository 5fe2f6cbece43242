//! Nothing outlives `execd serve`: after a `kill -9` of the server, every
//! process it started (pipe and PTY, ones that ignore SIGHUP or SIGTERM,
//! their background children, a child that left the session and closed its
//! output) is gone within the terminate grace period plus a bound, reaped,
//! and `execd serve` exits with the server's status (128+9). A `kill -9` of
//! `execd serve` itself (the supervisor) shuts the server down as SIGTERM
//! would. Real server, real processes; every wait is bounded.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use execd_client::{ExecServerClient, RemoteEnvironment};
use execd_environment::{Environment, EventReceiver, StartedProcess};
use execd_protocol::event::EventKind;
use execd_protocol::process::StartParams;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const EXECD: &str = env!("CARGO_BIN_EXE_execd");
const GRACE_MS: u64 = 1000;
/// How long past the grace period the processes may take to be gone.
const BOUND: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_secs(30);

/// `execd serve` on a free loopback port, SIGKILLed on drop.
struct Serve {
    child: Child,
    url: String,
}

impl Serve {
    fn start() -> Serve {
        let grace = GRACE_MS.to_string();
        let mut child = Command::new(EXECD)
            .args(["serve", "--listen", "ws://127.0.0.1:0"])
            .args(["--terminate-grace-ms", &grace])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn execd serve");
        let mut url = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut url)
            .expect("read the URL");
        assert!(
            url.starts_with("ws://"),
            "first line is not the URL: {url:?}"
        );
        Serve {
            child,
            url: url.trim().to_string(),
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The server process: the `execd` child of `execd serve` if it forked
    /// one (the supervisor's), otherwise `execd serve` itself.
    fn server_pid(&self) -> i32 {
        children_of(self.pid())
            .into_iter()
            .find(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "execd")
            })
            .unwrap_or(self.pid())
    }

    /// `execd serve`'s exit status, waited for with a bound.
    fn wait(&mut self) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for execd serve") {
                return status;
            }
            assert!(started.elapsed() < TIMEOUT, "execd serve did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process seen alive, told apart from a later one with its pid by its
/// start time. SIGKILLed on drop if still there, so a failing test leaves
/// nothing behind.
struct Watched {
    pid: i32,
    start_time: u64,
    what: String,
}

impl Watched {
    fn new(pid: i32, what: &str) -> Watched {
        let (_, start_time) = state_and_start(pid)
            .unwrap_or_else(|| panic!("{what} (pid {pid}) is not running after start"));
        Watched {
            pid,
            start_time,
            what: what.to_string(),
        }
    }

    /// Gone means reaped: a zombie is still there.
    fn is_gone(&self) -> bool {
        state_and_start(self.pid).is_none_or(|(_, start)| start != self.start_time)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if !self.is_gone() {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }
}

/// State letter and start time (fields 3 and 22 of `/proc/PID/stat`).
fn state_and_start(pid: i32) -> Option<(char, u64)> {
    let fields = stat_fields(pid)?;
    Some((
        fields.first()?.chars().next()?,
        fields.get(19)?.parse().ok()?,
    ))
}

/// Session id (field 6 of `/proc/PID/stat`).
fn session_of(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(3)?.parse().ok()
}

/// `/proc/PID/stat` from the state on (the name may hold spaces).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn children_of(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|pid| stat_fields(*pid).and_then(|f| f.get(1)?.parse().ok()) == Some(parent))
        .collect()
}

async fn connect(url: &str) -> Environment {
    let client = tokio::time::timeout(TIMEOUT, ExecServerClient::connect(url))
        .await
        .expect("connect timed out")
        .expect("connect to execd serve");
    RemoteEnvironment::new(client).into_environment()
}

/// Start `bash -c script` (under a PTY if `tty`) and return it with the
/// pids its first output line names.
async fn start(env: &Environment, id: &str, script: &str, tty: bool) -> (StartedProcess, Vec<i32>) {
    let params = StartParams {
        process_id: id.into(),
        argv: vec!["bash".into(), "-c".into(), script.into()],
        cwd: "/".into(),
        env: HashMap::from([("PATH".into(), "/usr/bin:/bin".into())]),
        tty,
        pipe_stdin: false,
        arg0: None,
        size: None,
        exec_policy: None,
        sandbox: None,
    };
    let mut started = env.exec.start(params).await.expect("process/start");
    let line = tokio::time::timeout(TIMEOUT, first_line(&mut started.events))
        .await
        .unwrap_or_else(|_| panic!("{id} printed no line"));
    let pids = line
        .split_whitespace()
        .map(|pid| {
            pid.parse()
                .unwrap_or_else(|_| panic!("{id} printed {line:?}"))
        })
        .collect();
    (started, pids)
}

async fn first_line(events: &mut EventReceiver) -> String {
    let mut output = Vec::new();
    while !output.contains(&b'\n') {
        match events.recv().await {
            Some(Ok(event)) => match event.kind {
                EventKind::Output { chunk, .. } => output.extend_from_slice(&chunk),
                other => panic!("ended before printing a line: {other:?}"),
            },
            other => panic!("events ended before a line: {other:?}"),
        }
    }
    let line = output.split(|b| *b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line).trim().to_string()
}

/// Start the processes every test watches; `with_daemon` adds one that left
/// the session and closed its output.
async fn start_all(env: &Environment, with_daemon: bool) -> (Vec<StartedProcess>, Vec<Watched>) {
    let mut cases = vec![
        ("pipe", "echo $$; exec sleep 300", false),
        ("pty", "echo $$; exec sleep 300", true),
        // Ignores SIGHUP, and so does its background child.
        (
            "ignores-hup",
            "trap '' HUP; sleep 300 & echo $$ $!; wait",
            false,
        ),
        // Ignores SIGTERM too (its children inherit that): SIGKILL must come.
        (
            "ignores-term",
            "trap '' TERM HUP; sleep 300 & echo $$ $!; wait",
            false,
        ),
    ];
    if with_daemon {
        // `setsid` in a non-leader execs `sleep` in a new session, output closed.
        cases.push((
            "daemon",
            "trap '' TERM HUP; setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $$ $!; wait",
            false,
        ));
    }
    let mut started = Vec::new();
    let mut watched = Vec::new();
    for (id, script, tty) in cases {
        let (process, pids) = start(env, id, script, tty).await;
        for (i, pid) in pids.into_iter().enumerate() {
            watched.push(Watched::new(pid, &format!("{id} #{i}")));
        }
        started.push(process);
    }
    if with_daemon {
        // Its pid is printed as soon as it is forked; `setsid` comes after.
        let daemon = watched.last().expect("the daemon");
        let started = Instant::now();
        while session_of(daemon.pid) != Some(daemon.pid) {
            assert!(
                started.elapsed() < TIMEOUT,
                "the daemon did not start a session of its own"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    (started, watched)
}

/// Wait until every watched process is gone, for at most the grace period
/// plus `BOUND`; fail naming the ones left.
fn assert_all_gone(watched: &[Watched], since: Instant) {
    let deadline = since + Duration::from_millis(GRACE_MS) + BOUND;
    loop {
        let left: Vec<String> = watched
            .iter()
            .filter(|process| !process.is_gone())
            .map(|process| {
                let state = state_and_start(process.pid).map_or('?', |(state, _)| state);
                format!("{} (pid {}, state {state})", process.what, process.pid)
            })
            .collect();
        if left.is_empty() {
            eprintln!("all gone {:?} after the kill", since.elapsed());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still there {:?} after the kill: {left:?}",
            since.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_kill_9_of_the_server_nothing_it_started_survives() {
    let mut serve = Serve::start();
    let env = connect(&serve.url).await;
    let (_started, watched) = start_all(&env, true).await;

    let server = serve.server_pid();
    let killed = Instant::now();
    kill(Pid::from_raw(server), Signal::SIGKILL).expect("kill -9 the server");
    assert_all_gone(&watched, killed);
    let status = serve.wait();
    assert_eq!(
        status.code(),
        Some(128 + 9),
        "execd serve should exit with the server's status (killed by 9): {status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_kill_9_of_execd_serve_the_server_shuts_down() {
    let mut serve = Serve::start();
    let env = connect(&serve.url).await;
    let (_started, mut watched) = start_all(&env, false).await;
    let server = serve.server_pid();
    watched.push(Watched::new(server, "the server"));

    let killed = Instant::now();
    kill(Pid::from_raw(serve.pid()), Signal::SIGKILL).expect("kill -9 execd serve");
    serve.wait();
    assert_all_gone(&watched, killed);
}
