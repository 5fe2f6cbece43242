//! The server's resource limits, tried as a hostile client would: half-open
//! upgrades, too many connections, processes, requests in flight, frames
//! over the size limit, a stdin queue that fills, requests with a null id,
//! and output retained across many finished processes. Every refusal must
//! be an error naming the limit and its value, and everything else must
//! keep working. (Filesystem limits: `fs_limits.rs`.)

use execd_test_support::*;

use std::net::SocketAddr;
use std::time::Duration;

use execd_server::ServerConfig;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};

/// An error reply refused by `limit` at `value`, saying so in its message.
fn assert_limit(error: &Value, limit: &str, value: u64) {
    assert_eq!(error["code"], json!(-32600), "{error}");
    assert_eq!(error["data"]["limit"], json!(limit), "{error}");
    assert_eq!(error["data"]["value"], json!(value), "{error}");
    let message = error["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("the limit is {value}")),
        "{message}"
    );
}

/// A TCP connection that sends half of an HTTP upgrade and stops.
async fn half_open(addr: SocketAddr) -> TcpStream {
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        .await
        .expect("send half a request");
    socket
}

/// Wait (bounded) until the server has closed `socket`.
async fn assert_closed(socket: &mut TcpStream) {
    let mut buffer = [0u8; 64];
    match tokio::time::timeout(TIMEOUT, socket.read(&mut buffer)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("server sent {:?}", String::from_utf8_lossy(&buffer[..n])),
        Err(_) => panic!("the server kept a half-open connection for {TIMEOUT:?}"),
    }
}

/// True while the server keeps `socket` open (and has sent nothing).
fn still_open(socket: &TcpStream) -> bool {
    let mut buffer = [0u8; 1];
    matches!(socket.try_read(&mut buffer), Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test]
async fn a_flood_of_half_open_upgrades_drops_the_oldest_and_clients_still_connect() {
    let config = ServerConfig {
        max_handshakes: 8,
        handshake_timeout: Duration::from_secs(600),
        ..ServerConfig::default()
    };
    let server = start_server_with(config).await;
    let mut sockets = Vec::new();
    for _ in 0..20 {
        sockets.push(half_open(server.local_addr()).await);
    }
    // The twelve oldest are closed at once, long before any timeout ...
    for socket in &mut sockets[..12] {
        assert_closed(socket).await;
    }
    // ... the newest eight wait for their handshake ...
    assert!(sockets[12..].iter().all(still_open));
    // ... and a client that completes its handshake is served.
    let mut client = Client::connect_initialized(&server.url()).await;
    assert_eq!(
        client.run("p", &["echo", "served"]).await.stdout_str(),
        "served\n"
    );
    // Shutdown does not wait for the half-open ones.
    tokio::time::timeout(TIMEOUT, server.shutdown())
        .await
        .expect("shutdown waited on half-open connections");
}

#[tokio::test]
async fn half_open_upgrades_are_closed_after_the_handshake_timeout() {
    let config = ServerConfig {
        handshake_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = start_server_with(config).await;
    let mut sockets = Vec::new();
    for _ in 0..5 {
        sockets.push(half_open(server.local_addr()).await);
    }
    let mut client = Client::connect_initialized(&server.url()).await;
    for socket in &mut sockets {
        assert_closed(socket).await;
    }
    // The connected client outlives the timeout.
    assert_eq!(
        client.run("p", &["echo", "still"]).await.stdout_str(),
        "still\n"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_refused_with_503_and_the_reason() {
    let config = ServerConfig {
        max_connections: 2,
        ..ServerConfig::default()
    };
    let server = start_server_with(config).await;
    let first = Client::connect_initialized(&server.url()).await;
    let mut second = Client::connect_initialized(&server.url()).await;
    let refused = tokio_tungstenite::connect_async(server.url())
        .await
        .expect_err("a third connection");
    let tungstenite::Error::Http(response) = refused else {
        panic!("expected an HTTP refusal, got {refused}");
    };
    assert_eq!(response.status().as_u16(), 503);
    let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
    assert!(
        body.contains("the limit is 2") && body.contains("--max-connections"),
        "{body}"
    );
    // The two connected are unaffected, and a place that comes free is
    // taken again (the server notices the leave a moment later).
    assert_eq!(second.run("p", &["echo", "ok"]).await.stdout_str(), "ok\n");
    drop(first);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let mut third = loop {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(server.url()).await {
            break Client::from_stream(ws);
        }
        assert!(tokio::time::Instant::now() < deadline, "no place came free");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    third
        .call("initialize", json!({"clientName": "third"}))
        .await
        .expect("initialize");
    server.shutdown().await;
}

fn sleeper(id: &str) -> Value {
    start_params(id, &["sleep", "60"])
}

#[tokio::test]
async fn processes_are_limited_per_connection_and_server_wide() {
    let mut config = ServerConfig {
        max_processes: 3,
        ..ServerConfig::default()
    };
    config.table.max_processes = 2;
    let server = start_server_with(config).await;
    let mut a = Client::connect_initialized(&server.url()).await;
    let mut b = Client::connect_initialized(&server.url()).await;
    a.start(sleeper("a1")).await;
    a.start(sleeper("a2")).await;
    let error = a.call_expect_error("process/start", sleeper("a3")).await;
    assert_limit(&error, "maxProcessesPerConnection", 2);
    b.start(sleeper("b1")).await;
    let error = b.call_expect_error("process/start", sleeper("b2")).await;
    assert_limit(&error, "maxProcesses", 3);
    // A process that closes frees its place, for any connection.
    a.call("process/terminate", json!({"processId": "a1"}))
        .await
        .unwrap();
    a.wait_closed("a1").await;
    // A failed start takes no place ...
    let error = a
        .call_expect_error("process/start", start_params("bad", &["/no/such/program"]))
        .await;
    assert_eq!(error["code"], -32602);
    // ... so the freed one is there for the other connection.
    b.start(sleeper("b2")).await;
    let error = a.call_expect_error("process/start", sleeper("a4")).await;
    assert_limit(&error, "maxProcesses", 3);
    server.shutdown().await;
}

#[tokio::test]
async fn requests_in_flight_are_limited_per_connection() {
    let config = ServerConfig {
        max_requests_in_flight: 3,
        ..ServerConfig::default()
    };
    let server = start_server_with(config).await;
    let mut client = Client::connect_initialized(&server.url()).await;
    client.start(sleeper("s")).await;
    let poll = json!({"processId": "s", "afterSeq": 0, "waitMs": 60_000});
    let mut waiting = Vec::new();
    for _ in 0..3 {
        waiting.push(client.send_request("process/read", poll.clone()).await);
    }
    let error = client.call_expect_error("process/read", poll.clone()).await;
    assert_limit(&error, "maxRequestsInFlight", 3);
    // Inline methods still answer; the long-polls end when the process does.
    client
        .call("process/terminate", json!({"processId": "s"}))
        .await
        .unwrap();
    for id in waiting {
        let result = client.response(id).await.expect("process/read");
        assert!(result["exited"].as_bool().is_some());
    }
    client.wait_closed("s").await;
    client
        .call("process/read", poll)
        .await
        .expect("a place again");
    server.shutdown().await;
}

#[tokio::test]
async fn a_frame_over_the_limit_gets_an_error_naming_it_then_the_connection_closes() {
    let config = ServerConfig {
        max_frame_bytes: 1024 * 1024,
        ..ServerConfig::default()
    };
    let server = start_server_with(config).await;
    assert_eq!(ServerConfig::default().max_frame_bytes, 64 * 1024 * 1024);
    let mut client = Client::connect_initialized(&server.url()).await;
    // Just under the limit is fine.
    let path = format!("/tmp/execd-limits-frame-{}", std::process::id());
    let params = json!({"path": path, "dataBase64": b64(&vec![7u8; 700 * 1024])});
    client
        .call("fs/writeFile", params)
        .await
        .expect("under the limit");
    std::fs::remove_file(&path).unwrap();

    let (sink, mut stream) = client.into_inner().split();
    let big = format!(
        r#"{{"id":9,"method":"fs/writeFile","params":{{"path":"/tmp/x","dataBase64":"{}"}}}}"#,
        "A".repeat(2 * 1024 * 1024)
    );
    // Sent from a task: the server stops reading at the frame's header.
    let sending = tokio::spawn(async move {
        let mut sink = sink;
        let _ = sink.send(Message::text(big)).await;
        sink
    });
    let reply = loop {
        let message = tokio::time::timeout(TIMEOUT, stream.next())
            .await
            .expect("no reply to the big frame")
            .expect("connection closed without a reply")
            .expect("websocket error before the reply");
        if let Message::Text(text) = message {
            break serde_json::from_str::<Value>(text.as_str()).unwrap();
        }
    };
    assert_eq!(reply["id"], json!(-1), "{reply}");
    assert_limit(&reply["error"], "maxFrameBytes", 1024 * 1024);
    assert!(reply["error"]["message"].as_str().unwrap().contains("2097"));
    // Then the server closes the connection.
    let end = tokio::time::timeout(TIMEOUT, async {
        loop {
            match stream.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    });
    end.await.expect("the connection stayed open");
    drop(sending);
    server.shutdown().await;
}

#[tokio::test]
async fn a_full_stdin_queue_refuses_writes_with_an_error_naming_the_limit() {
    let limit = 1024 * 1024;
    let mut config = ServerConfig::default();
    config.table.max_stdin_queue_bytes = limit;
    let server = start_server_with(config).await;
    let mut client = Client::connect_initialized(&server.url()).await;
    let mut params = sleeper("deaf");
    params["pipeStdin"] = json!(true);
    client.start(params).await;
    let write = |bytes: usize| json!({"processId": "deaf", "chunk": b64(&vec![b'x'; bytes])});
    // The pipe takes 64 KiB; up to the limit is queued ...
    for _ in 0..2 {
        let result = client.call("process/write", write(512 * 1024)).await;
        assert_eq!(result.unwrap()["status"], "accepted");
    }
    // ... and the next write would pass it: refused, nothing written.
    let error = client
        .call_expect_error("process/write", write(512 * 1024))
        .await;
    assert_limit(&error, "maxStdinQueueBytes", limit as u64);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("deaf") && message.contains("queued"),
        "{message}"
    );
    // A small write is refused too while the queue is full; stdin stays open.
    let error = client
        .call_expect_error("process/write", write(100 * 1024))
        .await;
    assert_limit(&error, "maxStdinQueueBytes", limit as u64);
    let status = client.call("process/write", write(0)).await.unwrap();
    assert_eq!(status["status"], "accepted");

    // A program that reads gets everything once it drains: a chunk larger
    // than the limit is taken whole when nothing is queued.
    let mut params = start_params("reader", &["wc", "-c"]);
    params["pipeStdin"] = json!(true);
    client.start(params).await;
    let big = json!({"processId": "reader", "chunk": b64(&vec![b'y'; 3 * 1024 * 1024]), "closeStdin": true});
    let status = client.call("process/write", big).await.unwrap();
    assert_eq!(status["status"], "accepted");
    let out = client.wait_closed("reader").await;
    assert_eq!(out.stdout_str().trim(), (3 * 1024 * 1024).to_string());
    server.shutdown().await;
}

#[tokio::test]
async fn a_request_with_a_null_id_is_answered_under_null() {
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;
    client
        .send_raw(r#"{"id":null,"method":"process/start","params":{}}"#)
        .await;
    // The next frame is that answer (not the reply to a later request).
    client
        .send_request("process/terminate", json!({"processId": "x"}))
        .await;
    let frame = client.recv_frame().await;
    assert!(frame.get("id").is_some_and(Value::is_null), "{frame}");
    assert_eq!(frame["error"]["code"], json!(-32600), "{frame}");
    let message = frame["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("null") && message.contains("process/start"),
        "{message}"
    );
    // A notification (no id at all) is still not answered.
    client.notify("initialized", json!({})).await;
    client
        .call("process/terminate", json!({"processId": "y"}))
        .await
        .expect("the connection goes on");
    server.shutdown().await;
}

#[tokio::test]
async fn retained_output_is_capped_server_wide_oldest_closed_first() {
    let budget = 4 * 1024 * 1024;
    let config = ServerConfig {
        max_retained_bytes: budget,
        ..ServerConfig::default()
    };
    let server = start_server_with(config).await;
    let mut a = Client::connect_initialized(&server.url()).await;
    let mut b = Client::connect_initialized(&server.url()).await;
    for n in 0..6 {
        let client = if n % 2 == 0 { &mut a } else { &mut b };
        client
            .run(&format!("p{n}"), &["head", "-c", "1048576", "/dev/zero"])
            .await;
    }
    let mut retained = Vec::new();
    for n in 0..6 {
        let client = if n % 2 == 0 { &mut a } else { &mut b };
        let read = client
            .call(
                "process/read",
                json!({"processId": format!("p{n}"), "afterSeq": 0}),
            )
            .await
            .unwrap();
        assert_eq!(read["closed"], json!(true));
        let bytes: usize = read["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| unb64(&c["chunk"]).len())
            .sum();
        retained.push(bytes);
    }
    assert!(
        retained.iter().sum::<usize>() <= budget,
        "retained {retained:?}"
    );
    // The oldest lost their output, the newest kept all of it.
    assert_eq!(retained[0], 0, "retained {retained:?}");
    assert_eq!(retained[5], 1024 * 1024, "retained {retained:?}");
    server.shutdown().await;
}
