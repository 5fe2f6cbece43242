//! Opening the WebSocket of a connection: the upgrade request with the
//! bearer token (the one given, else `EXECD_TOKEN`, else the default token
//! file when the server is on this machine), TLS for `wss://` (the system's
//! roots, or a CA file), and the server's refusals (401, 403) turned into
//! errors that say what to do; the wording of every way a connection fails
//! or ends (nobody listening, not an execd server, the server shut down,
//! the connection broke). Also the connection settings
//! ([`ConnectOptions`]): reconnecting, keepalive, the output window.

use std::path::PathBuf;
use std::time::Duration;

use execd_transport::tls;
use execd_transport::token::{self, Token};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::ClientError;

/// How the reason of a connection ended by the server's shutdown begins
/// (`server shut down: <the server's close reason>`).
pub const SERVER_SHUT_DOWN: &str = "server shut down";

/// Largest frame accepted from the server.
pub(crate) const MAX_FRAME: usize = 512 * 1024 * 1024;

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Ask for `process/output` as binary frames (WebSocket only; a server
    /// that does not know the extension keeps sending JSON).
    pub binary_output: bool,
    /// The token to send (`Authorization: Bearer`). `None`: `EXECD_TOKEN`,
    /// else the default token file (`$XDG_STATE_HOME/execd/token` or
    /// `~/.local/state/execd/token`), the latter only for a server on a
    /// loopback address.
    pub token: Option<Token>,
    /// For `wss://`: trust the CA certificates in this PEM file instead of
    /// the system's root certificates.
    pub ca_file: Option<PathBuf>,
    /// Reconnect and resume the session when the connection is lost
    /// without a close (WebSocket only). `None`: a lost connection ends
    /// the client, as before sessions could be resumed. Default: on.
    pub reconnect: Option<ReconnectPolicy>,
    /// WebSocket pings, and how long the server may be silent before the
    /// connection counts as lost.
    pub keepalive: Keepalive,
    /// The `outputWindow` the remote environment asks for when a start
    /// does not name one (`None`: no window). Default: [`DEFAULT_OUTPUT_WINDOW`].
    pub output_window: Option<u64>,
}

/// The remote environment's default per-process output window: large
/// enough that streaming keeps its unwindowed rate (docs/BENCHMARKS.md).
pub const DEFAULT_OUTPUT_WINDOW: u64 = 8 * 1024 * 1024;

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            binary_output: true,
            token: None,
            ca_file: None,
            reconnect: Some(ReconnectPolicy::default()),
            keepalive: Keepalive::default(),
            output_window: Some(DEFAULT_OUTPUT_WINDOW),
        }
    }
}

/// How to reconnect after a lost connection: attempts `first_delay`
/// apart, doubling up to `max_delay`, until the session is resumed, the
/// server says it is gone, or `give_up_after` has passed since the loss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// The server's detach grace (`--detach-grace`, default 120 s): past
    /// it the session is gone anyway.
    pub give_up_after: Duration,
    /// Bounds one attempt (connect, upgrade, `initialize`).
    pub attempt_timeout: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            give_up_after: Duration::from_secs(120),
            attempt_timeout: Duration::from_secs(10),
        }
    }
}

/// Client-side keepalive: a ping every `interval`; a server from which
/// nothing arrived for `timeout` is treated as lost. `Duration::ZERO`
/// disables either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub interval: Duration,
    pub timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(45),
        }
    }
}

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Open the WebSocket to `url` (`ws://` or `wss://`), within `timeout`.
pub(crate) async fn open(
    url: &str,
    options: &ConnectOptions,
    timeout: Duration,
) -> Result<Socket, ClientError> {
    let failed = |reason: String| ClientError::Connect {
        target: url.to_string(),
        reason,
    };
    let token = match &options.token {
        Some(token) => Some(token.clone()),
        None => token::resolve_for_client(url).map_err(|err| failed(err.to_string()))?,
    };
    if !url.starts_with("ws://") && !url.starts_with("wss://") {
        return Err(failed(wrong_scheme(url)));
    }
    let mut request = url
        .into_client_request()
        .map_err(|err| failed(err.to_string()))?;
    if let Some(token) = &token {
        let value = HeaderValue::from_str(&token.bearer())
            .map_err(|_| failed("the token does not fit an HTTP header".into()))?;
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    let connector = if url.starts_with("wss://") {
        let config = tls::client_config(options.ca_file.as_deref())
            .map_err(|err| failed(err.to_string()))?;
        Some(Connector::Rustls(config))
    } else {
        None
    };
    let config = execd_transport::ws::config(MAX_FRAME);
    let connect =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector);
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => Err(failed("timed out".into())),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(WsError::Http(response))) => Err(refused(url, token.is_some(), &response)),
        Ok(Err(err)) => Err(handshake_error(url, err)),
    }
}

/// What to say about a URL that is not `ws://` or `wss://`.
fn wrong_scheme(url: &str) -> String {
    match url.split_once("://") {
        Some(("http", rest)) => format!("execd speaks WebSocket: use ws://{rest}"),
        Some(("https", rest)) => format!("execd speaks WebSocket: use wss://{rest}"),
        Some((scheme, rest)) => {
            format!("unsupported scheme {scheme}://: use ws://{rest} or wss://{rest}")
        }
        None => format!("not a server URL: use ws://{url} (or wss://{url} with TLS)"),
    }
}

/// A failed connection or WebSocket upgrade, in words: nobody there, the
/// connection broke, or something that is not an execd server answered.
fn handshake_error(url: &str, err: WsError) -> ClientError {
    use std::io::ErrorKind;
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    let failed = |reason: String| ClientError::Connect {
        target: url.to_string(),
        reason,
    };
    let not_execd = |answered: String| ClientError::NotExecd {
        target: url.to_string(),
        answered,
    };
    match err {
        WsError::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => ClientError::NothingListens {
                target: url.to_string(),
            },
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset => failed(
                "the server closed the connection during the WebSocket upgrade, without an answer"
                    .into(),
            ),
            _ => failed(io.to_string()),
        },
        WsError::Protocol(ProtocolError::HttparseError(parse)) => not_execd(format!(
            "with something that is not an HTTP response: {parse}"
        )),
        WsError::Protocol(ProtocolError::HandshakeIncomplete)
        | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => failed(
            "the server closed the connection during the WebSocket upgrade, without an answer"
                .into(),
        ),
        WsError::Protocol(protocol) => {
            not_execd(format!("HTTP that is not a WebSocket upgrade: {protocol}"))
        }
        WsError::HttpFormat(format) => not_execd(format!("malformed HTTP: {format}")),
        WsError::Url(url_error) => failed(url_error.to_string()),
        other => failed(other.to_string()),
    }
}

/// Why a connection that was up has ended, from what the server sent last:
/// a close frame (1001 on shutdown, [`SERVER_SHUT_DOWN`]) or an error.
pub(crate) fn ended(url: &str, last: Result<Option<CloseFrame>, &WsError>) -> String {
    match last {
        Ok(Some(frame)) if frame.code == CloseCode::Away => {
            format!("{SERVER_SHUT_DOWN}: {}", frame.reason)
        }
        Ok(Some(frame)) if !frame.reason.is_empty() => format!(
            "the server closed the connection (code {}): {}",
            u16::from(frame.code),
            frame.reason
        ),
        Ok(_) => "the server closed the connection".to_string(),
        Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))
        | Err(WsError::ConnectionClosed) => format!(
            "the connection to {url} broke off without a close from the server (it stopped or crashed, or the network failed)"
        ),
        Err(WsError::Io(io)) => format!("the connection to {url} failed: {io}"),
        Err(other) => format!("the connection to {url} failed: {other}"),
    }
}

/// The error for an HTTP answer other than the upgrade.
fn refused(
    url: &str,
    sent_token: bool,
    response: &tokio_tungstenite::tungstenite::http::Response<Option<Vec<u8>>>,
) -> ClientError {
    let target = url.to_string();
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED {
        return ClientError::Unauthorized { target, sent_token };
    }
    // execd refuses upgrades only with 401, 403 and 503: anything else is
    // some other HTTP server.
    if status != StatusCode::FORBIDDEN && status != StatusCode::SERVICE_UNAVAILABLE {
        return ClientError::NotExecd {
            target,
            answered: format!(
                "HTTP {} {} instead of a WebSocket upgrade",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_string(),
        };
    }
    let said = response
        .body()
        .as_deref()
        .map(|body| String::from_utf8_lossy(body).trim().to_string())
        .filter(|body| !body.is_empty())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string());
    ClientError::Refused {
        target,
        status: status.as_u16(),
        reason: said,
    }
}
