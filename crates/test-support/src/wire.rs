//! The protocol as the raw-wire tests write it: error codes and checking an
//! error object, base64 chunks, the JSON `process/start` params most tests
//! use (pipe, stdin, PTY), and a raw WebSocket: connecting, and reading one
//! message or JSON text frame off it, each bounded by [`TIMEOUT`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::TIMEOUT;

/// JSON-RPC error codes, written out so that a test does not take them from
/// the code under test.
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// execd's code for a filesystem path that does not exist.
pub const NOT_FOUND: i64 = -32004;

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

/// The argv of `bash -c script`.
pub fn bash(script: &str) -> [&str; 3] {
    ["bash", "-c", script]
}

/// `process/start` params for a pipe process.
pub fn start_params(id: &str, argv: &[&str]) -> Value {
    json!({
        "processId": id, "argv": argv, "cwd": "/tmp", "env": basic_env(),
        "tty": false, "pipeStdin": false, "arg0": null
    })
}

/// `process/start` params for a pipe process whose stdin is a pipe.
pub fn stdin_params(id: &str, argv: &[&str]) -> Value {
    let mut params = start_params(id, argv);
    params["pipeStdin"] = json!(true);
    params
}

/// `process/start` params for a PTY process with `TERM=xterm-256color`.
pub fn pty_params(id: &str, argv: &[&str]) -> Value {
    let mut params = start_params(id, argv);
    params["tty"] = json!(true);
    params["env"]["TERM"] = json!("xterm-256color");
    params
}

/// Check an error object's code, and that its message contains every needle.
pub fn assert_error(error: &Value, code: i64, needles: &[&str], context: &str) {
    assert_eq!(
        error["code"],
        json!(code),
        "{context}: wrong code in {error}"
    );
    let message = error["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{context}: error has no message: {error}"));
    for needle in needles {
        assert!(
            message.contains(needle),
            "{context}: message {message:?} does not name {needle:?}"
        );
    }
}

/// A client's WebSocket to a server.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Open a WebSocket (bounded); the stream and the server's handshake answer.
pub async fn connect_ws<R>(request: R) -> (Ws, Response)
where
    R: IntoClientRequest + Unpin,
{
    tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect timed out")
        .expect("connect")
}

/// Next WebSocket message (bounded); panics on timeout, end or error.
pub async fn recv_message(ws: &mut Ws) -> Message {
    tokio::time::timeout(TIMEOUT, ws.next())
        .await
        .expect("timed out waiting for a frame")
        .expect("connection closed")
        .expect("websocket error")
}

/// Next text frame, parsed; other data frames are skipped, a close panics.
pub async fn recv_json(ws: &mut Ws) -> Value {
    loop {
        match recv_message(ws).await {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str())
                    .unwrap_or_else(|err| panic!("server sent invalid JSON {text:?}: {err}"))
            }
            Message::Close(frame) => panic!("server closed the connection: {frame:?}"),
            _ => continue,
        }
    }
}
