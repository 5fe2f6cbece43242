//! WebSocket settings shared by the server's listener and the client.

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

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
