//! Errors of the client.

use std::time::Duration;

use execd_environment::EnvError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("{}", unauthorized(target, *sent_token))]
    Unauthorized { target: String, sent_token: bool },
    #[error("the server at {target} refused the connection (HTTP {status}): {reason}")]
    Refused {
        target: String,
        status: u16,
        reason: String,
    },
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The connection was lost while this call was in flight, and the call
    /// is not safe to repeat (it may or may not have been applied).
    #[error("{method} was interrupted by a lost connection; it may or may not have been applied")]
    Interrupted { method: String },
    #[error("server error {code}: {message}")]
    Server {
        code: i64,
        message: String,
        /// The error's `data` (e.g. which limit refused the request).
        data: Option<serde_json::Value>,
    },
    #[error("{method} got no answer within {after:?}")]
    Timeout { method: String, after: Duration },
    #[error("protocol violation: {0}")]
    Protocol(String),
}

impl From<ClientError> for EnvError {
    fn from(err: ClientError) -> EnvError {
        match err {
            ClientError::Server {
                code,
                message,
                data,
            } => EnvError::from(execd_protocol::RpcError {
                code,
                message,
                data,
            }),
            ClientError::Connect { .. }
            | ClientError::Unauthorized { .. }
            | ClientError::Refused { .. }
            | ClientError::ConnectionLost(_)
            | ClientError::Interrupted { .. } => EnvError::ConnectionLost(err.to_string()),
            ClientError::Timeout { .. } => EnvError::Timeout(err.to_string()),
            ClientError::Protocol(message) => EnvError::Protocol(message),
        }
    }
}

fn unauthorized(target: &str, sent_token: bool) -> String {
    if sent_token {
        format!("the server at {target} refused the token (HTTP 401): set EXECD_TOKEN or --token-file to this server's token")
    } else {
        format!("the server at {target} requires a token (HTTP 401) and none was found: set EXECD_TOKEN or pass --token-file (the default token file is read only for servers on loopback)")
    }
}
