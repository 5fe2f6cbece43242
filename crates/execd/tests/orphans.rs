//! Nothing outlives `execd serve`: after a `kill -9` of the server, every
//! process it started (pipe and PTY, ones that ignore SIGHUP or SIGTERM,
//! their background children, a child that left the session and closed its
//! output) is gone within the terminate grace period plus a bound, reaped,
//! and `execd serve` exits with the server's status (128+9). A `kill -9` of
//! `execd serve` itself (the supervisor) shuts the server down as SIGTERM
//! would, also when whoever started it has closed its stdout and stderr
//! (the shutdown's log line cannot be written). Real server, real
//! processes; every wait is bounded.

use std::time::{Duration, Instant};

use execd_client::{ExecServerClient, RemoteEnvironment};
use execd_environment::{Environment, EventReceiver, StartedProcess};
use execd_protocol::event::EventKind;
use execd_protocol::process::StartParams;
use execd_test_support::binary::wait_exit;
use execd_test_support::procs::{child_of, proc_stat};
use execd_test_support::{process_params, Execd, ExecdServer, Watched, TIMEOUT};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));
const GRACE_MS: u64 = 1000;
/// How long past the grace period the processes may take to be gone.
const BOUND: Duration = Duration::from_secs(5);

/// `execd serve` with the test's grace period.
async fn serve() -> ExecdServer {
    EXECD
        .serve_with(&["--terminate-grace-ms", &GRACE_MS.to_string()])
        .await
}

fn pid_of(serve: &ExecdServer) -> i32 {
    serve.child.id().expect("execd serve is running") as i32
}

/// The server process: the `execd` child of `execd serve` (the supervisor's).
fn server_pid(serve: &ExecdServer) -> i32 {
    let server = child_of(pid_of(serve)).expect("execd serve forked the server");
    let comm = std::fs::read_to_string(format!("/proc/{server}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "execd", "the supervisor's child is the server");
    server
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
        tty,
        ..process_params(id, &["bash", "-c", script])
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
async fn start_all(
    env: &Environment,
    with_daemon: bool,
) -> (Vec<StartedProcess>, Vec<(String, Watched)>) {
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
            watched.push((format!("{id} #{i}"), Watched::new(pid)));
        }
        started.push(process);
    }
    if with_daemon {
        // Its pid is printed as soon as it is forked; `setsid` comes after.
        let daemon = watched.last().expect("the daemon").1.pid();
        let started = Instant::now();
        while proc_stat(daemon).map(|stat| stat.session) != Some(daemon) {
            assert!(
                started.elapsed() < TIMEOUT,
                "the daemon did not start a session of its own"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    (started, watched)
}

/// Wait until every watched process is reaped, for at most the grace period
/// plus `BOUND`; fail naming the ones left.
fn assert_all_gone(watched: &[(String, Watched)], since: Instant) {
    let deadline = since + Duration::from_millis(GRACE_MS) + BOUND;
    loop {
        let left: Vec<String> = watched
            .iter()
            .filter(|(_, process)| !process.is_reaped())
            .map(|(what, process)| {
                let state = proc_stat(process.pid()).map_or('?', |stat| stat.state);
                format!("{what} (pid {}, state {state})", process.pid())
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
    let mut serve = serve().await;
    let env = connect(&serve.url).await;
    let (_started, watched) = start_all(&env, true).await;

    let server = server_pid(&serve);
    let killed = Instant::now();
    kill(Pid::from_raw(server), Signal::SIGKILL).expect("kill -9 the server");
    assert_all_gone(&watched, killed);
    let status = wait_exit(&mut serve.child, "the server's death").await;
    assert_eq!(
        status.code(),
        Some(128 + 9),
        "execd serve should exit with the server's status (killed by 9): {status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn after_kill_9_of_execd_serve_the_server_shuts_down() {
    let mut serve = serve().await;
    let env = connect(&serve.url).await;
    let (_started, mut watched) = start_all(&env, false).await;
    let server = server_pid(&serve);
    watched.push(("the server".to_string(), Watched::new(server)));

    let killed = Instant::now();
    kill(Pid::from_raw(pid_of(&serve)), Signal::SIGKILL).expect("kill -9 execd serve");
    wait_exit(&mut serve.child, "kill -9").await;
    assert_all_gone(&watched, killed);
}

#[tokio::test(flavor = "multi_thread")]
async fn after_kill_9_of_execd_serve_with_its_output_closed_the_server_shuts_down() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let home = tempfile::tempdir().unwrap();
    let mut serve = tokio::process::Command::new(EXECD.0)
        .args(["serve", "--listen", "ws://127.0.0.1:0"])
        .env("HOME", home.path())
        .env_remove("EXECD_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn execd serve");
    let mut lines = BufReader::new(serve.stdout.take().expect("stdout")).lines();
    let url = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .expect("a URL in time")
        .expect("read stdout");
    assert!(url.is_some_and(|url| url.starts_with("ws://")));
    let supervisor = serve.id().expect("running") as i32;
    let server = child_of(supervisor).expect("execd serve forked the server");
    let watched = vec![("the server".to_string(), Watched::new(server))];
    // Whoever started it is done reading: both pipes closed.
    drop(lines);
    drop(serve.stderr.take());

    let killed = Instant::now();
    kill(Pid::from_raw(supervisor), Signal::SIGKILL).expect("kill -9 execd serve");
    wait_exit(&mut serve, "kill -9").await;
    assert_all_gone(&watched, killed);
}
