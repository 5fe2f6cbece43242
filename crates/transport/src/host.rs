//! What counts as this machine: loopback addresses and host names, in the
//! forms they take in a URL or an HTTP `Host` header (`127.0.0.1`,
//! `localhost`, `[::1]`, each with or without a port). The server uses it to
//! refuse DNS-rebinding handshakes on a loopback listener; the client to
//! decide whether the local default token may be sent.

use std::net::IpAddr;

/// Whether `authority` (`host`, `host:port`, `[v6]`, `[v6]:port`) names a
/// loopback host: `localhost` (any case) or a loopback IP literal.
pub fn is_loopback_authority(authority: &str) -> bool {
    let authority = authority.trim();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        // `[v6]` or `[v6]:port`.
        match rest.split_once(']') {
            Some((inner, after)) if after.is_empty() || valid_port_suffix(after) => inner,
            _ => return false,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => {
                if !valid_port_suffix(&format!(":{port}")) {
                    return false;
                }
                host
            }
            // A bare IPv6 address is not a valid authority.
            Some(_) => return false,
            None => authority,
        }
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn valid_port_suffix(suffix: &str) -> bool {
    suffix
        .strip_prefix(':')
        .is_some_and(|port| port.parse::<u16>().is_ok())
}

/// Whether a `ws://` / `wss://` URL points at a loopback host.
pub fn url_is_loopback(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Credentials in the URL (`user@host`) are not part of the host.
    let authority = authority.rsplit('@').next().unwrap_or_default();
    is_loopback_authority(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_forms_are_recognised() {
        for good in [
            "127.0.0.1",
            "127.0.0.1:7878",
            "127.1.2.3:1",
            "localhost",
            "LocalHost:80",
            "[::1]",
            "[::1]:7878",
        ] {
            assert!(is_loopback_authority(good), "{good}");
        }
        for bad in [
            "evil.example",
            "evil.example:7878",
            "localhost.evil.example",
            "10.0.0.1:7878",
            "0.0.0.0:7878",
            "[::]:7878",
            "::1",
            "[::1]x",
            "127.0.0.1:notaport",
            "",
        ] {
            assert!(!is_loopback_authority(bad), "{bad}");
        }
    }

    #[test]
    fn urls() {
        assert!(url_is_loopback("ws://127.0.0.1:7878"));
        assert!(url_is_loopback("wss://localhost:1/path"));
        assert!(url_is_loopback("ws://[::1]:9"));
        assert!(!url_is_loopback("ws://example.com:7878"));
        assert!(!url_is_loopback("ws://127.0.0.1@example.com:7878"));
        assert!(!url_is_loopback("not a url"));
    }
}
