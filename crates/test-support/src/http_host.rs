//! A loopback HTTP host for the network-policy tests, standing where a
//! tree's proxied requests end: it reads each request's head and answers
//! with the same bytes every time, counting the connections it accepted
//! (so a test can tell that a denied request never reached it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running host on `127.0.0.1:port`; it serves until the test's runtime ends.
pub struct HttpHost {
    pub port: u16,
    connections: Arc<AtomicUsize>,
}

impl HttpHost {
    /// Listen on a free loopback port and answer every request with
    /// `reply` (status line, headers and body, as sent).
    pub async fn start(reply: Vec<u8>) -> HttpHost {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the HTTP host");
        let port = listener
            .local_addr()
            .expect("the HTTP host's address")
            .port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let reply: Arc<[u8]> = reply.into();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let reply = reply.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let _ = stream.write_all(&reply).await;
                });
            }
        });
        HttpHost { port, connections }
    }

    /// How many connections the host has accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// A `200 OK` carrying `body` that closes the connection after it.
pub fn closing_reply(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
