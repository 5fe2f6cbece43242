//! WebSocket transport: a TCP listener (TLS on it when configured), one task
//! per connection, one JSON message per text frame. Nagle is off: every
//! frame leaves at once. permessage-deflate offers are declined (the
//! handshake still succeeds).
//!
//! At the door, in order: a connection has `handshake_timeout` for the TLS
//! and WebSocket handshakes together, and at most `max_handshakes` may be
//! in them at once (the oldest is dropped for a new one, see
//! [`super::handshakes`]); the HTTP upgrade goes through
//! [`crate::access`] (token, `Origin`, `Host`: 401/403, audited); past
//! `max_connections` it is refused with HTTP 503 and the reason in the
//! body. Then a frame over `max_frame_bytes` is answered with an error
//! naming the limit, and the connection closed (the rest of that frame
//! cannot be skipped).
//!
//! A request without `Upgrade: websocket` is plain HTTP: `/healthz`,
//! `/readyz` and `/metrics` (see [`super::http`]), under the same handshake
//! timeout and slots. With `metrics_listen` set, a second listener serves
//! those alone, `/metrics` without a token.
//!
//! A close frame from the client is a clean end; the stream ending without
//! one (reset, EOF, a read error) is a lost connection, whose session
//! waits for a resume (see [`crate::sessions`]). Pings and pongs count as
//! signs of life for the keepalive.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use execd_protocol::limits::{show_bytes, Limit, LimitExceeded};
use execd_protocol::RpcError;
use futures_util::{future, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::access::{self, Admission, Refusal};
use crate::audit;
use crate::connection::{serve_connection, Inbound, Peer, Transport};
use crate::rpc;
use crate::sessions::Sessions;
use crate::shared::Shared;
use crate::transport::handshakes::{Handshakes, Ticket};
use crate::transport::http::{self, Head, MetricsAccess, Rewind};
use crate::ServerConfig;
use execd_transport::outbox::Wire;

/// A listening server. Dropping it does not stop it; call [`WsServer::shutdown`].
pub struct WsServer {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    tls: bool,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

/// Bind `addr` and start accepting connections in the background.
pub async fn bind(addr: SocketAddr, config: ServerConfig) -> io::Result<WsServer> {
    serve(TcpListener::bind(addr).await?, config).await
}

/// Accept connections on a socket already listening (one passed by
/// systemd's socket activation), in the background.
pub async fn serve_listener(
    listener: std::net::TcpListener,
    config: ServerConfig,
) -> io::Result<WsServer> {
    listener.set_nonblocking(true)?;
    serve(TcpListener::from_std(listener)?, config).await
}

async fn serve(listener: TcpListener, config: ServerConfig) -> io::Result<WsServer> {
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
    let handshakes = Handshakes::new(config.max_handshakes);
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(TcpListener::bind(addr).await?),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(listener) => Some(listener.local_addr()?),
        None => None,
    };
    let door = Door {
        sessions: Sessions::new(
            config.detach_grace,
            config.max_detached_sessions,
            shutdown.clone(),
            tracker.clone(),
        ),
        shared: Shared::new(config),
        loopback,
    };
    if let Some(listener) = metrics_listener {
        tracker.spawn(http::serve_metrics(
            listener,
            door.shared.clone(),
            shutdown.clone(),
            tracker.clone(),
        ));
        info!(addr = ?metrics_addr, "serving /metrics");
    }
    tracker.spawn(accept_loop(
        listener,
        Arc::new(door),
        handshakes,
        shutdown.clone(),
        tracker.clone(),
    ));
    info!(%local_addr, tls, auth, "listening");
    Ok(WsServer {
        local_addr,
        metrics_addr,
        tls,
        shutdown,
        tracker,
    })
}

impl WsServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the `metrics_listen` listener is bound, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
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

/// What every connection of one listener is admitted by.
struct Door {
    shared: Arc<Shared>,
    /// The sessions of this listener's connections, for resumes.
    sessions: Arc<Sessions>,
    /// The listener is on a loopback address (the `Host` check applies).
    loopback: bool,
}

async fn accept_loop(
    listener: TcpListener,
    door: Arc<Door>,
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
                    door.clone(),
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
        Ok(Message::Binary(bytes))
            if bytes.first() == Some(&execd_protocol::binary::KIND_PIECE) =>
        {
            Step::Frame(Inbound::Binary(bytes))
        }
        Ok(Message::Binary(bytes)) => Step::Frame(match Utf8Bytes::try_from(bytes) {
            Ok(text) => Inbound::Text(text),
            Err(_) => Inbound::Invalid(rpc::invalid_frame(
                "binary frame is not UTF-8 text; send JSON in text frames",
            )),
        }),
        Ok(Message::Close(_)) => Step::Frame(Inbound::Close),
        Ok(Message::Ping(_) | Message::Pong(_)) => Step::Frame(Inbound::Alive),
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

/// TLS (when configured) and the WebSocket upgrade, both within the
/// handshake timeout and while this connection is not pushed out by newer
/// ones; then the connection.
async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    door: Arc<Door>,
    ticket: Ticket,
    shutdown: CancellationToken,
) {
    if let Err(err) = stream.set_nodelay(true) {
        debug!(%peer, %err, "cannot disable Nagle");
    }
    let deadline = Instant::now() + door.shared.config.handshake_timeout;
    let Some(tls) = door.shared.config.tls.clone() else {
        return upgrade(stream, peer, door, deadline, ticket, shutdown).await;
    };
    let accept = tokio::time::timeout_at(deadline, TlsAcceptor::from(tls).accept(stream));
    let stream = tokio::select! {
        accepted = accept => match accepted {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => return debug!(%peer, %err, "TLS handshake failed"),
            Err(_) => return debug!(%peer, "TLS handshake timed out"),
        },
        _ = ticket.pushed_out() => {
            return debug!(%peer, "too many connections in their handshake; closing the oldest");
        }
        _ = shutdown.cancelled() => return,
    };
    upgrade(stream, peer, door, deadline, ticket, shutdown).await
}

/// The WebSocket upgrade, decided by [`access::check`] and then the
/// connection limit; a refusal is answered with its HTTP status (and an
/// access refusal audited).
async fn upgrade<S>(
    mut stream: S,
    peer: SocketAddr,
    door: Arc<Door>,
    deadline: Instant,
    ticket: Ticket,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = door.shared.config.clone();
    let head = tokio::select! {
        head = tokio::time::timeout_at(deadline, http::read_head(&mut stream)) => match head {
            Ok(Ok(head)) => head,
            Ok(Err(err)) => return debug!(%peer, %err, "no request head"),
            Err(_) => return debug!(%peer, "no request within {:?}; closing", config.handshake_timeout),
        },
        _ = ticket.pushed_out() => {
            return debug!(%peer, "too many connections in their handshake; closing the oldest");
        }
        _ = shutdown.cancelled() => return,
    };
    let answer = match head {
        Head::Upgrade(read) => Ok(read),
        Head::Plain(request) => Err(http::answer(
            &request,
            &door.shared,
            &shutdown,
            MetricsAccess::Checked {
                access: &config.access,
                loopback: door.loopback,
            },
        )),
        Head::Bad(status, body) => Err(http::response(status, body, false)),
    };
    let read = match answer {
        Ok(read) => read,
        Err(answer) => {
            drop(ticket);
            let sent =
                tokio::time::timeout(config.handshake_timeout, http::send(&mut stream, &answer));
            if let Ok(Err(err)) = sent.await {
                debug!(%peer, %err, "cannot send the HTTP answer");
            }
            return;
        }
    };
    let stream = Rewind::new(read, stream);
    let ws_config = execd_transport::ws::config(config.max_frame_bytes);
    let mut verdict: Option<Result<Admission, Refusal>> = None;
    // Taken during the upgrade, so that a client over the limit hears why.
    let mut slot = None;
    // The error type is tungstenite's (an HTTP response), fixed by its callback API.
    #[allow(clippy::result_large_err)]
    let decide = |request: &Request, response: Response| {
        let checked = access::check(&config.access, door.loopback, request);
        let answer = match &checked {
            Ok(_) => match door.shared.connection_slot() {
                Ok(permit) => {
                    slot = Some(permit);
                    Ok(response)
                }
                Err(limit) => {
                    debug!(%peer, %limit, "refusing a connection");
                    Err(refusal(&limit))
                }
            },
            Err(refusal) => Err(refusal.response()),
        };
        verdict = Some(checked);
        answer
    };
    let accept = tokio::time::timeout_at(
        deadline,
        tokio_tungstenite::accept_hdr_async_with_config(stream, decide, Some(ws_config)),
    );
    let ws = tokio::select! {
        accepted = accept => match accepted {
            Ok(Ok(ws)) => ws,
            Ok(Err(err)) => {
                match &verdict {
                    Some(Err(refusal)) => {
                        if matches!(refusal, Refusal::MissingToken | Refusal::WrongToken) {
                            door.shared.metrics.auth_failed();
                        }
                        audit::connection_refused(&peer.to_string(), refusal)
                    }
                    _ => debug!(%peer, %err, "WebSocket handshake failed"),
                }
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
    // Both are set by an upgrade that succeeded.
    let (Some(Ok(admission)), Some(_slot)) = (verdict, slot) else {
        return;
    };
    let _open = door.shared.metrics.connection_opened();
    debug!(%peer, "connected");
    let (sink, stream) = ws.split();
    let step_config = config.clone();
    let incoming = stream
        .map(move |message| step(message, &step_config, peer))
        .take_while(|step| future::ready(!matches!(step, Step::End)))
        .filter_map(|step| {
            future::ready(match step {
                Step::Frame(frame) => Some(frame),
                Step::Skip | Step::End => None,
            })
        });
    let outgoing = sink.with(|frame: Wire| {
        future::ok::<_, tokio_tungstenite::tungstenite::Error>(execd_transport::ws::message(frame))
    });
    let peer_info = Peer {
        address: peer.to_string(),
        admission,
    };
    let shared = door.shared.clone();
    serve_connection(
        Box::pin(incoming),
        outgoing,
        Transport {
            binary_frames: true,
            detachable: true,
        },
        shared,
        door.sessions.clone(),
        shutdown,
        peer_info,
    )
    .await;
    debug!(%peer, "disconnected");
}
