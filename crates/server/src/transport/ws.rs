//! WebSocket transport: a TCP listener, one task per connection, one JSON
//! message per text frame. Nagle is off: every frame leaves at once.
//! permessage-deflate offers are declined (the handshake still succeeds).
//!
//! Limits at the door: a connection has `handshake_timeout` to upgrade and
//! at most `max_handshakes` may be upgrading at once (the oldest is dropped
//! for a new one, see [`super::handshakes`]); past `max_connections` the
//! upgrade is refused with HTTP 503 and the reason in the body. A frame
//! over `max_frame_bytes` is answered with an error naming the limit, and
//! the connection is closed (the rest of that frame cannot be skipped).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use execd_protocol::limits::{show_bytes, Limit, LimitExceeded};
use execd_protocol::RpcError;
use futures_util::{future, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::connection::{serve_connection, Inbound};
use crate::rpc;
use crate::shared::Shared;
use crate::transport::handshakes::{Handshakes, Ticket};
use crate::ServerConfig;
use execd_transport::outbox::Frame;

/// A listening server. Dropping it does not stop it; call [`WsServer::shutdown`].
pub struct WsServer {
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// Bind `addr` and start accepting connections in the background.
pub async fn bind(addr: SocketAddr, config: ServerConfig) -> io::Result<WsServer> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let handshakes = Handshakes::new(config.max_handshakes);
    tracker.spawn(accept_loop(
        listener,
        Shared::new(config),
        handshakes,
        shutdown.clone(),
        tracker.clone(),
    ));
    info!(%local_addr, "listening");
    Ok(WsServer {
        local_addr,
        shutdown,
        tracker,
    })
}

impl WsServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL clients connect to, e.g. `ws://127.0.0.1:7878`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.local_addr)
    }

    /// Stop accepting, close every connection, terminate and reap every
    /// process, and return when all of that is done.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    handshakes: Arc<Handshakes>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                // In accept order, so the oldest is the first pushed out.
                let ticket = handshakes.enter();
                tracker.spawn(handle_connection(
                    stream,
                    peer,
                    shared.clone(),
                    ticket,
                    shutdown.clone(),
                ));
            }
            Err(err) => {
                // Typically out of descriptors: back off instead of spinning.
                warn!(%err, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// The refusal of an upgrade past the connection limit: HTTP 503 with the
/// reason in the body.
fn refusal(limit: &LimitExceeded) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(format!("{limit}\n")));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    response
}

/// What the connection sees of one WebSocket read.
enum Step {
    Frame(Inbound),
    Skip,
    End,
}

fn step(message: Result<Message, WsError>, config: &ServerConfig, peer: SocketAddr) -> Step {
    match message {
        Ok(Message::Text(text)) => Step::Frame(Inbound::Text(text)),
        Ok(Message::Binary(bytes)) => Step::Frame(match Utf8Bytes::try_from(bytes) {
            Ok(text) => Inbound::Text(text),
            Err(_) => Inbound::Invalid(rpc::invalid_frame(
                "binary frame is not UTF-8 text; send JSON in text frames",
            )),
        }),
        Ok(Message::Close(_)) => Step::End,
        Ok(_) => Step::Skip,
        Err(WsError::Capacity(CapacityError::MessageTooLong { size, .. })) => {
            let max = config.max_frame_bytes;
            let limit = LimitExceeded::new(
                Limit::FrameBytes,
                max,
                format!(
                    "frame of {size} bytes is larger than the server takes ({}); closing the connection. Send large files in pieces (fs/writeFile with append, fs/readFile with offset and length)",
                    show_bytes(max as u64)
                ),
            );
            debug!(%peer, %limit, "frame too large");
            Step::Frame(Inbound::Fatal(RpcError::from(limit)))
        }
        Err(err) => {
            debug!(%peer, %err, "connection error");
            Step::End
        }
    }
}

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    ticket: Ticket,
    shutdown: CancellationToken,
) {
    if let Err(err) = stream.set_nodelay(true) {
        debug!(%peer, %err, "cannot disable Nagle");
    }
    let config = shared.config.clone();
    let ws_config = execd_transport::ws::config(config.max_frame_bytes);
    // Taken during the upgrade, so that a client over the limit hears why.
    let mut slot = None;
    // The result type is tungstenite's `Callback`'s.
    #[allow(clippy::result_large_err)]
    let check_limit = |_: &Request, response: Response| match shared.connection_slot() {
        Ok(permit) => {
            slot = Some(permit);
            Ok(response)
        }
        Err(limit) => {
            debug!(%peer, %limit, "refusing a connection");
            Err(refusal(&limit))
        }
    };
    let upgrade = tokio::time::timeout(
        config.handshake_timeout,
        tokio_tungstenite::accept_hdr_async_with_config(stream, check_limit, Some(ws_config)),
    );
    let ws = tokio::select! {
        upgraded = upgrade => match upgraded {
            Ok(Ok(ws)) => ws,
            Ok(Err(err)) => {
                debug!(%peer, %err, "WebSocket handshake failed");
                return;
            }
            Err(_) => {
                debug!(%peer, "no WebSocket handshake within {:?}; closing", config.handshake_timeout);
                return;
            }
        },
        _ = ticket.pushed_out() => {
            debug!(%peer, "too many connections in their handshake; closing the oldest");
            return;
        }
        _ = shutdown.cancelled() => return,
    };
    drop(ticket);
    let Some(_slot) = slot else {
        return;
    };
    debug!(%peer, "connected");
    let (sink, stream) = ws.split();
    let incoming = stream
        .map(move |message| step(message, &config, peer))
        .take_while(|step| future::ready(!matches!(step, Step::End)))
        .filter_map(|step| {
            future::ready(match step {
                Step::Frame(frame) => Some(frame),
                Step::Skip | Step::End => None,
            })
        });
    let outgoing = sink.with(|frame: Frame| {
        future::ok::<_, tokio_tungstenite::tungstenite::Error>(match frame {
            Frame::Text(text) => Message::text(text),
            Frame::Binary(bytes) => Message::binary(bytes),
        })
    });
    serve_connection(Box::pin(incoming), outgoing, true, shared, shutdown).await;
    debug!(%peer, "disconnected");
}
