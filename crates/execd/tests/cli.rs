//! End-to-end tests of the built `execd` binary: the command line, the
//! WebSocket listener with signal-driven shutdown, and the stdio transport.
//!
//! Every wait is bounded by execd-test-support's `TIMEOUT`; every spawned
//! `execd` is killed when
//! its handle is dropped (so a failing assertion never leaks a server), and
//! every process a test learns the pid of is SIGKILLed on drop if it is still
//! around.

use std::collections::HashMap;
use std::process::Stdio;

use execd_test_support::binary::{next_line, wait_exit};
use execd_test_support::procs::first_pid;
use execd_test_support::wire::{assert_error, INVALID_REQUEST};
use execd_test_support::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));

/// A shell that prints its pid, then becomes a long sleep (same pid).
const SLEEPER: [&str; 3] = ["bash", "-c", "echo $$; exec sleep 1000"];

// ---------------------------------------------------------------------------
// WebSocket server: signals

/// Start `execd serve` on a free port, run a sleeper through it, deliver
/// `signal` to execd and check it exits 0 having killed the sleeper.
async fn signal_stops_server_and_processes(signal: Signal) {
    // A raw WebSocket client without a token: auth is not what this tests.
    let mut server = EXECD.serve_with(&["--no-auth"]).await;
    let mut client = Client::connect(&server.url).await;
    client.initialize("cli-test").await;
    let started = client.start(start_params("p1", &SLEEPER)).await;
    assert_eq!(started, json!({"processId": "p1"}), "bad start reply");
    let out = client.wait_output("p1", "\n").await;
    for frame in client.take_notifications() {
        assert!(
            frame["method"] == "process/output" && frame["params"]["stream"] == "stdout",
            "unexpected frame while starting the sleeper: {frame}"
        );
    }
    let sleeper = Watched::new(first_pid(&out.stdout_str()));

    let execd_pid = Pid::from_raw(server.child.id().expect("execd pid") as i32);
    kill(execd_pid, signal).expect("signal execd");
    let status = wait_exit(&mut server.child, signal.as_str()).await;
    assert!(
        status.success(),
        "execd exited with {status} after {signal}, expected 0"
    );
    sleeper.assert_gone().await;
    drop(client);
}

#[tokio::test]
async fn sigterm_exits_zero_and_kills_processes() {
    signal_stops_server_and_processes(Signal::SIGTERM).await;
}

#[tokio::test]
async fn sigint_exits_zero_and_kills_processes() {
    signal_stops_server_and_processes(Signal::SIGINT).await;
}

// ---------------------------------------------------------------------------
// stdio server

struct StdioServer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl StdioServer {
    fn spawn() -> StdioServer {
        let mut child = EXECD
            .command(&["serve", "--listen", "stdio"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn execd");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        StdioServer {
            child,
            stdin,
            stdout,
        }
    }

    async fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin already closed");
        let write = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.write_all(b"\n").await?;
            stdin.flush().await
        };
        tokio::time::timeout(TIMEOUT, write)
            .await
            .expect("write to execd stdin timed out")
            .expect("write to execd stdin");
    }

    async fn send(&mut self, message: Value) {
        self.send_line(&message.to_string()).await;
    }

    async fn recv(&mut self) -> Value {
        let line = next_line(&mut self.stdout)
            .await
            .expect("execd closed stdout unexpectedly");
        serde_json::from_str(&line)
            .unwrap_or_else(|err| panic!("execd wrote a line that is not JSON {line:?}: {err}"))
    }

    /// Next message, which must be the response to `id`.
    async fn response(&mut self, id: i64) -> Value {
        let message = self.recv().await;
        assert_eq!(
            message["id"], id,
            "expected the response to {id}: {message}"
        );
        message
    }

    /// The `initialize` (id 1) / `initialized` handshake; the reply.
    async fn initialize(&mut self) -> Value {
        self.send(json!({"id": 1, "method": "initialize", "params": {"clientName": "t"}}))
            .await;
        let reply = self.response(1).await;
        self.send(json!({"method": "initialized", "params": {}}))
            .await;
        reply
    }

    /// Close stdin: execd must exit 0. Whatever it still printed.
    async fn close(mut self) -> Vec<String> {
        drop(self.stdin.take());
        let mut rest = Vec::new();
        while let Some(line) = next_line(&mut self.stdout).await {
            rest.push(line);
        }
        let status = wait_exit(&mut self.child, "stdin closed").await;
        assert!(
            status.success(),
            "execd exited with {status} after stdin closed, expected 0"
        );
        rest
    }

    /// [`StdioServer::close`], and execd printed nothing more.
    async fn close_cleanly(self) {
        let rest = self.close().await;
        assert!(
            rest.is_empty(),
            "unexpected output after the last reply: {rest:?}"
        );
    }
}

/// One process notification, rendered for comparison.
fn describe_event(message: &Value) -> String {
    let params = &message["params"];
    let seq = &params["seq"];
    match message["method"].as_str() {
        Some("process/output") => {
            let chunk = String::from_utf8_lossy(&unb64(&params["chunk"])).into_owned();
            format!("output seq={seq} {} {chunk:?}", params["stream"])
        }
        Some("process/exited") => format!("exited seq={seq} exitCode={}", params["exitCode"]),
        Some("process/closed") => format!("closed seq={seq}"),
        _ => panic!("unexpected notification: {message}"),
    }
}

#[tokio::test]
async fn stdio_runs_the_protocol_example() {
    let mut server = StdioServer::spawn();
    server
        .send_line(r#"{"id":1,"method":"initialize","params":{"clientName":"t"}}"#)
        .await;
    server
        .send_line(r#"{"method":"initialized","params":{}}"#)
        .await;
    server
        .send(json!({
            "id": 2, "method": "process/start",
            "params": stdin_params(
                "p1", &["bash", "-c", "echo hi; read x; echo got:$x; exit 3"]
            ),
        }))
        .await;

    let mut responses: HashMap<i64, Value> = HashMap::new();
    let mut events: Vec<Value> = Vec::new();
    async fn route(
        server: &mut StdioServer,
        responses: &mut HashMap<i64, Value>,
        events: &mut Vec<Value>,
    ) {
        let message = server.recv().await;
        if message.get("method").is_some() {
            assert_eq!(
                message["params"]["processId"], "p1",
                "notification for an unknown process: {message}"
            );
            events.push(message);
        } else {
            let id = message["id"]
                .as_i64()
                .unwrap_or_else(|| panic!("response without an integer id: {message}"));
            assert!((1..=3).contains(&id), "unexpected response: {message}");
            assert!(
                responses.insert(id, message.clone()).is_none(),
                "second response for id {id}: {message}"
            );
        }
    }

    // Write only once the process is known to be running and reading.
    while !(responses.contains_key(&1) && responses.contains_key(&2) && !events.is_empty()) {
        route(&mut server, &mut responses, &mut events).await;
    }
    server
        .send(json!({
            "id": 3, "method": "process/write",
            "params": {"processId": "p1", "chunk": b64(b"abc\n")},
        }))
        .await;
    while !(responses.contains_key(&3)
        && events
            .last()
            .is_some_and(|event| event["method"] == "process/closed"))
    {
        route(&mut server, &mut responses, &mut events).await;
    }

    let session = &responses[&1]["result"]["sessionId"];
    assert!(
        session.as_str().is_some_and(|id| !id.is_empty()),
        "initialize result has no sessionId: {}",
        responses[&1]
    );
    assert_eq!(
        responses[&2]["result"],
        json!({"processId": "p1"}),
        "bad process/start response: {}",
        responses[&2]
    );
    assert_eq!(
        responses[&3]["result"],
        json!({"status": "accepted"}),
        "bad process/write response: {}",
        responses[&3]
    );
    let described: Vec<String> = events.iter().map(describe_event).collect();
    assert_eq!(
        described,
        [
            r#"output seq=1 "stdout" "hi\n""#,
            r#"output seq=2 "stdout" "got:abc\n""#,
            "exited seq=3 exitCode=3",
            "closed seq=4",
        ],
        "events for p1: {events:#?}"
    );

    server.close_cleanly().await;
}

#[tokio::test]
async fn stdio_rejects_a_non_json_line_and_keeps_serving() {
    let mut server = StdioServer::spawn();
    server.send_line("this is not json").await;
    let reply = server.recv().await;
    assert_eq!(reply["id"], -1, "bad reply to a non-JSON line: {reply}");
    assert_error(&reply["error"], INVALID_REQUEST, &[], "a non-JSON line");

    let reply = server.initialize().await;
    assert!(
        reply["result"]["sessionId"].is_string(),
        "initialize after a bad line failed: {reply}"
    );

    server.send_line("{\"id\": 2, \"method\": ").await;
    let reply = server.recv().await;
    assert_eq!(reply["id"], -1, "bad reply to truncated JSON: {reply}");
    assert_error(&reply["error"], INVALID_REQUEST, &[], "truncated JSON");

    server
        .send(json!({"id": 3, "method": "fs/getMetadata", "params": {"path": "/tmp"}}))
        .await;
    let reply = server.response(3).await;
    assert_eq!(
        reply["result"]["isDirectory"], true,
        "fs/getMetadata after a bad line failed: {reply}"
    );

    server.close_cleanly().await;
}

#[tokio::test]
async fn stdio_eof_exits_zero_and_kills_processes() {
    let mut server = StdioServer::spawn();
    server.initialize().await;
    server
        .send(json!({"id": 2, "method": "process/start", "params": start_params("p1", &SLEEPER)}))
        .await;
    let mut output = Vec::new();
    let mut started = false;
    while !(started && output.contains(&b'\n')) {
        let message = server.recv().await;
        match message["method"].as_str() {
            None if message["id"] == 2 => {
                assert_eq!(message["result"], json!({"processId": "p1"}), "{message}");
                started = true;
            }
            Some("process/output") => output.extend(unb64(&message["params"]["chunk"])),
            _ => panic!("unexpected message while starting the sleeper: {message}"),
        }
    }
    let sleeper = Watched::new(first_pid(&String::from_utf8_lossy(&output)));

    server.close().await;
    sleeper.assert_gone().await;
}

// ---------------------------------------------------------------------------
// command line

#[tokio::test]
async fn bogus_listen_address_fails_with_a_message() {
    let output = EXECD.output(&["serve", "--listen", "bogus"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "execd serve --listen bogus succeeded; stderr: {stderr}"
    );
    assert!(
        stderr.contains("bogus"),
        "stderr does not name the bad value: {stderr:?}"
    );
    assert!(
        output.stdout.is_empty(),
        "unexpected stdout: {:?}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test]
async fn help_succeeds() {
    let output = EXECD.output(&["--help"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "execd --help: {}", output.status);
    assert!(stdout.contains("serve"), "--help lacks serve: {stdout}");

    let output = EXECD.output(&["serve", "--help"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "execd serve --help: {}",
        output.status
    );
    assert!(
        stdout.contains("--listen"),
        "serve --help lacks --listen: {stdout}"
    );
}
