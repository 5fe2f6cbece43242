//! WebSocket transport: a TCP listener, one task per connection, one JSON
//! message per text frame. Nagle is off: every frame leaves at once.
//! permessage-deflate offers are declined (the handshake still succeeds).

use std::io;
use std::net::SocketAddr;

use futures_util::{future, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::connection::{serve_connection, Inbound};
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
    tracker.spawn(accept_loop(
        listener,
        config,
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
    config: ServerConfig,
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
                tracker.spawn(handle_connection(
                    stream,
                    peer,
                    config.clone(),
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

async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    config: ServerConfig,
    shutdown: CancellationToken,
) {
    if let Err(err) = stream.set_nodelay(true) {
        debug!(%peer, %err, "cannot disable Nagle");
    }
    let ws_config = execd_transport::ws::config(config.max_frame_bytes);
    let ws = match tokio_tungstenite::accept_async_with_config(stream, Some(ws_config)).await {
        Ok(ws) => ws,
        Err(err) => {
            debug!(%peer, %err, "WebSocket handshake failed");
            return;
        }
    };
    debug!(%peer, "connected");
    let (sink, stream) = ws.split();
    let incoming = stream
        .take_while(|message| {
            if let Err(err) = message {
                debug!(%peer, %err, "connection error");
            }
            future::ready(matches!(message, Ok(m) if !m.is_close()))
        })
        .filter_map(|message| {
            future::ready(match message {
                Ok(Message::Text(text)) => Some(Inbound::Text(text.as_str().to_owned())),
                Ok(Message::Binary(bytes)) => Some(match String::from_utf8(bytes.to_vec()) {
                    Ok(text) => Inbound::Text(text),
                    Err(_) => Inbound::Invalid(
                        "binary frame is not UTF-8 text; send JSON in text frames".to_string(),
                    ),
                }),
                _ => None,
            })
        });
    let outgoing = sink.with(|frame: Frame| {
        future::ok::<_, tokio_tungstenite::tungstenite::Error>(match frame {
            Frame::Text(text) => Message::text(text),
            Frame::Binary(bytes) => Message::binary(bytes),
        })
    });
    serve_connection(Box::pin(incoming), outgoing, true, config, shutdown).await;
    debug!(%peer, "disconnected");
}
