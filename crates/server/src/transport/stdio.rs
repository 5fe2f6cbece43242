//! stdio transport: one JSON message per line on stdin, replies on stdout.
//! For running execd as a child of a harness, or `ssh host execd serve --listen stdio`.

use execd_transport::outbox::{Frame, Wire};
use futures_util::{future, stream, SinkExt, StreamExt};
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use execd_protocol::limits::{Limit, LimitExceeded};
use execd_protocol::RpcError;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::access::Admission;
use crate::connection::{serve_connection, Inbound, Peer, Transport};
use crate::sessions::Sessions;
use crate::shared::Shared;
use crate::ServerConfig;

/// Serve one connection over stdin/stdout until stdin closes or `shutdown` fires.
pub async fn serve_stdio(config: ServerConfig, shutdown: CancellationToken) {
    let max = config.max_frame_bytes;
    let (grace, max_detached) = (config.detach_grace, config.max_detached_sessions);
    let incoming = FramedRead::new(tokio::io::stdin(), LinesCodec::new_with_max_length(max))
        .take_while(|line| future::ready(!matches!(line, Err(LinesCodecError::Io(_)))))
        .filter_map(move |line| {
            future::ready(match line {
                Ok(line) if line.trim().is_empty() => None,
                Ok(line) => Some(Inbound::Text(Utf8Bytes::from(line))),
                // The codec skips to the next line: the connection goes on.
                Err(_) => Some(Inbound::Invalid(RpcError::from(LimitExceeded::new(
                    Limit::FrameBytes,
                    max,
                    format!("line longer than {max} bytes; it was skipped"),
                )))),
            })
        });
    // Lines carry only text: binary output is never negotiated here, and
    // stdio has no pings or close codes (its session never detaches).
    let outgoing =
        FramedWrite::new(tokio::io::stdout(), LinesCodec::new()).with_flat_map(|frame: Wire| {
            // A line transport has no pings or close frames (the stream
            // just ends); those are dropped, not errors, so a shutdown's
            // close reason costs nothing here. Binary frames are never
            // negotiated on stdio.
            let line = match frame {
                Wire::Data(Frame::Text(text)) => Some(Ok(text)),
                Wire::Data(Frame::Binary(_)) | Wire::Ping | Wire::Close { .. } => None,
            };
            stream::iter(line)
        });
    let peer = Peer {
        address: "stdio".into(),
        admission: Admission::Stdio,
    };
    serve_connection(
        Box::pin(incoming),
        outgoing,
        Transport {
            binary_frames: false,
            detachable: false,
        },
        Shared::new(config),
        // Never detached, so nothing to resume: no grace timers to track.
        Sessions::new(
            grace,
            max_detached,
            CancellationToken::new(),
            TaskTracker::new(),
        ),
        shutdown,
        peer,
    )
    .await;
}
