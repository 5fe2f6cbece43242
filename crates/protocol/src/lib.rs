//! Wire types of the execd JSON-RPC protocol: the envelope, every method's
//! params and result, and the notifications. No I/O lives here.
//!
//! The contract is `protocol.md` (version 1, the compatibility baseline) plus
//! the extensions listed in `docs/PROTOCOL.md`; field names are camelCase on
//! the wire. Unknown input fields are ignored so newer clients keep working.

pub mod binary;
pub mod codex;
pub mod env_policy;
pub mod envelope;
pub mod event;
pub mod fs;
pub mod fs_watch;
pub mod incoming;
pub mod limits;
pub mod network;
pub mod path_uri;
pub mod policy;
pub mod process;
pub mod sandbox;
pub mod schema;
pub mod trace;
pub mod transfer;

pub mod base64_bytes;

pub use envelope::{ErrorCode, RequestId, RpcError};
pub use incoming::{EnvelopeError, Incoming, ReplyId};
pub use limits::{Limit, LimitExceeded};
