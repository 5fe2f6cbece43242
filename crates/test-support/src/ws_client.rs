//! A raw JSON-RPC client over a real WebSocket, for tests that speak the
//! wire protocol themselves: it routes responses by id, queues
//! notifications, and checks every process event against the ones before
//! it (seq without gaps, nothing after `closed`, `exited` once and before
//! `closed`), gathering each process's output into a [`Collected`].

use std::collections::{HashMap, VecDeque};

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::wire::{b64, connect_ws, recv_json, start_params, unb64, Ws};

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

/// A connection to a server, speaking JSON-RPC frame by frame.
pub struct Client {
    ws: Ws,
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
        Client::from_stream(connect_ws(url).await.0)
    }

    pub fn from_stream(ws: Ws) -> Client {
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
        client.initialize("test").await;
        client
    }

    /// Connect and shake hands as codex does (`clientName`
    /// `codex-environment`, `resumeSessionId: null`); the initialize result.
    pub async fn connect_as_codex(url: &str) -> (Client, Value) {
        let mut client = Client::connect(url).await;
        let result = client
            .call(
                "initialize",
                json!({"clientName": "codex-environment", "resumeSessionId": null}),
            )
            .await
            .expect("initialize");
        client.notify("initialized", json!({})).await;
        (client, result)
    }

    /// The `initialize` / `initialized` handshake: the result must carry a
    /// session id (a UUID); returns the result.
    pub async fn initialize(&mut self, client_name: &str) -> Value {
        let result = self
            .call("initialize", json!({"clientName": client_name}))
            .await
            .expect("initialize");
        assert!(
            result["sessionId"].as_str().is_some_and(|s| s.len() == 36),
            "{result}"
        );
        self.notify("initialized", json!({})).await;
        result
    }

    /// [`Client::initialize`], returning the session id (to resume it).
    pub async fn initialize_session(&mut self, client_name: &str) -> String {
        let result = self.initialize(client_name).await;
        result["sessionId"].as_str().unwrap_or_default().to_string()
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
        recv_json(&mut self.ws).await
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

    /// Send requests back to back and flush once, so the server finds them
    /// waiting together (a burst); their ids, in order.
    pub async fn send_requests_together(&mut self, requests: &[(&str, Value)]) -> Vec<i64> {
        let mut ids = Vec::with_capacity(requests.len());
        for (method, params) in requests {
            let id = self.next_id;
            self.next_id += 1;
            let frame = json!({"id": id, "method": method, "params": params}).to_string();
            self.ws.feed(Message::text(frame)).await.expect("send");
            ids.push(id);
        }
        self.ws.flush().await.expect("flush");
        ids
    }

    /// Wait for the response with this id.
    pub async fn response(&mut self, id: i64) -> Result<Value, Value> {
        self.response_for(&json!(id)).await
    }

    /// Wait for the response whose id is exactly `id` (any JSON value).
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

    /// Send a request that must fail; its error object.
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

    /// `process/write` of `data` to `id`'s stdin; the result (a status).
    pub async fn write(&mut self, id: &str, data: &[u8]) -> Value {
        self.call(
            "process/write",
            json!({"processId": id, "chunk": b64(data)}),
        )
        .await
        .expect("process/write")
    }

    /// `process/terminate` of `id`; the result (`{"running": bool}`).
    pub async fn terminate(&mut self, id: &str) -> Value {
        self.call("process/terminate", json!({"processId": id}))
            .await
            .expect("process/terminate")
    }

    /// Check process `id`'s events from after `last_seq` on (a process of a
    /// resumed session, whose earlier events went to another connection).
    pub fn follow_from(&mut self, id: &str, last_seq: u64) {
        self.processes.entry(id.to_string()).or_default().last_seq = last_seq;
    }

    /// The notifications queued so far (already checked for order).
    pub fn take_notifications(&mut self) -> Vec<Value> {
        self.notifications.drain(..).collect()
    }

    /// Every `fs/changed` change for `watch_id` until one satisfies `done`
    /// (bounded by [`crate::RUN_TIMEOUT`]); notifications of other kinds
    /// and other watches are dropped.
    pub async fn changes_until(
        &mut self,
        watch_id: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let mut seen = Vec::new();
        let mut frames = self.take_notifications();
        loop {
            for frame in frames.drain(..) {
                if frame["method"] != "fs/changed" || frame["params"]["watchId"] != watch_id {
                    continue;
                }
                let changes = frame["params"]["changes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let finished = changes.iter().any(&done);
                seen.extend(changes);
                if finished {
                    return seen;
                }
            }
            let frame = tokio::time::timeout(crate::RUN_TIMEOUT, self.recv_frame())
                .await
                .unwrap_or_else(|_| panic!("no wanted change; saw {seen:?}"));
            frames.push(frame);
        }
    }

    pub fn into_inner(self) -> Ws {
        self.ws
    }
}
