//! `EnvError`: what can go wrong in an environment, the same for local and
//! remote, and its mapping to and from JSON-RPC error codes.

use execd_protocol::{ErrorCode, LimitExceeded, RpcError};

/// What can go wrong in an environment, local or remote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A path or program that does not exist (-32004).
    #[error("{0}")]
    NotFound(String),
    /// Bad params: relative path, empty argv, missing cwd ... (-32602).
    #[error("{0}")]
    InvalidInput(String),
    /// Unknown process, duplicate process id, wrong call order (-32600).
    #[error("{0}")]
    InvalidRequest(String),
    /// The operation failed on the machine (-32603).
    #[error("{0}")]
    Failed(String),
    /// The method does not exist on the other side (-32601).
    #[error("{0}")]
    Unsupported(String),
    /// The server could not be reached: the connection never opened (nothing
    /// listens, a refused token, TLS). The message starts "cannot connect".
    #[error("{0}")]
    Connect(String),
    /// The connection to the server was open and is gone.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// No answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The peer broke the protocol (e.g. a seq gap).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// Refused by one of the server's resource limits (-32600 whose `data`
    /// names the limit); e.g. a full stdin queue, to retry later.
    #[error(transparent)]
    LimitExceeded(LimitExceeded),
}

impl EnvError {
    /// The JSON-RPC code a server answers this error with.
    pub fn code(&self) -> ErrorCode {
        match self {
            EnvError::NotFound(_) => ErrorCode::NotFound,
            EnvError::InvalidInput(_) => ErrorCode::InvalidParams,
            EnvError::InvalidRequest(_) | EnvError::LimitExceeded(_) => ErrorCode::InvalidRequest,
            EnvError::Unsupported(_) => ErrorCode::MethodNotFound,
            EnvError::Failed(_)
            | EnvError::Connect(_)
            | EnvError::ConnectionLost(_)
            | EnvError::Timeout(_)
            | EnvError::Protocol(_) => ErrorCode::Internal,
        }
    }

    /// The message a server sends for this error (no prefix).
    pub fn message(&self) -> String {
        match self {
            EnvError::NotFound(m)
            | EnvError::InvalidInput(m)
            | EnvError::InvalidRequest(m)
            | EnvError::Failed(m)
            | EnvError::Unsupported(m)
            | EnvError::Connect(m) => m.clone(),
            EnvError::LimitExceeded(limit) => limit.message.clone(),
            other => other.to_string(),
        }
    }
}

impl From<EnvError> for RpcError {
    fn from(err: EnvError) -> RpcError {
        match err {
            EnvError::LimitExceeded(limit) => RpcError::from(limit),
            other => RpcError::new(other.code(), other.message()),
        }
    }
}

impl From<LimitExceeded> for EnvError {
    fn from(err: LimitExceeded) -> EnvError {
        EnvError::LimitExceeded(err)
    }
}

impl From<RpcError> for EnvError {
    fn from(err: RpcError) -> EnvError {
        if let Some(limit) = LimitExceeded::from_rpc(&err) {
            return EnvError::LimitExceeded(limit);
        }
        let message = err.message;
        match err.code {
            -32004 => EnvError::NotFound(message),
            -32602 => EnvError::InvalidInput(message),
            -32600 => EnvError::InvalidRequest(message),
            -32601 => EnvError::Unsupported(message),
            _ => EnvError::Failed(message),
        }
    }
}
