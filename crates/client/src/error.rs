//! Errors of the client: [`ClientError`], and how it becomes an
//! [`EnvError`] (a connection that never opened is `EnvError::Connect`,
//! "cannot connect ..."; one that was open and ended is `ConnectionLost`).

use std::time::Duration;

use execd_environment::EnvError;

/// What can go wrong on a connection. `target` is always the URL (or command) connected to.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The connection could not be opened (nothing listens, a bad URL, TLS, a timeout).
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// Where.
        target: String,
        /// Why.
        reason: String,
    },
    /// Nothing listens at the address (connection refused): no server
    /// process is there, so no session of one survives either.
    #[error("cannot connect to {target}: connection refused: no server listens there (is execd serve running?)")]
    NothingListens {
        /// Where.
        target: String,
    },
    /// The server answered the upgrade with HTTP 401.
    #[error("{}", unauthorized(target, *sent_token))]
    Unauthorized {
        /// Where.
        target: String,
        /// Whether a token was sent (then it was the wrong one).
        sent_token: bool,
    },
    /// The server answered the upgrade with another refusal (403, 503, ...).
    #[error("the server at {target} refused the connection (HTTP {status}): {reason}")]
    Refused {
        /// Where.
        target: String,
        /// The HTTP status.
        status: u16,
        /// The server's reason (its body), or the status's name.
        reason: String,
    },
    /// Something answered at the address, but not as an execd server does.
    #[error("{target} is not an execd server (it answered {answered})")]
    NotExecd {
        /// Where.
        target: String,
        /// What it answered instead (an HTTP status, or bytes that are not HTTP).
        answered: String,
    },
    /// The connection was open and ended.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The connection was lost while this call was in flight, and the call
    /// is not safe to repeat (it may or may not have been applied).
    #[error("{method} was interrupted by a lost connection; it may or may not have been applied")]
    Interrupted { method: String },
    /// The server answered with a JSON-RPC error.
    #[error("server error {code}: {message}")]
    Server {
        /// The JSON-RPC code.
        code: i64,
        /// The server's message (it names the offending value).
        message: String,
        /// The error's `data` (e.g. which limit refused the request).
        data: Option<serde_json::Value>,
    },
    /// No answer in time.
    #[error("{method} got no answer within {after:?}")]
    Timeout {
        /// The method called.
        method: String,
        /// How long it waited.
        after: Duration,
    },
    /// The server broke the protocol.
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
            | ClientError::NothingListens { .. }
            | ClientError::Unauthorized { .. }
            | ClientError::Refused { .. }
            | ClientError::NotExecd { .. } => EnvError::Connect(err.to_string()),
            ClientError::ConnectionLost(reason) => EnvError::ConnectionLost(reason),
            ClientError::Interrupted { .. } => EnvError::ConnectionLost(err.to_string()),
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
