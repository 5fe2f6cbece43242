//! Who may open a WebSocket connection, decided on the HTTP upgrade request
//! before anything runs: on a loopback listener the `Host` header must name
//! a loopback host (against DNS rebinding), a request carrying an `Origin`
//! (a browser page) must come from an allowed origin, and, when the server
//! has a token, `Authorization: Bearer <token>` must carry it (compared in
//! constant time). Refusals are HTTP 403 (host, origin) or 401 (token).

use execd_transport::host::is_loopback_authority;
use execd_transport::token::Token;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, Response, StatusCode};

/// The handshake checks of a listener.
#[derive(Debug, Clone)]
pub struct AccessConfig {
    /// The bearer token every connection must present; `None` admits any
    /// client that passes the other checks.
    pub token: Option<Token>,
    /// Origins (`scheme://host[:port]`) whose pages may connect.
    pub allowed_origins: Vec<String>,
    /// Refuse handshakes with an `Origin` header not in `allowed_origins`.
    pub check_origin: bool,
    /// On a loopback listener, refuse a `Host` header that names no loopback host.
    pub check_host: bool,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            token: None,
            allowed_origins: Vec::new(),
            check_origin: true,
            check_host: true,
        }
    }
}

/// How an admitted connection authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// It presented the server's token.
    Token,
    /// The server has no token (library use, `--no-auth`).
    Open,
    /// stdio: whoever started the server owns its pipes.
    Stdio,
}

impl Admission {
    pub fn as_str(self) -> &'static str {
        match self {
            Admission::Token => "token",
            Admission::Open => "no-auth",
            Admission::Stdio => "stdio",
        }
    }
}

/// Why a handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    MissingHost,
    ForeignHost(String),
    ForeignOrigin(String),
    MissingToken,
    WrongToken,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::MissingToken | Refusal::WrongToken => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        }
    }

    /// A short word for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::MissingHost => "missing-host",
            Refusal::ForeignHost(_) => "foreign-host",
            Refusal::ForeignOrigin(_) => "foreign-origin",
            Refusal::MissingToken => "missing-token",
            Refusal::WrongToken => "wrong-token",
        }
    }

    /// What the client is told (never the token).
    pub fn message(&self) -> String {
        match self {
            Refusal::MissingHost => "the request has no Host header".into(),
            Refusal::ForeignHost(host) => format!(
                "Host {host:?} is not a loopback name; this server listens on loopback only"
            ),
            Refusal::ForeignOrigin(origin) => {
                format!("Origin {origin:?} is not allowed (see --allow-origin)")
            }
            Refusal::MissingToken => "no token: send Authorization: Bearer <token>".into(),
            Refusal::WrongToken => "the token is not this server's".into(),
        }
    }

    /// The HTTP answer sent instead of the upgrade.
    pub fn response(&self) -> ErrorResponse {
        let body = format!("{}\n", self.message());
        let length = HeaderValue::from(body.len());
        let mut response = Response::new(Some(body));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, length);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        if self.status() == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"execd\""),
            );
        }
        response
    }
}

/// Decide on one upgrade request. `loopback_listener`: the server listens
/// on a loopback address (where the `Host` check applies).
pub fn check(
    config: &AccessConfig,
    loopback_listener: bool,
    request: &Request,
) -> Result<Admission, Refusal> {
    let headers = request.headers();
    let text = |name| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    if config.check_host && loopback_listener {
        let host = text(header::HOST).ok_or(Refusal::MissingHost)?;
        if !is_loopback_authority(&host) {
            return Err(Refusal::ForeignHost(host));
        }
    }
    if config.check_origin {
        if let Some(origin) = text(header::ORIGIN) {
            if !origin_allowed(&config.allowed_origins, &origin) {
                return Err(Refusal::ForeignOrigin(origin));
            }
        }
    }
    let Some(token) = &config.token else {
        return Ok(Admission::Open);
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| bearer(value.as_bytes()))
        .ok_or(Refusal::MissingToken)?;
    if token.matches(presented) {
        Ok(Admission::Token)
    } else {
        Err(Refusal::WrongToken)
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is
/// case-insensitive).
fn bearer(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Origins compare without case and without a trailing slash.
fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    let normal = |o: &str| o.trim().trim_end_matches('/').to_ascii_lowercase();
    let origin = normal(origin);
    allowed.iter().any(|a| normal(a) == origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values() {
        assert_eq!(bearer(b"Bearer abc"), Some("abc"));
        assert_eq!(bearer(b"bearer  abc "), Some("abc"));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"abc"), None);
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://App.example/".to_string()];
        assert!(origin_allowed(&allowed, "https://app.example"));
        assert!(!origin_allowed(&allowed, "http://app.example"));
        assert!(!origin_allowed(&allowed, "null"));
    }
}
