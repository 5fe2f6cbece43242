//! Opening the WebSocket of a connection: the upgrade request with the
//! bearer token (the one given, else `EXECD_TOKEN`, else the default token
//! file when the server is on this machine), TLS for `wss://` (the system's
//! roots, or a CA file), and the server's refusals (401, 403) turned into
//! errors that say what to do.

use std::path::PathBuf;

use execd_transport::tls;
use execd_transport::token::{self, Token};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::client::DEFAULT_TIMEOUT;
use crate::error::ClientError;

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
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            binary_output: true,
            token: None,
            ca_file: None,
        }
    }
}

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Open the WebSocket to `url` (`ws://` or `wss://`), within the default timeout.
pub(crate) async fn open(url: &str, options: &ConnectOptions) -> Result<Socket, ClientError> {
    let failed = |reason: String| ClientError::Connect {
        target: url.to_string(),
        reason,
    };
    let token = match &options.token {
        Some(token) => Some(token.clone()),
        None => token::resolve_for_client(url).map_err(|err| failed(err.to_string()))?,
    };
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
    match tokio::time::timeout(DEFAULT_TIMEOUT, connect).await {
        Err(_) => Err(failed("timed out".into())),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(WsError::Http(response))) => Err(refused(url, token.is_some(), &response)),
        Ok(Err(err)) => Err(failed(err.to_string())),
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
