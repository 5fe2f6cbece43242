//! Plain HTTP beside the WebSocket upgrade, on the same listener (and the
//! only thing the `--metrics-listen` listener serves): `GET /healthz`
//! (the process is alive: 200), `GET /readyz` (it takes new work: 200,
//! or 503 while shutting down or with every connection place taken) and
//! `GET /metrics` (the Prometheus text of [`crate::metrics`]). Health
//! needs no credential and says nothing but the status; on the WebSocket
//! listener `/metrics` goes through the same checks as an upgrade
//! (`Host`, `Origin`, the token), on the metrics listener it is open.
//!
//! The request head is read here first (at most [`MAX_HEAD_BYTES`]): a
//! request with `Upgrade: websocket` is handed on, with the bytes already
//! read put back in front of the stream ([`Rewind`]); anything else is
//! answered (404 for other paths, 405 for other methods) and the
//! connection closed: one request per connection, no keep-alive.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::Request;
use tokio_tungstenite::tungstenite::http::{StatusCode, Uri};
use tokio_util::sync::CancellationToken;

use crate::access::{self, AccessConfig, Refusal};
use crate::metrics::CONTENT_TYPE;
use crate::shared::Shared;

/// Largest request head read (request line and headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Where a plain request's `/metrics` is admitted.
#[derive(Clone, Copy)]
pub enum MetricsAccess<'a> {
    /// The WebSocket listener: the upgrade's checks (loopback: the listener
    /// is on a loopback address).
    Checked {
        access: &'a AccessConfig,
        loopback: bool,
    },
    /// The `--metrics-listen` listener.
    Open,
}

/// What the head of a request asks for.
pub enum Head {
    /// A WebSocket upgrade: hand the stream (rewound) to the handshake.
    Upgrade(Vec<u8>),
    /// A plain HTTP request, answered here.
    Plain(Request),
    /// Not HTTP, or too large: answered with this status.
    Bad(StatusCode, &'static str),
}

/// Read the request head (up to the blank line) and say what it is.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Head> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside the request head",
            ));
        }
        buffer.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buffer) {
            Ok(httparse::Status::Complete(_)) => {
                let head = classify(&parsed);
                return Ok(match head {
                    Head::Upgrade(_) => Head::Upgrade(buffer),
                    other => other,
                });
            }
            Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD_BYTES => continue,
            Ok(httparse::Status::Partial) => {
                return Ok(Head::Bad(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "request head larger than 16 KiB\n",
                ))
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Ok(Head::Bad(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "more than 64 request headers\n",
                ))
            }
            Err(_) => return Ok(Head::Bad(StatusCode::BAD_REQUEST, "not an HTTP request\n")),
        }
    }
}

/// What a parsed head asks for (an upgrade's bytes are filled in by the caller).
fn classify(parsed: &httparse::Request<'_, '_>) -> Head {
    let upgrade = parsed.headers.iter().any(|header| {
        header.name.eq_ignore_ascii_case("upgrade")
            && String::from_utf8_lossy(header.value)
                .trim()
                .eq_ignore_ascii_case("websocket")
    });
    if upgrade {
        return Head::Upgrade(Vec::new());
    }
    let mut request = Request::builder()
        .method(parsed.method.unwrap_or("GET"))
        .uri(parsed.path.unwrap_or("/"));
    for header in parsed.headers.iter() {
        request = request.header(header.name, header.value);
    }
    match request.body(()) {
        Ok(request) => Head::Plain(request),
        Err(_) => Head::Bad(StatusCode::BAD_REQUEST, "malformed request\n"),
    }
}

/// The answer to a plain request, as bytes to write.
pub fn answer(
    request: &Request,
    shared: &Shared,
    shutdown: &CancellationToken,
    metrics: MetricsAccess<'_>,
) -> Vec<u8> {
    let head_only = request.method() == "HEAD";
    if request.method() != "GET" && !head_only {
        return response(StatusCode::METHOD_NOT_ALLOWED, "GET only\n", head_only);
    }
    match path_of(request.uri()) {
        "/healthz" => response(StatusCode::OK, "ok\n", head_only),
        "/readyz" => {
            if shutdown.is_cancelled() {
                response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: shutting down\n",
                    head_only,
                )
            } else if shared.at_connection_limit() {
                response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: every connection place is taken\n",
                    head_only,
                )
            } else {
                response(StatusCode::OK, "ready\n", head_only)
            }
        }
        "/metrics" => {
            if let MetricsAccess::Checked { access, loopback } = metrics {
                if let Err(refusal) = access::check(access, loopback, request) {
                    if matches!(refusal, Refusal::MissingToken | Refusal::WrongToken) {
                        shared.metrics.auth_failed();
                    }
                    return refused(&refusal);
                }
            }
            let text = shared.metrics.render(&shared.budget);
            encode(StatusCode::OK, CONTENT_TYPE, &[], &text, head_only)
        }
        _ => response(
            StatusCode::NOT_FOUND,
            "not found: this address serves WebSocket upgrades, /healthz, /readyz and /metrics\n",
            head_only,
        ),
    }
}

/// Write `answer` and close the writing side.
pub async fn send<S: AsyncWrite + Unpin>(stream: &mut S, answer: &[u8]) -> io::Result<()> {
    stream.write_all(answer).await?;
    stream.flush().await?;
    stream.shutdown().await
}

fn path_of(uri: &Uri) -> &str {
    uri.path()
}

/// A plain-text answer.
pub fn response(status: StatusCode, body: &str, head_only: bool) -> Vec<u8> {
    encode(status, "text/plain; charset=utf-8", &[], body, head_only)
}

fn refused(refusal: &Refusal) -> Vec<u8> {
    let body = format!("{}\n", refusal.message());
    let extra: &[(&str, &str)] = if refusal.status() == StatusCode::UNAUTHORIZED {
        &[("WWW-Authenticate", "Bearer realm=\"execd\"")]
    } else {
        &[]
    };
    encode(
        refusal.status(),
        "text/plain; charset=utf-8",
        extra,
        &body,
        false,
    )
}

fn encode(
    status: StatusCode,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &str,
    head_only: bool,
) -> Vec<u8> {
    let mut text = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    for (name, value) in extra {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    if !head_only {
        text.push_str(body);
    }
    text.into_bytes()
}

/// A stream with bytes already read from it put back in front.
pub struct Rewind<S> {
    prefix: Vec<u8>,
    position: usize,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Rewind {
            prefix,
            position: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.position < this.prefix.len() {
            let rest = &this.prefix[this.position..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.position += n;
            if this.position == this.prefix.len() {
                this.prefix = Vec::new();
                this.position = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Plain requests answered at once on the metrics listener; more wait in
/// the kernel's backlog.
const METRICS_REQUESTS: usize = 16;

/// The `--metrics-listen` listener: `/metrics` without a token, and the
/// health endpoints; no WebSocket upgrades. Each request has the
/// handshake timeout to arrive and be answered.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    shared: std::sync::Arc<Shared>,
    shutdown: CancellationToken,
    tracker: tokio_util::task::TaskTracker,
) {
    let places = std::sync::Arc::new(tokio::sync::Semaphore::new(METRICS_REQUESTS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut stream, _)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let Ok(place) = places.clone().acquire_owned().await else {
            return;
        };
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let _place = place;
            let within = shared.config.handshake_timeout;
            let _ = tokio::time::timeout(within, async {
                let answer = match read_head(&mut stream).await? {
                    Head::Plain(request) => {
                        answer(&request, &shared, &shutdown, MetricsAccess::Open)
                    }
                    Head::Upgrade(_) => response(
                        StatusCode::NOT_FOUND,
                        "this is the metrics listener: no WebSocket here\n",
                        false,
                    ),
                    Head::Bad(status, body) => response(status, body, false),
                };
                send(&mut stream, &answer).await
            })
            .await;
        });
    }
}
