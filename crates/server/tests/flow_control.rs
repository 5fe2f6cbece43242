//! Per-process flow control (`outputWindow`, `process/ack`), retries
//! (`writeId`, a start repeated after a resume) and `process/list`, over
//! a real socket: a windowed process whose client does not ack stops at
//! its window and goes on after acks with nothing lost; one stalled
//! process stalls no other; a 64 MiB windowed stream cut several times
//! arrives byte-exact through resumes and `process/read afterSeq`.

use std::collections::BTreeMap;
use std::time::Duration;

use execd_server::ServerConfig;
use execd_test_support::wire::{connect_ws, recv_json, Ws, INVALID_PARAMS, INVALID_REQUEST};
use execd_test_support::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn windowed(id: &str, argv: &[&str], window: u64) -> Value {
    let mut params = start_params(id, argv);
    params["outputWindow"] = json!(window);
    params
}

/// The output bytes of a `process/read` result.
fn read_bytes(read: &Value) -> usize {
    read["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| unb64(&c["chunk"]).len())
        .sum()
}

/// The next process notification (responses to acks are skipped); its
/// output bytes and seq, and whether it was `closed`.
async fn next_event(client: &mut Client) -> (usize, u64, bool) {
    loop {
        let frame = client.recv_frame().await;
        let params = &frame["params"];
        match frame["method"].as_str() {
            Some("process/output") => {
                return (
                    unb64(&params["chunk"]).len(),
                    params["seq"].as_u64().unwrap(),
                    false,
                )
            }
            Some("process/exited") => return (0, params["seq"].as_u64().unwrap(), false),
            Some("process/closed") => return (0, params["seq"].as_u64().unwrap(), true),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn a_window_stops_output_until_acked_and_loses_nothing() {
    let (server, mut client) = connected().await;
    let window = 256 * 1024;
    let total = 4 * 1024 * 1024;
    let argv = ["head", "-c", "4194304", "/dev/zero"];
    client.start(windowed("w", &argv, window)).await;
    // Exactly the window arrives (reads never ask past it)...
    let (mut received, mut last_seq) = (0, 0);
    while received < window as usize {
        let (bytes, seq, _) = next_event(&mut client).await;
        received += bytes;
        last_seq = seq;
    }
    assert_eq!(received, window as usize);
    // ... and nothing after it: the reader stopped.
    let read = client
        .call(
            "process/read",
            json!({"processId": "w", "afterSeq": last_seq, "waitMs": 500}),
        )
        .await
        .expect("read");
    assert_eq!(read_bytes(&read), 0, "output went on without acks: {read}");
    let list = client.call("process/list", json!({})).await.expect("list");
    let listed = &list["processes"][0];
    assert_eq!(listed["state"], "running", "{list}");
    assert_eq!(listed["outputWindow"], json!(window));
    assert_eq!(listed["ackedSeq"], json!(0));
    assert_eq!(listed["nextSeq"], json!(last_seq + 1));
    // An ack past what was sent is refused by seq.
    let error = client
        .call_expect_error(
            "process/ack",
            json!({"processId": "w", "seq": last_seq + 5}),
        )
        .await;
    assert_eq!(error["code"], json!(INVALID_PARAMS), "{error}");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains(&(last_seq + 5).to_string()));
    // Acking as it goes, the rest arrives in full.
    let mut unacked = window as usize;
    loop {
        if unacked >= window as usize / 4 {
            let ack = json!({"processId": "w", "seq": last_seq});
            client.send_request("process/ack", ack).await;
            unacked = 0;
        }
        let (bytes, seq, closed) = next_event(&mut client).await;
        received += bytes;
        unacked += bytes;
        last_seq = seq;
        if closed {
            break;
        }
    }
    assert_eq!(received, total);
    server.shutdown().await;
}

#[tokio::test]
async fn a_stalled_process_does_not_stall_another() {
    let (server, mut client) = connected().await;
    let argv = ["head", "-c", "8388608", "/dev/zero"];
    client.start(windowed("stalled", &argv, 64 * 1024)).await;
    let other = client.run("free", &["seq", "1", "200000"]).await;
    assert_eq!(other.exit_code, Some(0));
    assert_eq!(other.stdout.len(), 1_288_895, "seq 1..200000 in full");
    let list = client.call("process/list", json!({})).await.expect("list");
    let states: Vec<(&str, &str)> = list["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["processId"].as_str().unwrap(),
                p["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [("stalled", "running"), ("free", "closed")]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_window_is_checked_against_the_limit() {
    let server = start_server_with(ServerConfig {
        table: execd_local::TableConfig {
            max_output_window: 1024,
            ..fast_table()
        },
        ..ServerConfig::default()
    })
    .await;
    let mut client = Client::connect_initialized(&server.url()).await;
    let error = client
        .call_expect_error("process/start", windowed("big", &["true"], 1025))
        .await;
    assert_eq!(error["code"], json!(INVALID_REQUEST), "{error}");
    assert_eq!(error["data"]["limit"], "maxOutputWindow", "{error}");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("--max-output-window"));
    let error = client
        .call_expect_error("process/start", windowed("zero", &["true"], 0))
        .await;
    assert_eq!(error["code"], json!(INVALID_PARAMS), "{error}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_write_retried_with_its_write_id_applies_once() {
    let (server, mut client) = connected().await;
    client.start(stdin_params("cat", &["cat"])).await;
    for _ in 0..2 {
        let result = client
            .call(
                "process/write",
                json!({"processId": "cat", "chunk": b64(b"once\n"), "writeId": "w-1"}),
            )
            .await
            .expect("write");
        assert_eq!(result["status"], "accepted");
    }
    let long_id = "x".repeat(129);
    let error = client
        .call_expect_error(
            "process/write",
            json!({"processId": "cat", "chunk": b64(b"no\n"), "writeId": long_id}),
        )
        .await;
    assert_eq!(error["code"], json!(INVALID_PARAMS), "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("128"),
        "{error}"
    );
    client
        .call(
            "process/write",
            json!({"processId": "cat", "chunk": b64(b"twice\n"), "writeId": "w-2", "closeStdin": true}),
        )
        .await
        .expect("write");
    let done = client.wait_closed("cat").await;
    assert_eq!(done.stdout_str(), "once\ntwice\n");
    server.shutdown().await;
}

#[tokio::test]
async fn a_start_retried_after_a_resume_returns_the_first_result() {
    let server = start_server_with(ServerConfig {
        detach_grace: Duration::from_secs(60),
        ..ServerConfig::default()
    })
    .await;
    let mut first = Client::connect(&server.url()).await;
    let session = first.initialize("test").await["sessionId"].clone();
    let params = start_params("s", &["sleep", "1000"]);
    let started = first.start(params.clone()).await;
    // On the same connection the reply was seen: a duplicate, as ever.
    let error = first
        .call_expect_error("process/start", params.clone())
        .await;
    assert_eq!(error["message"], "process s already exists");
    drop(first.into_inner());
    let mut second = Client::connect(&server.url()).await;
    second
        .call(
            "initialize",
            json!({"clientName": "t", "resumeSessionId": session}),
        )
        .await
        .expect("resume");
    let again = second
        .call("process/start", params.clone())
        .await
        .expect("retry");
    assert_eq!(again, started);
    let mut different = params.clone();
    different["argv"] = json!(["sleep", "999"]);
    let error = second.call_expect_error("process/start", different).await;
    assert_eq!(error["message"], "process s already exists");
    let list = second.call("process/list", json!({})).await.expect("list");
    assert_eq!(list["processes"].as_array().unwrap().len(), 1, "{list}");
    second.terminate("s").await;
    server.shutdown().await;
}

#[tokio::test]
async fn list_shows_running_exited_and_closed_processes() {
    let (server, mut client) = connected().await;
    client.run("done", &["bash", "-c", "exit 4"]).await;
    client
        .start(start_params("exited", &bash("sleep 1000 & exit 3")))
        .await;
    client.wait_exited("exited").await;
    client
        .start(start_params("running", &["sleep", "1000"]))
        .await;
    let list = client.call("process/list", json!({})).await.expect("list");
    let processes = list["processes"].as_array().unwrap();
    let by_id = |id: &str| {
        processes
            .iter()
            .find(|p| p["processId"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("done")["state"], "closed");
    assert_eq!(by_id("done")["exitCode"], 4);
    assert_eq!(by_id("exited")["state"], "exited");
    assert_eq!(by_id("exited")["exitCode"], 3);
    assert_eq!(by_id("running")["state"], "running");
    assert_eq!(by_id("running")["tty"], false);
    assert!(by_id("running").get("outputWindow").is_none());
    client.terminate("exited").await;
    client.terminate("running").await;
    server.shutdown().await;
}

/// One event of the followed process, by seq.
enum Event {
    Output(Vec<u8>),
    Exited,
    Closed,
}

/// A client following one windowed process across connections: it acks
/// what it consumed, and after each resume reads what it missed
/// (`process/read afterSeq`) and merges it with the live events by seq.
struct Follower {
    ws: Ws,
    next_id: i64,
    process: String,
    window: u64,
    /// The next seq to consume.
    expected: u64,
    pending: BTreeMap<u64, Event>,
    data: Vec<u8>,
    unacked: u64,
    /// The id of the catch-up read in flight.
    reading: Option<i64>,
    closed: bool,
}

impl Follower {
    async fn send(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let frame = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(frame)).await.expect("send");
        id
    }

    /// The response to `id`; events meanwhile are taken in.
    async fn response(&mut self, id: i64) -> Value {
        loop {
            let frame = recv_json(&mut self.ws).await;
            if frame["id"] == json!(id) {
                return frame;
            }
            self.take(frame).await;
        }
    }

    fn insert(&mut self, seq: u64, event: Event) {
        if seq >= self.expected {
            self.pending.entry(seq).or_insert(event);
        }
    }

    async fn take(&mut self, frame: Value) {
        let params = &frame["params"];
        match frame["method"].as_str() {
            Some("process/output") => {
                let seq = params["seq"].as_u64().unwrap();
                self.insert(seq, Event::Output(unb64(&params["chunk"])));
            }
            Some("process/exited") => self.insert(params["seq"].as_u64().unwrap(), Event::Exited),
            Some("process/closed") => self.insert(params["seq"].as_u64().unwrap(), Event::Closed),
            Some(_) => {}
            None if frame["id"].as_i64() == self.reading => {
                let result = &frame["result"];
                let mut last = None;
                for chunk in result["chunks"].as_array().expect("chunks") {
                    let seq = chunk["seq"].as_u64().unwrap();
                    self.insert(seq, Event::Output(unb64(&chunk["chunk"])));
                    last = Some(seq);
                }
                if let Some(seq) = result["exitedSeq"].as_u64() {
                    self.insert(seq, Event::Exited);
                }
                if let Some(seq) = result["closedSeq"].as_u64() {
                    self.insert(seq, Event::Closed);
                }
                self.reading = None;
                if let Some(last) = last {
                    // More may wait past this read's bytes.
                    self.read_after(last).await;
                }
            }
            None => {}
        }
        self.consume().await;
    }

    async fn read_after(&mut self, seq: u64) {
        let params = json!({"processId": self.process, "afterSeq": seq, "maxBytes": 4 << 20});
        self.reading = Some(self.send("process/read", params).await);
    }

    async fn consume(&mut self) {
        while let Some(event) = self.pending.remove(&self.expected) {
            match event {
                Event::Output(bytes) => {
                    self.unacked += bytes.len() as u64;
                    self.data.extend(bytes);
                }
                Event::Exited => {}
                Event::Closed => self.closed = true,
            }
            self.expected += 1;
        }
        if self.unacked >= self.window / 4 {
            self.unacked = 0;
            let params = json!({"processId": self.process, "seq": self.expected - 1});
            self.send("process/ack", params).await;
        }
    }

    /// Drop the socket without a close frame and resume on a new one.
    async fn cut_and_resume(&mut self, url: &str, session: &Value) {
        let (ws, _) = connect_ws(url).await;
        let old = std::mem::replace(&mut self.ws, ws);
        drop(old);
        let id = self
            .send(
                "initialize",
                json!({"clientName": "t", "resumeSessionId": session}),
            )
            .await;
        let reply = self.response(id).await;
        assert_eq!(reply["result"]["resumed"], json!(true), "{reply}");
        self.unacked = 0;
        self.reading = None;
        self.read_after(self.expected - 1).await;
    }
}

#[tokio::test]
async fn a_long_windowed_stream_cut_several_times_arrives_byte_exact() {
    let server = start_server_with(ServerConfig {
        detach_grace: Duration::from_secs(60),
        ..ServerConfig::default()
    })
    .await;
    let url = server.url();
    let dir = TempDir::new("flow-control");
    let copy = dir.path().join("sent");
    let total: usize = 64 << 20;
    let script = format!("head -c {total} /dev/urandom | tee {}", copy.display());
    let (mut ws, _) = connect_ws(url.as_str()).await;
    ws.send(Message::text(
        json!({"id": 0, "method": "initialize", "params": {"clientName": "t"}}).to_string(),
    ))
    .await
    .expect("send");
    let session = recv_json(&mut ws).await["result"]["sessionId"].clone();
    let window = 4 << 20;
    let mut follower = Follower {
        ws,
        next_id: 1,
        process: "stream".into(),
        window,
        expected: 1,
        pending: BTreeMap::new(),
        data: Vec::new(),
        unacked: 0,
        reading: None,
        closed: false,
    };
    let id = follower
        .send("process/start", windowed("stream", &bash(&script), window))
        .await;
    let started = follower.response(id).await;
    assert!(started.get("result").is_some(), "{started}");
    let mut cuts = 0;
    while !follower.closed {
        if cuts < 4 && follower.data.len() > (cuts + 1) * total / 5 {
            cuts += 1;
            follower.cut_and_resume(&url, &session).await;
        }
        let frame = tokio::time::timeout(Duration::from_secs(30), recv_json(&mut follower.ws))
            .await
            .expect("a frame");
        follower.take(frame).await;
    }
    assert_eq!(cuts, 4);
    let sent = std::fs::read(&copy).expect("the copy");
    assert_eq!(sent.len(), total);
    assert_eq!(follower.data.len(), total, "bytes received");
    assert!(
        follower.data == sent,
        "the stream differs from what was sent"
    );
    server.shutdown().await;
}
