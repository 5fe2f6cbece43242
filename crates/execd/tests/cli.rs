//! End-to-end tests of the built `execd` binary: the command line, the
//! WebSocket listener with signal-driven shutdown, and the stdio transport.
//!
//! Every wait is bounded by [`TIMEOUT`]; every spawned `execd` is killed when
//! its handle is dropped (so a failing assertion never leaks a server), and
//! every process a test learns the pid of is SIGKILLed on drop if it is still
//! around.

use std::collections::HashMap;
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every wait in these tests is bounded by this.
const TIMEOUT: Duration = Duration::from_secs(30);

const EXECD: &str = env!("CARGO_BIN_EXE_execd");

/// A command for the binary under test: stdout piped, stderr shown in the
/// test output, killed when the handle is dropped.
fn execd(args: &[&str]) -> Command {
    let mut command = Command::new(EXECD);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
}

/// Run `execd args` to completion (bounded), capturing stdout and stderr.
async fn execd_output(args: &[&str]) -> Output {
    let mut command = execd(args);
    command.stderr(Stdio::piped());
    tokio::time::timeout(TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("execd {args:?} did not finish within {TIMEOUT:?}"))
        .unwrap_or_else(|err| panic!("cannot run execd {args:?}: {err}"))
}

async fn wait_exit(child: &mut Child, what: &str) -> ExitStatus {
    tokio::time::timeout(TIMEOUT, child.wait())
        .await
        .unwrap_or_else(|_| panic!("execd did not exit within {TIMEOUT:?} after {what}"))
        .expect("wait for execd")
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> Option<String> {
    tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("no line from execd within {TIMEOUT:?}"))
        .expect("read execd stdout")
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn unb64(chunk: &Value) -> Vec<u8> {
    STANDARD
        .decode(chunk.as_str().expect("chunk is a string"))
        .expect("chunk is valid base64")
}

/// `process/start` params for a pipe process with a minimal environment.
fn start_params(id: &str, argv: &[&str], pipe_stdin: bool) -> Value {
    json!({
        "processId": id, "argv": argv, "cwd": "/tmp", "env": {"PATH": "/usr/bin:/bin"},
        "tty": false, "pipeStdin": pipe_stdin, "arg0": null
    })
}

/// A shell that prints its pid, then becomes a long sleep (same pid).
const SLEEPER: [&str; 3] = ["bash", "-c", "echo $$; exec sleep 1000"];

// ---------------------------------------------------------------------------
// /proc inspection

struct ProcStat {
    state: char,
    start_time: u64,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        // Field 22 of stat(5); `fields[0]` is field 3.
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// A process seen alive, identified by pid and start time (so pid reuse is
/// not mistaken for survival). SIGKILLed on drop if still running.
struct Watched {
    pid: i32,
    start_time: u64,
}

impl Watched {
    fn new(pid: i32) -> Watched {
        let stat =
            proc_stat(pid).unwrap_or_else(|| panic!("process {pid} is not running after start"));
        assert_ne!(stat.state, 'Z', "process {pid} is already a zombie");
        Watched {
            pid,
            start_time: stat.start_time,
        }
    }

    /// Gone: no such pid, a different process under that pid, or a zombie.
    fn is_gone(&self) -> bool {
        match proc_stat(self.pid) {
            None => true,
            Some(stat) => stat.start_time != self.start_time || stat.state == 'Z',
        }
    }

    /// Poll until the process is gone; there is no event to wait on for an
    /// unrelated process, so this sleeps briefly between looks, within TIMEOUT.
    async fn assert_gone(&self) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.is_gone() {
            assert!(
                Instant::now() < deadline,
                "process {} still running {TIMEOUT:?} after execd exited",
                self.pid
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if !self.is_gone() {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
    }
}

/// The pid printed as the first line of `SLEEPER`'s stdout.
fn parse_pid(stdout: &[u8]) -> i32 {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().next().unwrap_or_default();
    line.trim()
        .parse()
        .unwrap_or_else(|_| panic!("expected a pid line, got {text:?}"))
}

// ---------------------------------------------------------------------------
// WebSocket server: signals

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn ws_send(ws: &mut Ws, message: Value) {
    tokio::time::timeout(TIMEOUT, ws.send(Message::text(message.to_string())))
        .await
        .expect("send timed out")
        .expect("send");
}

async fn ws_recv(ws: &mut Ws) -> Value {
    loop {
        let message = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("timed out waiting for a frame")
            .expect("connection closed")
            .expect("websocket error");
        match message {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str())
                    .unwrap_or_else(|err| panic!("server sent invalid JSON {text:?}: {err}"))
            }
            Message::Close(frame) => panic!("server closed the connection: {frame:?}"),
            _ => continue,
        }
    }
}

/// Start `execd serve` on a free port, run a sleeper through it, deliver
/// `signal` to execd and check it exits 0 having killed the sleeper.
async fn signal_stops_server_and_processes(signal: Signal) {
    // A raw WebSocket client without a token: auth is not what this tests.
    let mut child = execd(&["serve", "--listen", "ws://127.0.0.1:0", "--no-auth"])
        .spawn()
        .expect("spawn execd");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = next_line(&mut stdout)
        .await
        .expect("execd closed stdout without printing its URL");
    let port = url
        .strip_prefix("ws://127.0.0.1:")
        .and_then(|port| port.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("first stdout line is not ws://127.0.0.1:PORT: {url:?}"));
    assert_ne!(port, 0, "execd printed port 0: {url}");

    let (mut ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(&url))
        .await
        .expect("connect timed out")
        .unwrap_or_else(|err| panic!("cannot connect to {url}: {err}"));

    ws_send(
        &mut ws,
        json!({"id": 1, "method": "initialize", "params": {"clientName": "cli-test"}}),
    )
    .await;
    let reply = ws_recv(&mut ws).await;
    assert_eq!(reply["id"], 1, "expected the initialize reply: {reply}");
    assert!(
        reply["result"]["sessionId"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "initialize result has no sessionId: {reply}"
    );
    ws_send(&mut ws, json!({"method": "initialized", "params": {}})).await;

    ws_send(
        &mut ws,
        json!({"id": 2, "method": "process/start", "params": start_params("p1", &SLEEPER, false)}),
    )
    .await;
    let mut output = Vec::new();
    let mut started = false;
    while !(started && output.contains(&b'\n')) {
        let frame = ws_recv(&mut ws).await;
        match frame["method"].as_str() {
            None if frame["id"] == 2 => {
                assert_eq!(
                    frame["result"],
                    json!({"processId": "p1"}),
                    "bad start reply: {frame}"
                );
                started = true;
            }
            Some("process/output") if frame["params"]["processId"] == "p1" => {
                assert_eq!(frame["params"]["stream"], "stdout", "{frame}");
                output.extend(unb64(&frame["params"]["chunk"]));
            }
            _ => panic!("unexpected frame while starting the sleeper: {frame}"),
        }
    }
    let sleeper = Watched::new(parse_pid(&output));

    let execd_pid = Pid::from_raw(child.id().expect("execd pid") as i32);
    kill(execd_pid, signal).expect("signal execd");
    let status = wait_exit(&mut child, signal.as_str()).await;
    assert!(
        status.success(),
        "execd exited with {status} after {signal}, expected 0"
    );
    sleeper.assert_gone().await;
    drop(ws);
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
        let mut child = execd(&["serve", "--listen", "stdio"])
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

    /// Close stdin; return whatever execd still printed and its exit status.
    async fn close(mut self) -> (Vec<String>, ExitStatus) {
        drop(self.stdin.take());
        let mut rest = Vec::new();
        while let Some(line) = next_line(&mut self.stdout).await {
            rest.push(line);
        }
        let status = wait_exit(&mut self.child, "stdin closed").await;
        (rest, status)
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
            "params": start_params(
                "p1", &["bash", "-c", "echo hi; read x; echo got:$x; exit 3"], true
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

    let (rest, status) = server.close().await;
    assert!(rest.is_empty(), "unexpected output after closed: {rest:?}");
    assert!(
        status.success(),
        "execd exited with {status} after stdin closed, expected 0"
    );
}

#[tokio::test]
async fn stdio_rejects_a_non_json_line_and_keeps_serving() {
    let mut server = StdioServer::spawn();
    server.send_line("this is not json").await;
    let reply = server.recv().await;
    assert_eq!(reply["id"], -1, "bad reply to a non-JSON line: {reply}");
    assert_eq!(
        reply["error"]["code"], -32600,
        "bad reply to a non-JSON line: {reply}"
    );
    assert!(
        reply["error"]["message"].is_string(),
        "error without a message: {reply}"
    );

    server
        .send(json!({"id": 1, "method": "initialize", "params": {"clientName": "t"}}))
        .await;
    let reply = server.response(1).await;
    assert!(
        reply["result"]["sessionId"].is_string(),
        "initialize after a bad line failed: {reply}"
    );
    server
        .send(json!({"method": "initialized", "params": {}}))
        .await;

    server.send_line("{\"id\": 2, \"method\": ").await;
    let reply = server.recv().await;
    assert_eq!(reply["id"], -1, "bad reply to truncated JSON: {reply}");
    assert_eq!(
        reply["error"]["code"], -32600,
        "bad reply to truncated JSON: {reply}"
    );

    server
        .send(json!({"id": 3, "method": "fs/getMetadata", "params": {"path": "/tmp"}}))
        .await;
    let reply = server.response(3).await;
    assert_eq!(
        reply["result"]["isDirectory"], true,
        "fs/getMetadata after a bad line failed: {reply}"
    );

    let (rest, status) = server.close().await;
    assert!(rest.is_empty(), "unexpected output: {rest:?}");
    assert!(
        status.success(),
        "execd exited with {status} after stdin closed"
    );
}

#[tokio::test]
async fn stdio_eof_exits_zero_and_kills_processes() {
    let mut server = StdioServer::spawn();
    server
        .send(json!({"id": 1, "method": "initialize", "params": {"clientName": "t"}}))
        .await;
    server.response(1).await;
    server
        .send(json!({"method": "initialized", "params": {}}))
        .await;
    server
        .send(json!({"id": 2, "method": "process/start", "params": start_params("p1", &SLEEPER, false)}))
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
    let sleeper = Watched::new(parse_pid(&output));

    let (_, status) = server.close().await;
    assert!(
        status.success(),
        "execd exited with {status} after stdin closed"
    );
    sleeper.assert_gone().await;
}

// ---------------------------------------------------------------------------
// command line

#[tokio::test]
async fn bogus_listen_address_fails_with_a_message() {
    let output = execd_output(&["serve", "--listen", "bogus"]).await;
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
    let output = execd_output(&["--help"]).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "execd --help: {}", output.status);
    assert!(stdout.contains("serve"), "--help lacks serve: {stdout}");

    let output = execd_output(&["serve", "--help"]).await;
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
