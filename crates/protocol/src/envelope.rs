//! The JSON-RPC 2.0-style envelope: request ids, incoming message
//! classification, error objects and the error codes the protocol uses.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request id: clients may use integers or strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Int(i64),
    Str(String),
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestId::Int(n) => write!(f, "{n}"),
            RequestId::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// Error codes used on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// -32600: malformed frame, unknown process, duplicate process id, call before `initialize`.
    InvalidRequest,
    /// -32601
    MethodNotFound,
    /// -32602
    InvalidParams,
    /// -32603
    Internal,
    /// -32004: filesystem path not found.
    NotFound,
}

impl ErrorCode {
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::InvalidRequest => -32600,
            ErrorCode::MethodNotFound => -32601,
            ErrorCode::InvalidParams => -32602,
            ErrorCode::Internal => -32603,
            ErrorCode::NotFound => -32004,
        }
    }
}

/// The `error` member of a response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

impl RpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RpcError {
            code: code.code(),
            message: message.into(),
            data: None,
        }
    }
}

/// One decoded frame, classified by the members it has.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    Request {
        id: RequestId,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    Response {
        id: RequestId,
        result: Result<Value, RpcError>,
    },
}

/// Why a frame could not be classified. The message names what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvelopeError {
    /// The id of the frame if it had a usable one, so the error can be correlated.
    pub id: Option<RequestId>,
    pub message: String,
}

impl Incoming {
    /// Parse one text frame. Errors carry a message naming the problem.
    pub fn parse(text: &str) -> Result<Incoming, EnvelopeError> {
        let value: Value = serde_json::from_str(text).map_err(|err| EnvelopeError {
            id: None,
            message: format!("frame is not valid JSON: {err}"),
        })?;
        Incoming::from_value(value)
    }

    pub fn from_value(value: Value) -> Result<Incoming, EnvelopeError> {
        let Value::Object(mut object) = value else {
            return Err(EnvelopeError {
                id: None,
                message: format!("frame must be a JSON object, got {}", kind_of(&value)),
            });
        };
        let id = match object.remove("id") {
            None | Some(Value::Null) => None,
            Some(raw) => match serde_json::from_value::<RequestId>(raw.clone()) {
                Ok(id) => Some(id),
                Err(_) => {
                    return Err(EnvelopeError {
                        id: None,
                        message: format!("id must be an integer or a string, got {raw}"),
                    })
                }
            },
        };
        let params = object.remove("params").unwrap_or(Value::Null);
        match object.remove("method") {
            Some(Value::String(method)) => Ok(match id {
                Some(id) => Incoming::Request { id, method, params },
                None => Incoming::Notification { method, params },
            }),
            Some(other) => Err(EnvelopeError {
                id,
                message: format!("method must be a string, got {other}"),
            }),
            None => {
                let Some(id) = id else {
                    return Err(EnvelopeError {
                        id: None,
                        message: "frame has neither \"method\" nor \"id\"".to_string(),
                    });
                };
                if let Some(error) = object.remove("error") {
                    let error =
                        serde_json::from_value::<RpcError>(error).map_err(|err| EnvelopeError {
                            id: Some(id.clone()),
                            message: format!("malformed error object: {err}"),
                        })?;
                    Ok(Incoming::Response {
                        id,
                        result: Err(error),
                    })
                } else if let Some(result) = object.remove("result") {
                    Ok(Incoming::Response {
                        id,
                        result: Ok(result),
                    })
                } else {
                    Err(EnvelopeError {
                        id: Some(id),
                        message: "frame has an id but no \"method\", \"result\" or \"error\""
                            .to_string(),
                    })
                }
            }
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Outgoing response, success or error.
#[derive(Debug, Clone, Serialize)]
pub struct Response<'a, T: Serialize> {
    pub id: &'a RequestId,
    #[serde(flatten)]
    pub body: ResponseBody<T>,
}

#[derive(Debug, Clone, Serialize)]
pub enum ResponseBody<T: Serialize> {
    #[serde(rename = "result")]
    Result(T),
    #[serde(rename = "error")]
    Error(RpcError),
}

/// Outgoing notification or request (server → client).
#[derive(Debug, Clone, Serialize)]
pub struct Notification<'a, T: Serialize> {
    pub method: &'a str,
    pub params: T,
}

/// The `initialize` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    pub client_name: String,
    /// Extension: ask for `process/output` as binary frames (see `binary`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binary_output: bool,
}

/// The `initialize` result. `serverVersion` is an extension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// Extension: what this server can do beyond the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// Extension (codex dialect): this environment as codex describes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_info: Option<crate::codex::EnvironmentInfo>,
}

/// `initialize` result extension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// `execPolicy` on `process/start` is honoured.
    pub exec_policy: bool,
    /// What `sandbox` on `process/start` can enforce on this kernel.
    pub sandbox: crate::sandbox::SandboxFeatures,
    /// `process/output` comes as binary frames on this connection.
    #[serde(default)]
    pub binary_output: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_frames() {
        assert!(matches!(
            Incoming::parse(r#"{"id":1,"method":"x","params":{}}"#),
            Ok(Incoming::Request {
                id: RequestId::Int(1),
                ..
            })
        ));
        assert!(matches!(
            Incoming::parse(r#"{"method":"initialized"}"#),
            Ok(Incoming::Notification { .. })
        ));
        assert!(matches!(
            Incoming::parse(r#"{"id":"a","result":{}}"#),
            Ok(Incoming::Response { result: Ok(_), .. })
        ));
        assert!(Incoming::parse("nope").is_err());
        assert!(Incoming::parse("[1]")
            .unwrap_err()
            .message
            .contains("an array"));
        assert!(Incoming::parse(r#"{"id":1.5,"method":"x"}"#)
            .unwrap_err()
            .message
            .contains("1.5"));
    }
}
