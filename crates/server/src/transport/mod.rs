//! Transports move text frames; everything else is the connection's job.

pub mod handshakes;
pub mod http;
pub mod stdio;
pub mod ws;
