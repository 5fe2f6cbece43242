//! Test support: a real server on a loopback port and a raw JSON-RPC
//! WebSocket client that checks every process event it sees.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use execd_server::{ServerConfig, WsServer};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every wait in the tests is bounded by this.
pub const TIMEOUT: Duration = Duration::from_secs(30);

pub async fn start_server() -> WsServer {
    start_server_with(ServerConfig::default()).await
}

pub async fn start_server_with(mut config: ServerConfig) -> WsServer {
    config.table.terminate_grace = Duration::from_millis(500);
    execd_server::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("bind")
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub fn unb64(text: &Value) -> Vec<u8> {
    STANDARD
        .decode(text.as_str().expect("base64 string"))
        .expect("valid base64")
}

/// The environment most tests give their processes.
pub fn basic_env() -> Value {
    json!({"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C"})
}

/// `process/start` params for a pipe process.
pub fn start_params(id: &str, argv: &[&str]) -> Value {
    json!({
        "processId": id, "argv": argv, "cwd": "/tmp", "env": basic_env(),
        "tty": false, "pipeStdin": false, "arg0": null
    })
}

/// What one process produced, gathered from its notifications.
#[derive(Debug, Default, Clone)]
pub struct Collected {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub pty: Vec<u8>,
    pub exit_code: Option<i64>,
    pub signal: Option<String>,
    pub output_chunks: usize,
    pub output_after_exit: bool,
    pub closed: bool,
    pub last_seq: u64,
}

impl Collected {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn pty_str(&self) -> String {
        String::from_utf8_lossy(&self.pty).into_owned()
    }
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: i64,
    /// Notifications received but not yet consumed.
    notifications: VecDeque<Value>,
    /// Responses received out of turn, by id.
    responses: HashMap<String, Value>,
    /// Per-process event state, checked on every notification.
    processes: HashMap<String, Collected>,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("connect");
        Client::from_stream(ws)
    }

    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client {
            ws,
            next_id: 1,
            notifications: VecDeque::new(),
            responses: HashMap::new(),
            processes: HashMap::new(),
        }
    }

    /// Connect and do the `initialize` / `initialized` handshake.
    pub async fn connect_initialized(url: &str) -> Client {
        let mut client = Client::connect(url).await;
        let result = client
            .call("initialize", json!({"clientName": "test"}))
            .await
            .expect("initialize");
        assert!(result["sessionId"].as_str().is_some_and(|s| s.len() == 36));
        client.notify("initialized", json!({})).await;
        client
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .expect("send");
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        self.send_raw(&json!({"method": method, "params": params}).to_string())
            .await;
    }

    /// Next frame from the server, parsed; panics on timeout or close.
    pub async fn recv_frame(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(TIMEOUT, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("connection closed")
                .expect("websocket error");
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str()).expect("server sent invalid JSON")
                }
                Message::Close(_) => panic!("server closed the connection"),
                _ => continue,
            }
        }
    }

    /// Route one frame: responses are stored by id, notifications checked and queued.
    async fn pump(&mut self) {
        let frame = self.recv_frame().await;
        if frame.get("method").is_some() {
            self.track(&frame);
            self.notifications.push_back(frame);
        } else {
            let id = frame["id"].to_string();
            self.responses.insert(id, frame);
        }
    }

    /// Check a process notification against what came before it.
    fn track(&mut self, frame: &Value) {
        let method = frame["method"].as_str().unwrap_or_default();
        if !method.starts_with("process/") {
            return;
        }
        let params = &frame["params"];
        let id = params["processId"].as_str().expect("processId").to_string();
        let seq = params["seq"].as_u64().expect("seq");
        let state = self.processes.entry(id.clone()).or_default();
        assert!(!state.closed, "{id}: event after closed: {frame}");
        assert_eq!(seq, state.last_seq + 1, "{id}: seq gap or reorder: {frame}");
        state.last_seq = seq;
        match method {
            "process/output" => {
                if state.exit_code.is_some() {
                    state.output_after_exit = true;
                }
                state.output_chunks += 1;
                let bytes = unb64(&params["chunk"]);
                match params["stream"].as_str() {
                    Some("stdout") => state.stdout.extend(bytes),
                    Some("stderr") => state.stderr.extend(bytes),
                    Some("pty") => state.pty.extend(bytes),
                    other => panic!("unknown stream {other:?}"),
                }
            }
            "process/exited" => {
                assert!(state.exit_code.is_none(), "{id}: exited twice");
                state.exit_code = Some(params["exitCode"].as_i64().expect("exitCode"));
                state.signal = params["signal"].as_str().map(str::to_string);
            }
            "process/closed" => {
                assert!(state.exit_code.is_some(), "{id}: closed before exited");
                state.closed = true;
            }
            other => panic!("unknown notification {other}"),
        }
    }

    /// Send a request and return its result or error object.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.send_request(method, params).await;
        self.response(id).await
    }

    pub async fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send_raw(&json!({"id": id, "method": method, "params": params}).to_string())
            .await;
        id
    }

    /// Wait for the response with this id.
    pub async fn response(&mut self, id: i64) -> Result<Value, Value> {
        self.response_for(&json!(id)).await
    }

    pub async fn response_for(&mut self, id: &Value) -> Result<Value, Value> {
        let key = id.to_string();
        loop {
            if let Some(frame) = self.responses.remove(&key) {
                if let Some(error) = frame.get("error") {
                    return Err(error.clone());
                }
                return Ok(frame
                    .get("result")
                    .cloned()
                    .expect("response has result or error"));
            }
            self.pump().await;
        }
    }

    /// Wait for a response whose id is exactly `id` (any JSON value).
    pub async fn call_expect_error(&mut self, method: &str, params: Value) -> Value {
        self.call(method, params)
            .await
            .expect_err("expected an error response")
    }

    pub async fn start(&mut self, params: Value) -> Value {
        // A reused id starts a new event history.
        if let Some(id) = params["processId"].as_str() {
            self.processes.remove(id);
        }
        self.call("process/start", params)
            .await
            .expect("process/start")
    }

    /// Wait until process `id` has closed; return everything it produced.
    pub async fn wait_closed(&mut self, id: &str) -> Collected {
        while self.processes.get(id).is_none_or(|p| !p.closed) {
            self.pump().await;
        }
        self.processes[id].clone()
    }

    /// Wait until process `id` has sent `exited`.
    pub async fn wait_exited(&mut self, id: &str) -> Collected {
        while self.processes.get(id).is_none_or(|p| p.exit_code.is_none()) {
            self.pump().await;
        }
        self.processes[id].clone()
    }

    /// Wait until process `id`'s output on any stream contains `needle`.
    pub async fn wait_output(&mut self, id: &str, needle: &str) -> Collected {
        loop {
            if let Some(p) = self.processes.get(id) {
                let all = [&p.stdout[..], &p.stderr[..], &p.pty[..]].concat();
                if String::from_utf8_lossy(&all).contains(needle) {
                    return p.clone();
                }
            }
            self.pump().await;
        }
    }

    /// Wait until process `id`'s output on any stream has at least `n` lines.
    pub async fn wait_lines(&mut self, id: &str, n: usize) -> Collected {
        loop {
            if let Some(p) = self.processes.get(id) {
                let lines = [&p.stdout[..], &p.stderr[..], &p.pty[..]]
                    .iter()
                    .map(|s| s.iter().filter(|b| **b == b'\n').count())
                    .sum::<usize>();
                if lines >= n {
                    return p.clone();
                }
            }
            self.pump().await;
        }
    }

    /// Run a pipe process to completion.
    pub async fn run(&mut self, id: &str, argv: &[&str]) -> Collected {
        self.start(start_params(id, argv)).await;
        self.wait_closed(id).await
    }

    /// The notifications queued so far (already checked for order).
    pub fn take_notifications(&mut self) -> Vec<Value> {
        self.notifications.drain(..).collect()
    }

    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }
}

/// True while `pid` exists and is not a zombie.
pub fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next().map(str::to_string));
            state.as_deref() != Some("Z")
        }
        Err(_) => false,
    }
}

/// Wait (bounded) until none of `pids` is alive.
pub async fn wait_dead(pids: &[i32]) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let alive: Vec<i32> = pids.iter().copied().filter(|p| is_alive(*p)).collect();
        if alive.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "processes still alive: {alive:?}"
        );
        // Process death has no event to await from outside; poll /proc.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
