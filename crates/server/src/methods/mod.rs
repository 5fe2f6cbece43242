//! The handlers of the protocol's methods, one module per method family
//! (as mini-redis keeps one file per command): each decodes its params,
//! does the work on the session's backend, and answers now or from a task.
//! [`crate::dispatch`] routes a method name here.
//!
//! - [`session`]: the `initialize` handshake.
//! - [`process`]: the `process/*` methods.
//! - [`fs`]: the `fs/*` methods.
//! - [`dialect`]: today's codex dialect told apart per request (`file://`
//!   paths, `envPolicy`, codex's `sandbox`).
//! - [`environment`]: `environment/info`, `environmentConfig/read`.
//! - [`fs_handles`], [`fs_walk`], [`fs_watch`]: the codex dialect's
//!   `fs/open`/`fs/readBlock`/`fs/close`, `fs/canonicalize`/`fs/walk`,
//!   `fs/watchMissing`.
//! - [`fs_changes`]: `fs/watch`, `fs/unwatch` (extension; `fs/changed`).
//! - [`transfer`]: `fs/upload`, `fs/download` and their binary streams.
//! - [`http`]: `http/request`, its body streamed as `http/request/bodyDelta`.
//! - [`unsupported`]: the codex methods execd leaves out, and why.

pub mod dialect;
pub mod environment;
pub mod fs;
pub mod fs_changes;
pub mod fs_handles;
pub mod fs_walk;
pub mod fs_watch;
pub mod http;
pub mod process;
pub mod session;
pub mod transfer;
pub mod unsupported;

use execd_environment::EnvError;
use execd_protocol::{ErrorCode, RpcError};

pub use crate::rpc::RpcResult;
use serde::Serialize;

/// What a handler did with a request.
pub enum Reply {
    /// The answer, to send now (in frame order).
    Now(RpcResult),
    /// A task of its own answers when the work is done.
    Later,
}

impl From<RpcResult> for Reply {
    fn from(result: RpcResult) -> Reply {
        Reply::Now(result)
    }
}

/// A handler that may answer from a task: its error (bad params) is
/// answered now.
impl From<Result<Reply, RpcError>> for Reply {
    fn from(result: Result<Reply, RpcError>) -> Reply {
        result.unwrap_or_else(|err| Reply::Now(Err(err)))
    }
}

/// A result value as JSON.
pub fn ok<T: Serialize>(value: T) -> RpcResult {
    serde_json::to_value(value).map_err(|err| RpcError::new(ErrorCode::Internal, err.to_string()))
}

/// An environment operation's outcome as JSON or its error.
pub fn done<T: Serialize>(result: Result<T, EnvError>) -> RpcResult {
    ok(result?)
}
