//! WebSocket settings shared by the server's listener and the client, and
//! how an outgoing frame ([`Wire`]: data, ping or close) is sent as a
//! WebSocket message.

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;

use crate::outbox::{Frame, Wire};

/// The longest close reason a close frame carries (the frame's payload is
/// at most 125 bytes, 2 of them the code).
pub const MAX_CLOSE_REASON: usize = 123;

/// `frame` as a WebSocket message; a close reason is cut (at a character
/// boundary) to what a close frame carries.
pub fn message(frame: impl Into<Wire>) -> Message {
    match frame.into() {
        Wire::Data(Frame::Text(text)) => Message::text(text),
        Wire::Data(Frame::Binary(bytes)) => Message::binary(bytes),
        Wire::Ping => Message::Ping(Default::default()),
        Wire::Close { code, mut reason } => {
            let mut end = reason.len().min(MAX_CLOSE_REASON);
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
            Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            }))
        }
    }
}

/// WebSocket read size. tungstenite zeroes the free part of its read buffer
/// before every read, even one that finds nothing, so the default 128 KiB
/// costs a 128 KiB memset per small frame; 32 KiB keeps bulk reads large.
pub const READ_BUFFER: usize = 32 * 1024;

/// The configuration of one end: frames and messages up to `max_frame`
/// bytes, the read size above.
pub fn config(max_frame: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame))
}
