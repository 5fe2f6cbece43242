//! The JSON-RPC 2.0-style envelope: request ids, error objects, the error
//! codes the protocol uses, and outgoing responses and notifications
//! (incoming frames are classified in [`crate::incoming`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A request id: clients may use integers or strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    pub client_name: String,
    /// Extension: ask for `process/output` as binary frames (see `binary`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("x-execd-extension" = true))]
    pub binary_output: bool,
    /// Take over this detached (or half-open) session: its processes, logs
    /// and handles move to this connection (codex's field name; `null` is
    /// a new session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub resume_session_id: Option<String>,
}

/// The `initialize` result. `serverVersion` is an extension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub server_version: Option<String>,
    /// Extension: what this server can do beyond the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub capabilities: Option<Capabilities>,
    /// Extension (codex dialect): this environment as codex describes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub environment_info: Option<crate::codex::EnvironmentInfo>,
    /// Extension: true when `resumeSessionId` was taken over (the session
    /// id is that one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("x-execd-extension" = true))]
    pub resumed: bool,
    /// Extension: the account the server runs as (what `execd run` and
    /// `execd shell` build the remote environment from, as ssh does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub account: Option<Account>,
}

/// `initialize` result extension: the account processes run as, from the
/// server's user database (else the server's own environment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// The user name (`root`), or the uid in decimal when it has none.
    pub user: String,
    pub uid: u32,
    /// The home directory (absolute).
    pub home: String,
    /// The login shell (absolute).
    pub shell: String,
}

/// `initialize` result extension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    /// `execPolicy` on `process/start` is honoured.
    pub exec_policy: bool,
    /// What `sandbox` on `process/start` can enforce on this kernel.
    pub sandbox: crate::sandbox::SandboxFeatures,
    /// `process/output` comes as binary frames on this connection.
    #[serde(default)]
    #[schemars(extend("x-execd-extension" = true))]
    pub binary_output: bool,
    /// `fs/upload` and `fs/download` (binary transfer pieces) work on this
    /// connection.
    #[serde(default)]
    #[schemars(extend("x-execd-extension" = true))]
    pub file_transfers: bool,
}
