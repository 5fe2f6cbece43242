//! What both ends of an execd connection share below the protocol.
//!
//! - [`outbox`]: the sending half of a connection, shared by every producer
//!   of frames (server handlers and supervisors; client requests).
//! - [`ws`]: the WebSocket settings both ends use.
//! - [`token`]: the bearer token: where it comes from, the default file.
//! - [`host`]: what counts as a loopback host (URLs, `Host` headers).
//! - [`tls`]: rustls configurations for `wss://`, server and client.

pub mod host;
pub mod outbox;
pub mod tls;
pub mod token;
pub mod ws;

pub use outbox::{Frame, Outbox};
