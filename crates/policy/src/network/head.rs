//! The request a program sends the proxy: reading its head (bounded in
//! size and time) and turning it into a target (host, port, how it was
//! asked) plus, for plain HTTP, the head to send upstream in origin form
//! with the proxy's own headers removed and `Connection: close`, so one
//! proxied connection carries requests to one host only.

use std::time::Duration;

use execd_protocol::network::NetworkProtocol;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::rules::normalize_host;

/// Largest request head accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header lines accepted.
const MAX_HEADERS: usize = 128;

/// Why a request could not be served; each becomes an HTTP error response.
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("the request head is larger than {MAX_HEAD_BYTES} bytes")]
    TooLarge,
    #[error("no complete request head within {0:?}")]
    Timeout(Duration),
    #[error("the connection closed before a complete request head")]
    Closed,
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("reading the request: {0}")]
    Io(#[from] std::io::Error),
}

/// What the program asked for.
#[derive(Debug)]
pub struct Request {
    pub protocol: NetworkProtocol,
    /// Normalised (lowercase, no brackets).
    pub host: String,
    pub port: u16,
    /// Plain HTTP: the head to send upstream.
    pub upstream_head: Option<Vec<u8>>,
    /// Bytes that arrived after the head (a body, or early tunnel data).
    pub rest: Vec<u8>,
}

/// Read one request head from `client`, waiting at most `idle` for each
/// piece of it.
pub async fn read_request(client: &mut TcpStream, idle: Duration) -> Result<Request, HeadError> {
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(idle, client.read(&mut chunk))
            .await
            .map_err(|_| HeadError::Timeout(idle))??;
        if read == 0 {
            return Err(HeadError::Closed);
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(request) = parse(&buffer)? {
            return Ok(request);
        }
        if buffer.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Parse a head from `buffer`; `None` while it is incomplete.
pub fn parse(buffer: &[u8]) -> Result<Option<Request>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let length = match request.parse(buffer) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(HeadError::Malformed(err.to_string())),
    };
    let method = request.method.unwrap_or_default();
    let target = request.path.unwrap_or_default();
    let rest = buffer[length..].to_vec();
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = authority(target, None)?;
        return Ok(Some(Request {
            protocol: NetworkProtocol::Connect,
            host,
            port,
            upstream_head: None,
            rest,
        }));
    }
    let (authority_text, path) = if let Some(after) = target.strip_prefix("http://") {
        match after.find('/') {
            Some(slash) => (after[..slash].to_string(), after[slash..].to_string()),
            None => (after.to_string(), "/".to_string()),
        }
    } else if target.starts_with('/') {
        let host = request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
            .ok_or_else(|| HeadError::Malformed("no Host header and no absolute URI".into()))?;
        (host, target.to_string())
    } else if target.contains("://") {
        return Err(HeadError::Unsupported(format!(
            "only http:// URIs are proxied as requests ({target:?}); use CONNECT for https"
        )));
    } else {
        return Err(HeadError::Malformed(format!("request target {target:?}")));
    };
    // User information in the authority is not a host.
    if authority_text.contains('@') {
        return Err(HeadError::Malformed(format!(
            "user information in the URI authority {authority_text:?}"
        )));
    }
    let (host, port) = authority(&authority_text, Some(80))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\n").into_bytes();
    for header in request.headers.iter() {
        let name = header.name.to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "proxy-connection" | "proxy-authorization" | "connection" | "keep-alive"
        ) {
            continue;
        }
        head.extend_from_slice(header.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(header.value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    Ok(Some(Request {
        protocol: NetworkProtocol::Http,
        host,
        port,
        upstream_head: Some(head),
        rest,
    }))
}

/// `host:port` (IPv6 in brackets); the port may be left out where
/// `default_port` is given.
fn authority(text: &str, default_port: Option<u16>) -> Result<(String, u16), HeadError> {
    let bad = || HeadError::Malformed(format!("authority {text:?} is not host:port"));
    let (host, port) = if let Some(inside) = text.strip_prefix('[') {
        let (host, after) = inside.split_once(']').ok_or_else(bad)?;
        let port = after.strip_prefix(':');
        (host, port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        Some(port) => port.parse::<u16>().map_err(|_| bad())?,
        None => default_port.ok_or_else(bad)?,
    };
    if port == 0 {
        return Err(bad());
    }
    let host = normalize_host(host).ok_or_else(|| {
        HeadError::Malformed(format!("host {host:?} is not a host name or IP address"))
    })?;
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Request {
        parse(text.as_bytes()).expect("parses").expect("complete")
    }

    #[test]
    fn connect_and_plain_requests() {
        let connect = parsed("CONNECT Example.com:443 HTTP/1.1\r\nHost: x\r\n\r\nEARLY");
        assert_eq!(connect.protocol, NetworkProtocol::Connect);
        assert_eq!((connect.host.as_str(), connect.port), ("example.com", 443));
        assert_eq!(connect.rest, b"EARLY");
        let v6 = parsed("CONNECT [::1]:8443 HTTP/1.1\r\n\r\n");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8443));

        let get = parsed(
            "GET http://a.test:8080/x?y HTTP/1.1\r\nHost: a.test:8080\r\nProxy-Connection: keep-alive\r\n\r\n",
        );
        assert_eq!((get.host.as_str(), get.port), ("a.test", 8080));
        let head = String::from_utf8(get.upstream_head.expect("head")).expect("text");
        assert!(head.starts_with("GET /x?y HTTP/1.1\r\n"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("proxy-connection"));
        assert!(head.ends_with("Connection: close\r\n\r\n"));
        let default_port = parsed("GET http://b.test HTTP/1.1\r\n\r\n");
        assert_eq!(default_port.port, 80);
    }

    #[test]
    fn bad_requests_are_refused() {
        assert!(parse(b"GET http://a.test/").expect("partial").is_none());
        for bad in [
            "CONNECT a.test HTTP/1.1\r\n\r\n",
            "CONNECT a.test:0 HTTP/1.1\r\n\r\n",
            "CONNECT a.test:99999 HTTP/1.1\r\n\r\n",
            "GET https://a.test/ HTTP/1.1\r\n\r\n",
            "GET http://user@a.test/ HTTP/1.1\r\n\r\n",
            "GET /x HTTP/1.1\r\n\r\n",
            "CONNECT a%20b:80 HTTP/1.1\r\n\r\n",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
