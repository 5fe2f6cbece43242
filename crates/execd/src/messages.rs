//! The server URL of the client commands and how their connection errors
//! read: `--url`, else `$EXECD_URL`, with `HOST:PORT` taken as
//! `ws://HOST:PORT`; "cannot connect to URL: ...", "URL is not an execd
//! server (...)", "connection lost: ..." and "server shut down: <the
//! server's reason>" each said once, without the prefixes the layers below
//! add.

use execd_client::manager::URL_VARIABLE;
use execd_client::websocket::SERVER_SHUT_DOWN;
use execd_client::EnvError;

/// The server URL: `--url`, else `$EXECD_URL`; `HOST:PORT` becomes
/// `ws://HOST:PORT` (a URL with another scheme is left for the client to
/// refuse with a hint).
pub fn server_url(flag: Option<String>) -> Option<String> {
    flag.or_else(|| std::env::var(URL_VARIABLE).ok())
        .filter(|url| !url.is_empty())
        .map(|url| with_scheme(&url))
}

/// `ws://` in front of a URL without a scheme.
pub fn with_scheme(url: &str) -> String {
    if url.contains("://") {
        url.to_string()
    } else {
        format!("ws://{url}")
    }
}

/// What `message` says once the "connection lost: " prefixes are gone.
fn lost_reason(message: &str) -> &str {
    let mut rest = message;
    while let Some(stripped) = rest.strip_prefix("connection lost: ") {
        rest = stripped;
    }
    rest
}

/// An error's message without a redundant prefix; a server that shut down
/// says so rather than "connection lost".
pub fn describe(err: &EnvError) -> String {
    match err {
        EnvError::ConnectionLost(message) => {
            let reason = lost_reason(message);
            if reason.starts_with(SERVER_SHUT_DOWN) {
                reason.to_string()
            } else {
                format!("connection lost: {reason}")
            }
        }
        other => other.message(),
    }
}

/// Why connecting to `url` failed, naming the URL once.
pub fn connect_error(url: &str, err: &EnvError) -> String {
    match err {
        EnvError::Connect(message) | EnvError::ConnectionLost(message) if message.contains(url) => {
            lost_reason(message).to_string()
        }
        other => format!("cannot connect to {url}: {}", describe(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_messages() {
        assert_eq!(with_scheme("127.0.0.1:7878"), "ws://127.0.0.1:7878");
        assert_eq!(with_scheme("wss://h:1"), "wss://h:1");
        assert_eq!(with_scheme("http://h:1"), "http://h:1");
        let lost = |m: &str| EnvError::ConnectionLost(m.to_string());
        assert_eq!(
            describe(&lost("connection lost: server shut down: bye")),
            "server shut down: bye"
        );
        assert_eq!(describe(&lost("reset")), "connection lost: reset");
        assert_eq!(
            connect_error("ws://h:1", &lost("cannot connect to ws://h:1: refused")),
            "cannot connect to ws://h:1: refused"
        );
    }
}
