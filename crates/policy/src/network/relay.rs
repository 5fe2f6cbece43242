//! Copying a proxied connection both ways until both sides are done, with
//! the proxy's bounds: an idle timeout (no byte either way for that long
//! ends it) and an optional cap on the bytes it carries (both directions
//! together).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How a relayed connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// Both sides closed.
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// The byte cap was reached.
    ByteLimit,
    /// A read or write failed (reset, broken pipe).
    Error,
}

impl RelayEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            RelayEnd::Closed => "closed",
            RelayEnd::Idle => "idle timeout",
            RelayEnd::ByteLimit => "byte limit",
            RelayEnd::Error => "error",
        }
    }
}

/// Bytes carried: (program → upstream, upstream → program).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Carried {
    pub up: u64,
    pub down: u64,
}

/// Relay between `client` and `upstream` until both directions ended. A
/// read that would pass `max_bytes` is not forwarded: the connection ends.
pub async fn relay(
    client: TcpStream,
    upstream: TcpStream,
    idle: Duration,
    max_bytes: Option<u64>,
) -> (Carried, RelayEnd) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let mut from_client = vec![0u8; 16 * 1024];
    let mut from_upstream = vec![0u8; 16 * 1024];
    let mut carried = Carried::default();
    let (mut client_done, mut upstream_done) = (false, false);
    let over = |carried: &Carried| max_bytes.is_some_and(|max| carried.up + carried.down > max);
    while !(client_done && upstream_done) {
        let step = tokio::time::timeout(idle, async {
            tokio::select! {
                read = client_read.read(&mut from_client), if !client_done => match read {
                    Ok(0) => {
                        client_done = true;
                        let _ = upstream_write.shutdown().await;
                        Ok(false)
                    }
                    Ok(n) => {
                        carried.up += n as u64;
                        if over(&carried) {
                            return Ok(true);
                        }
                        upstream_write.write_all(&from_client[..n]).await.map(|()| false)
                    }
                    Err(err) => Err(err),
                },
                read = upstream_read.read(&mut from_upstream), if !upstream_done => match read {
                    Ok(0) => {
                        upstream_done = true;
                        let _ = client_write.shutdown().await;
                        Ok(false)
                    }
                    Ok(n) => {
                        carried.down += n as u64;
                        if over(&carried) {
                            return Ok(true);
                        }
                        client_write.write_all(&from_upstream[..n]).await.map(|()| false)
                    }
                    Err(err) => Err(err),
                },
            }
        })
        .await;
        match step {
            Err(_) => return (carried, RelayEnd::Idle),
            Ok(Err(_)) => return (carried, RelayEnd::Error),
            Ok(Ok(true)) => return (carried, RelayEnd::ByteLimit),
            Ok(Ok(false)) => {}
        }
    }
    (carried, RelayEnd::Closed)
}
