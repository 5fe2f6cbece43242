//! `http/request` (codex dialect) against a tiny HTTP server of the test's
//! own on 127.0.0.1: a buffered GET, a large body streamed as ordered
//! `http/request/bodyDelta`s, bodies over the limit (declared and
//! undeclared), a non-http scheme, a server that never answers (the
//! request's timeout), a network-restricted codex sandbox, and the bound
//! on requests running at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use execd_server::codex_limits::CodexLimits;
use execd_server::ServerConfig;
use execd_test_support::wire::assert_error;
use execd_test_support::{b64, noise, start_server_with, unb64, Client};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the test server does with each connection.
#[derive(Clone)]
enum Answer {
    /// A 200 with this body and its Content-Length.
    Body(Vec<u8>),
    /// A 200 whose body has no length: written in pieces, then the
    /// connection closes.
    Pieces(Vec<u8>, usize),
    /// Read the request and say nothing.
    Never,
}

/// A loopback HTTP server: its address, how many connections it took, and
/// the request heads it read.
struct TestHttp {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    heads: mpsc::UnboundedReceiver<String>,
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn answer(mut stream: TcpStream, answer: Answer, heads: mpsc::UnboundedSender<String>) {
    let head = read_head(&mut stream).await;
    let _ = heads.send(head);
    match answer {
        Answer::Body(body) => {
            let top = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Test: yes\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(top.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        }
        Answer::Pieces(body, piece) => {
            let top = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
            let _ = stream.write_all(top.as_bytes()).await;
            for part in body.chunks(piece) {
                if stream.write_all(part).await.is_err() {
                    return;
                }
                let _ = stream.flush().await;
                tokio::task::yield_now().await;
            }
        }
        Answer::Never => {
            let mut rest = [0u8; 1024];
            while let Ok(n) = stream.read(&mut rest).await {
                if n == 0 {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown().await;
}

async fn test_http(reply: Answer) -> TestHttp {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let (tx, heads) = mpsc::unbounded_channel();
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(answer(stream, reply.clone(), tx.clone()));
        }
    });
    TestHttp {
        addr,
        accepted,
        heads,
    }
}

async fn codex_client(config: ServerConfig) -> (execd_server::WsServer, Client) {
    let server = start_server_with(config).await;
    let mut client = Client::connect(&server.url()).await;
    client
        .call("initialize", json!({"clientName": "codex-environment"}))
        .await
        .expect("initialize");
    client.notify("initialized", json!({})).await;
    (server, client)
}

fn limits(change: impl FnOnce(&mut CodexLimits)) -> ServerConfig {
    let mut codex = CodexLimits::default();
    change(&mut codex);
    ServerConfig {
        codex,
        ..ServerConfig::default()
    }
}

/// The body deltas of `request_id` up to the `done` one, checked for order.
async fn deltas(client: &mut Client, request_id: &str) -> Vec<Value> {
    let mut queued: std::collections::VecDeque<Value> = client.take_notifications().into();
    let mut found = Vec::new();
    loop {
        let frame = match queued.pop_front() {
            Some(frame) => frame,
            None => tokio::time::timeout(Duration::from_secs(20), client.recv_frame())
                .await
                .expect("the next body delta in time"),
        };
        if frame["method"] != json!("http/request/bodyDelta") {
            continue;
        }
        let params = frame["params"].clone();
        assert_eq!(params["requestId"], json!(request_id), "{params}");
        assert_eq!(
            params["seq"],
            json!(found.len() + 1),
            "deltas in order: {params}"
        );
        let done = params["done"] == json!(true);
        found.push(params);
        if done {
            return found;
        }
    }
}

#[tokio::test]
async fn get_returns_status_headers_and_body() {
    let mut http = test_http(Answer::Body(b"hello over http".to_vec())).await;
    let (_server, mut client) = codex_client(ServerConfig::default()).await;
    let result = client
        .call(
            "http/request",
            json!({"method": "GET", "url": format!("http://{}/path?q=1", http.addr),
                   "headers": [{"name": "X-Asked", "value": "by codex"}], "requestId": "r1"}),
        )
        .await
        .expect("GET");
    assert_eq!(result["status"], json!(200), "{result}");
    assert_eq!(unb64(&result["bodyBase64"]), b"hello over http");
    let headers = result["headers"].as_array().expect("headers");
    assert!(
        headers.contains(&json!({"name": "x-test", "value": "yes"})),
        "{result}"
    );
    let head = http
        .heads
        .recv()
        .await
        .expect("the request reached the server");
    assert!(head.starts_with("GET /path?q=1 HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("x-asked: by codex"),
        "{head}"
    );

    let posted = client
        .call(
            "http/request",
            json!({"method": "POST", "url": format!("http://{}/in", http.addr),
                   "bodyBase64": b64(b"abc"), "requestId": "r2"}),
        )
        .await
        .expect("POST");
    assert_eq!(posted["status"], json!(200));
    let head = http
        .heads
        .recv()
        .await
        .expect("the POST reached the server");
    assert!(head.starts_with("POST /in HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 3"),
        "{head}"
    );
}

#[tokio::test]
async fn a_large_body_streams_as_ordered_deltas() {
    let body = noise(3 * 1024 * 1024 + 17, 7);
    let http = test_http(Answer::Pieces(body.clone(), 64 * 1024)).await;
    let (_server, mut client) = codex_client(ServerConfig::default()).await;
    let result = client
        .call(
            "http/request",
            json!({"method": "GET", "url": format!("http://{}/big", http.addr),
                   "requestId": "big", "streamResponse": true}),
        )
        .await
        .expect("streamed GET");
    assert_eq!(result["status"], json!(200), "{result}");
    assert_eq!(
        result["bodyBase64"],
        json!(""),
        "streamed: no body in the result"
    );
    let deltas = deltas(&mut client, "big").await;
    assert!(deltas.len() > 2, "several deltas, got {}", deltas.len());
    let last = deltas.last().expect("a last delta");
    assert!(last.get("error").is_none(), "{last}");
    let got: Vec<u8> = deltas
        .iter()
        .flat_map(|d| unb64(&d["deltaBase64"]))
        .collect();
    assert_eq!(got.len(), body.len());
    assert!(got == body, "the body arrives whole and in order");
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused() {
    let config = limits(|c| c.max_http_body_bytes = 64 * 1024);
    let declared = test_http(Answer::Body(vec![b'x'; 200 * 1024])).await;
    let undeclared = test_http(Answer::Pieces(vec![b'y'; 200 * 1024], 16 * 1024)).await;
    let (_server, mut client) = codex_client(config).await;
    for (http, what) in [(&declared, "declared"), (&undeclared, "undeclared")] {
        let err = client
            .call_expect_error(
                "http/request",
                json!({"method": "GET", "url": format!("http://{}/", http.addr), "requestId": what}),
            )
            .await;
        assert_error(&err, -32600, &["64 KiB", "--max-http-body-bytes"], what);
        assert_eq!(
            err["data"],
            json!({"limit": "maxHttpBodyBytes", "value": 64 * 1024})
        );
    }
    let result = client
        .call(
            "http/request",
            json!({"method": "GET", "url": format!("http://{}/", undeclared.addr),
                   "requestId": "s", "streamResponse": true}),
        )
        .await
        .expect("the head of a streamed body");
    assert_eq!(result["status"], json!(200));
    let deltas = deltas(&mut client, "s").await;
    let last = deltas.last().expect("a last delta");
    let error = last["error"].as_str().expect("the stream ends in an error");
    assert!(error.contains("--max-http-body-bytes"), "{error}");
    let passed: usize = deltas.iter().map(|d| unb64(&d["deltaBase64"]).len()).sum();
    assert!(
        passed <= 64 * 1024,
        "no more than the limit passed: {passed}"
    );
    // The connection keeps working.
    let small = test_http(Answer::Body(b"ok".to_vec())).await;
    let ok = client
        .call(
            "http/request",
            json!({"method": "GET", "url": format!("http://{}/", small.addr), "requestId": "ok"}),
        )
        .await
        .expect("a small body after the refusals");
    assert_eq!(unb64(&ok["bodyBase64"]), b"ok");
}

#[tokio::test]
async fn only_http_and_https_urls() {
    let (_server, mut client) = codex_client(ServerConfig::default()).await;
    for url in ["ftp://127.0.0.1/x", "file:///etc/passwd"] {
        let err = client
            .call_expect_error(
                "http/request",
                json!({"method": "GET", "url": url, "requestId": "s"}),
            )
            .await;
        assert_error(&err, -32602, &[url, "only http and https"], url);
    }
    let err = client
        .call_expect_error(
            "http/request",
            json!({"method": "GET", "url": "not a url", "requestId": "s"}),
        )
        .await;
    assert_error(&err, -32602, &["not a url"], "relative");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let http = test_http(Answer::Never).await;
    let (_server, mut client) = codex_client(ServerConfig::default()).await;
    let started = std::time::Instant::now();
    let err = client
        .call_expect_error(
            "http/request",
            json!({"method": "GET", "url": format!("http://{}/", http.addr),
                   "requestId": "t", "timeoutMs": 300}),
        )
        .await;
    assert_error(&err, -32603, &["timed out after 300 ms"], "timeoutMs");
    assert!(started.elapsed() < Duration::from_secs(10));

    // Without timeoutMs the server's own ceiling applies.
    let config = limits(|c| c.max_http_duration = Duration::from_millis(200));
    let (_server, mut client) = codex_client(config).await;
    let err = client
        .call_expect_error(
            "http/request",
            json!({"method": "GET", "url": format!("http://{}/", http.addr),
                   "requestId": "t", "timeoutMs": 60_000}),
        )
        .await;
    assert_error(&err, -32603, &["timed out after 200 ms"], "ceiling");
}

#[tokio::test]
async fn a_network_restricted_sandbox_is_refused() {
    let http = test_http(Answer::Body(b"secret".to_vec())).await;
    let (_server, mut client) = codex_client(ServerConfig::default()).await;
    let sandbox = json!({"permissions": {"type": "managed",
        "file_system": {"type": "unrestricted"}, "network": "restricted"}});
    let err = client
        .call_expect_error(
            "http/request",
            json!({"method": "GET", "url": format!("http://{}/", http.addr),
                   "requestId": "n", "sandbox": sandbox}),
        )
        .await;
    assert_error(&err, -32600, &["network", "restricted"], "sandbox");
    assert_eq!(
        http.accepted.load(Ordering::SeqCst),
        0,
        "no connection was made"
    );
    let open = json!({"permissions": {"type": "managed",
        "file_system": {"type": "unrestricted"}, "network": "enabled"}});
    let result = client
        .call(
            "http/request",
            json!({"method": "GET", "url": format!("http://{}/", http.addr),
                   "requestId": "n2", "sandbox": open}),
        )
        .await
        .expect("network enabled");
    assert_eq!(unb64(&result["bodyBase64"]), b"secret");
}

#[tokio::test]
async fn requests_running_at_once_are_bounded() {
    let config = limits(|c| c.max_http_requests = 1);
    let silent = test_http(Answer::Never).await;
    let quick = test_http(Answer::Body(b"fine".to_vec())).await;
    let (_server, mut client) = codex_client(config).await;
    let hanging = client
        .send_request(
            "http/request",
            json!({"method": "GET", "url": format!("http://{}/", silent.addr),
                   "requestId": "h", "timeoutMs": 1500}),
        )
        .await;
    let err = client
        .call_expect_error(
            "http/request",
            json!({"method": "GET", "url": format!("http://{}/", quick.addr), "requestId": "q"}),
        )
        .await;
    assert_error(
        &err,
        -32600,
        &["--max-http-requests", "1"],
        "second request",
    );
    assert_eq!(err["data"], json!({"limit": "maxHttpRequests", "value": 1}));
    let timed_out = client
        .response(hanging)
        .await
        .expect_err("the first times out");
    assert_error(&timed_out, -32603, &["timed out"], "first");
    let result = client
        .call(
            "http/request",
            json!({"method": "GET", "url": format!("http://{}/", quick.addr), "requestId": "q2"}),
        )
        .await
        .expect("a place is free again");
    assert_eq!(unb64(&result["bodyBase64"]), b"fine");
}
