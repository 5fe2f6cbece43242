//! Who may open a connection, decided on the HTTP upgrade: raw WebSocket
//! handshakes (tokio-tungstenite) against a real listener, checking the
//! HTTP status the server answers: 401 without or with a wrong token, 403
//! for a foreign `Origin` or a rebinding `Host`, 101 otherwise, and a
//! refused handshake runs nothing.

use std::time::Duration;

use execd_server::{AccessConfig, ServerConfig, WsServer};
use execd_transport::token::Token;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::{Error, Message};

const TIMEOUT: Duration = Duration::from_secs(30);
const TOKEN: &str = "0123456789abcdef-test-token";

async fn server(access: AccessConfig) -> WsServer {
    let config = ServerConfig {
        access,
        ..ServerConfig::default()
    };
    execd_server::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("bind")
}

fn with_token() -> AccessConfig {
    AccessConfig {
        token: Some(Token::new(TOKEN, "test").unwrap()),
        ..AccessConfig::default()
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Handshake with extra headers; the socket, or the refusal's status and body.
async fn handshake(url: &str, headers: &[(&str, &str)]) -> Result<Ws, (StatusCode, String)> {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        let value = HeaderValue::from_str(value).expect("a valid header value");
        request.headers_mut().insert(name, value);
    }
    let connect = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(TIMEOUT, connect)
        .await
        .expect("handshake timed out")
    {
        Ok((ws, response)) => {
            assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
            Ok(ws)
        }
        Err(Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((response.status(), body))
        }
        Err(other) => panic!("handshake failed without an HTTP answer: {other}"),
    }
}

fn refused(result: Result<Ws, (StatusCode, String)>) -> (StatusCode, String) {
    match result {
        Ok(_) => panic!("the handshake was accepted"),
        Err(refusal) => refusal,
    }
}

async fn send(ws: &mut Ws, value: Value) {
    let frame = Message::text(value.to_string());
    tokio::time::timeout(TIMEOUT, ws.send(frame))
        .await
        .expect("send timed out")
        .expect("send");
}

/// The connection works: `initialize` and a real command's output.
async fn assert_serves(mut ws: Ws) {
    send(
        &mut ws,
        json!({"id": 1, "method": "initialize", "params": {"clientName": "handshake-test"}}),
    )
    .await;
    send(
        &mut ws,
        json!({"id": 2, "method": "process/start", "params": {
            "processId": "p", "argv": ["bash", "-c", "echo served"], "cwd": "/",
            "env": {"PATH": "/usr/bin:/bin"}, "tty": false, "pipeStdin": false, "arg0": null}}),
    )
    .await;
    loop {
        let frame = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("no frame in time")
            .expect("connection closed")
            .expect("websocket error");
        let Message::Text(text) = frame else { continue };
        let value: Value = serde_json::from_str(text.as_str()).unwrap();
        if value["method"] == "process/output" {
            let chunk = value["params"]["chunk"].as_str().unwrap();
            assert_eq!(chunk, "c2VydmVkCg==", "expected 'served\\n': {value}");
            return;
        }
        assert!(value.get("error").is_none(), "error reply: {value}");
    }
}

#[tokio::test]
async fn no_token_is_401() {
    let server = server(with_token()).await;
    let (status, body) = refused(handshake(&server.url(), &[]).await);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("Authorization"), "body: {body}");
    // Another scheme fares no better.
    let (status, _) =
        refused(handshake(&server.url(), &[("authorization", "Basic Zm9vOmJhcg==")]).await);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_token_is_401() {
    let server = server(with_token()).await;
    for wrong in [
        "Bearer nope",
        "Bearer 0123456789abcdef-test-tokeN",
        "Bearer 0123456789abcdef-test-token2",
    ] {
        let (status, body) = refused(handshake(&server.url(), &[("authorization", wrong)]).await);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{wrong}: {body}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn right_token_is_101_and_serves() {
    let server = server(with_token()).await;
    let bearer = format!("Bearer {TOKEN}");
    let ws = handshake(&server.url(), &[("authorization", &bearer)])
        .await
        .expect("the right token is accepted");
    assert_serves(ws).await;
    // The scheme is case-insensitive.
    let lower = format!("bearer {TOKEN}");
    handshake(&server.url(), &[("authorization", &lower)])
        .await
        .expect("`bearer` is accepted");
    server.shutdown().await;
}

#[tokio::test]
async fn foreign_origin_is_403_even_with_the_token() {
    let server = server(with_token()).await;
    let bearer = format!("Bearer {TOKEN}");
    let (status, body) = refused(
        handshake(
            &server.url(),
            &[
                ("origin", "http://evil.example"),
                ("authorization", &bearer),
            ],
        )
        .await,
    );
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("evil.example"), "body: {body}");
    server.shutdown().await;
}

#[tokio::test]
async fn origin_checks_are_on_in_the_library_default() {
    let server = server(AccessConfig::default()).await;
    let (status, _) = refused(handshake(&server.url(), &[("origin", "http://evil.example")]).await);
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = refused(handshake(&server.url(), &[("origin", "null")]).await);
    assert_eq!(status, StatusCode::FORBIDDEN);
    // No Origin (not a browser) and no token configured: accepted.
    assert_serves(handshake(&server.url(), &[]).await.expect("plain client")).await;
    server.shutdown().await;
}

#[tokio::test]
async fn allowed_origin_is_101() {
    let server = server(AccessConfig {
        allowed_origins: vec!["https://app.example".into()],
        ..with_token()
    })
    .await;
    let bearer = format!("Bearer {TOKEN}");
    let ws = handshake(
        &server.url(),
        &[
            ("origin", "https://app.example"),
            ("authorization", &bearer),
        ],
    )
    .await
    .expect("an allowed origin is accepted");
    assert_serves(ws).await;
    let (status, _) = refused(
        handshake(
            &server.url(),
            &[
                ("origin", "https://other.example"),
                ("authorization", &bearer),
            ],
        )
        .await,
    );
    assert_eq!(status, StatusCode::FORBIDDEN);
    server.shutdown().await;
}

#[tokio::test]
async fn rebinding_host_is_403_on_loopback() {
    let server = server(with_token()).await;
    let port = server.local_addr().port();
    let bearer = format!("Bearer {TOKEN}");
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        format!("localhost.evil.example:{port}"),
    ] {
        let (status, body) = refused(
            handshake(
                &server.url(),
                &[("host", &host), ("authorization", &bearer)],
            )
            .await,
        );
        assert_eq!(status, StatusCode::FORBIDDEN, "Host {host}: {body}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("[::1]:{port}"),
    ] {
        handshake(
            &server.url(),
            &[("host", &host), ("authorization", &bearer)],
        )
        .await
        .unwrap_or_else(|(status, body)| panic!("Host {host} refused: {status} {body}"));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;
    let config = ServerConfig {
        access: with_token(),
        handshake_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = execd_server::bind("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("bind");
    let mut socket = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .expect("connect");
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(TIMEOUT, socket.read(&mut buffer))
        .await
        .expect("the server kept a silent connection open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    server.shutdown().await;
}
