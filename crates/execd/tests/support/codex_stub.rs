//! A stub of the model's Responses API for the codex CLI tests: a loopback
//! HTTP/1.1 server that answers each `POST …/responses` with a short
//! server-sent-events stream carrying the next tool call of a script (or a
//! final "done" message once the script is used up), answers any `GET`
//! (codex's model list) with an empty list, and keeps every request body so a
//! test can read what codex sent back to the model (the tools' outputs).

use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the model asks for in one turn.
#[derive(Clone, Debug)]
pub enum ToolCall {
    /// A function tool (`exec_command`, `write_stdin`) with JSON arguments.
    Function { name: String, arguments: Value },
    /// A freeform custom tool (`apply_patch`) with its raw input.
    Custom { name: String, input: String },
}

/// Decides the next tool call from the requests seen so far (their bodies);
/// `None` ends the turn with a final message.
pub type Script = Box<dyn Fn(&[Value]) -> Option<ToolCall> + Send + Sync>;

/// A running stub: its base URL and every request body it received.
pub struct StubModel {
    pub base_url: String,
    pub requests: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StubModel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StubModel {
    pub async fn start(script: Script) -> StubModel {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind stub");
        let port = listener.local_addr().expect("stub address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_connection(stream, seen.clone(), script.clone()));
            }
        });
        StubModel {
            base_url: format!("http://127.0.0.1:{port}/v1"),
            requests,
            task,
        }
    }

    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().expect("stub lock").clone()
    }
}

/// The output codex returned for `call_id`, as text, from any request body.
pub fn tool_output(requests: &[Value], call_id: &str) -> Option<String> {
    requests.iter().rev().find_map(|body| {
        body["input"].as_array()?.iter().find_map(|item| {
            let kind = item["type"].as_str()?;
            if !kind.ends_with("_output") || item["call_id"].as_str()? != call_id {
                return None;
            }
            Some(match &item["output"] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
        })
    })
}

async fn serve_connection(
    stream: TcpStream,
    requests: Arc<Mutex<Vec<Value>>>,
    script: Arc<Script>,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let (content_type, reply) = if request_line.starts_with("POST") {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let seen = {
                let mut all = requests.lock().expect("stub lock");
                all.push(body);
                all.clone()
            };
            ("text/event-stream", events(seen.len() - 1, script(&seen)))
        } else {
            ("application/json", r#"{"data":[],"models":[]}"#.to_string())
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
            reply.len()
        );
        if write.write_all(head.as_bytes()).await.is_err()
            || write.write_all(reply.as_bytes()).await.is_err()
        {
            return;
        }
    }
}

/// The SSE stream for turn `turn`: created, one output item, completed.
fn events(turn: usize, call: Option<ToolCall>) -> String {
    let call_id = format!("call{turn}");
    let item = match call {
        Some(ToolCall::Function { name, arguments }) => json!({
            "type": "function_call", "id": format!("fc{turn}"), "name": name,
            "arguments": arguments.to_string(), "call_id": call_id,
        }),
        Some(ToolCall::Custom { name, input }) => json!({
            "type": "custom_tool_call", "id": format!("ct{turn}"), "name": name,
            "input": input, "call_id": call_id,
        }),
        None => json!({
            "type": "message", "role": "assistant", "id": format!("m{turn}"),
            "content": [{"type": "output_text", "text": "done"}],
        }),
    };
    let usage = json!({
        "input_tokens": 1, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 1, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 2,
    });
    [
        json!({"type": "response.created", "response": {"id": format!("r{turn}")}}),
        json!({"type": "response.output_item.done", "item": item}),
        json!({"type": "response.completed", "response": {"id": format!("r{turn}"), "usage": usage}}),
    ]
    .iter()
    .map(|event| format!("event: {}\ndata: {event}\n\n", event["type"].as_str().unwrap_or("")))
    .collect()
}
