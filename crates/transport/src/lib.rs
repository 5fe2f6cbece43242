//! What both ends of an execd connection share below the protocol.
//!
//! - [`outbox`]: the sending half of a connection, shared by every producer
//!   of frames (server handlers and supervisors; client requests).
//! - [`ws`]: the WebSocket settings both ends use.

pub mod outbox;
pub mod ws;

pub use outbox::{Frame, Outbox};
