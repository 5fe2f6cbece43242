//! WebSocket transport: a TCP listener (TLS on it when configured), one task
//! per connection, one JSON message per text frame. The HTTP upgrade goes
//! through [`crate::access`] (token, `Origin`, `Host`) before anything else
//! happens; both handshakes together are bounded in time. Nagle is off:
//! every frame leaves at once. permessage-deflate offers are declined (the
//! handshake still succeeds).

use std::io;
use std::net::SocketAddr;

use futures_util::{future, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::access::{self, Admission, Refusal};
use crate::audit;
use crate::connection::{serve_connection, Inbound, Peer};
use crate::ServerConfig;
use execd_transport::outbox::Frame;

/// A listening server. Dropping it does not stop it; call [`WsServer::shutdown`].
pub struct WsServer {
    local_addr: SocketAddr,
    tls: bool,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// Bind `addr` and start accepting connections in the background.
pub async fn bind(addr: SocketAddr, config: ServerConfig) -> io::Result<WsServer> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let tls = config.tls.is_some();
    let loopback = local_addr.ip().is_loopback();
    let auth = config.access.token.is_some();
    if !loopback && !tls {
        warn!(
            %local_addr,
            "serving plaintext ws:// on a non-loopback address: tokens and all traffic cross the network unencrypted; serve TLS (--tls-cert/--tls-key) or stay on loopback"
        );
    }
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(accept_loop(
        listener,
        loopback,
        config,
        shutdown.clone(),
        tracker.clone(),
    ));
    info!(%local_addr, tls, auth, "listening");
    Ok(WsServer {
        local_addr,
        tls,
        shutdown,
        tracker,
    })
}

impl WsServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL clients connect to, e.g. `ws://127.0.0.1:7878` (`wss://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}", self.local_addr)
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
    loopback: bool,
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
                    loopback,
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

/// TLS (when configured) and the WebSocket upgrade, both within the
/// handshake timeout; then the connection.
async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    loopback_listener: bool,
    config: ServerConfig,
    shutdown: CancellationToken,
) {
    if let Err(err) = stream.set_nodelay(true) {
        debug!(%peer, %err, "cannot disable Nagle");
    }
    let deadline = Instant::now() + config.handshake_timeout;
    let Some(tls) = config.tls.clone() else {
        return upgrade(stream, peer, loopback_listener, deadline, config, shutdown).await;
    };
    match tokio::time::timeout_at(deadline, TlsAcceptor::from(tls).accept(stream)).await {
        Ok(Ok(stream)) => {
            upgrade(stream, peer, loopback_listener, deadline, config, shutdown).await
        }
        Ok(Err(err)) => debug!(%peer, %err, "TLS handshake failed"),
        Err(_) => debug!(%peer, "TLS handshake timed out"),
    }
}

/// The WebSocket upgrade, decided by [`access::check`]; a refusal is
/// answered with its HTTP status and audited.
async fn upgrade<S>(
    stream: S,
    peer: SocketAddr,
    loopback_listener: bool,
    deadline: Instant,
    config: ServerConfig,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws_config = execd_transport::ws::config(config.max_frame_bytes);
    let mut verdict: Option<Result<Admission, Refusal>> = None;
    // The error type is tungstenite's (an HTTP response), fixed by its callback API.
    #[allow(clippy::result_large_err)]
    let decide = |request: &Request, response: Response| {
        let checked = access::check(&config.access, loopback_listener, request);
        let answer = match &checked {
            Ok(_) => Ok(response),
            Err(refusal) => Err(refusal.response()),
        };
        verdict = Some(checked);
        answer
    };
    let accept = tokio_tungstenite::accept_hdr_async_with_config(stream, decide, Some(ws_config));
    let accepted = tokio::time::timeout_at(deadline, accept).await;
    let ws = match accepted {
        Ok(Ok(ws)) => ws,
        Ok(Err(err)) => {
            match &verdict {
                Some(Err(refusal)) => audit::connection_refused(&peer.to_string(), refusal),
                _ => debug!(%peer, %err, "WebSocket handshake failed"),
            }
            return;
        }
        Err(_) => {
            debug!(%peer, "WebSocket handshake timed out");
            return;
        }
    };
    let admission = match verdict {
        Some(Ok(admission)) => admission,
        // Not reached: an upgrade that succeeded went through `decide`.
        _ => return,
    };
    let (sink, stream) = ws.split();
    let incoming = stream
        .take_while(move |message| {
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
    let peer = Peer {
        address: peer.to_string(),
        admission,
    };
    serve_connection(Box::pin(incoming), outgoing, true, config, shutdown, peer).await;
}
