//! A fault-injecting TCP proxy for the reconnect tests: a tokio task on a
//! loopback port that forwards every accepted connection to a target
//! address and, on command, breaks it the way a network does. A *cut*
//! aborts every current connection on both sides with a TCP reset
//! (`SO_LINGER 0`, no WebSocket close), at once ([`FaultProxy::cut`]), after
//! exactly N more bytes in a direction (mid-frame: [`FaultProxy::cut_after`]),
//! or at seeded random points ([`FaultProxy::cut_randomly`]). A *stall*
//! stops forwarding in one or both directions (bytes stay in the proxy and
//! the kernel buffers, so the sender's writes eventually block) until
//! [`FaultProxy::unstall`]. The proxy keeps accepting new connections after a
//! cut, so a client can reconnect through it. It stops when dropped.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::TIMEOUT;

/// Client options that reconnect quickly (20 ms first, at most 200 ms
/// apart, 5 s per attempt), giving up after `give_up_after`: for tests
/// that cut the connection through a [`FaultProxy`].
pub fn quick_reconnect(give_up_after: std::time::Duration) -> execd_client::ConnectOptions {
    use std::time::Duration;
    execd_client::ConnectOptions {
        reconnect: Some(execd_client::ReconnectPolicy {
            first_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            give_up_after,
            attempt_timeout: Duration::from_secs(5),
        }),
        ..execd_client::ConnectOptions::default()
    }
}

/// A server (default config) behind a [`FaultProxy`], and a client
/// connected through the proxy that reconnects quickly
/// ([`quick_reconnect`], giving up after 60 s).
pub struct Proxied {
    pub server: execd_server::WsServer,
    pub proxy: Arc<FaultProxy>,
    pub client: execd_client::ExecServerClient,
}

impl Proxied {
    pub async fn start() -> Proxied {
        let server = crate::start_server_with(execd_server::ServerConfig::default()).await;
        let proxy = Arc::new(FaultProxy::in_front_of(&server.url()).await);
        let options = quick_reconnect(std::time::Duration::from_secs(60));
        let client = execd_client::ExecServerClient::connect_with(&proxy.url(), options)
            .await
            .expect("connect through the proxy");
        Proxied {
            server,
            proxy,
            client,
        }
    }
}

/// Which way bytes flow through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → server.
    Up,
    /// Server → client.
    Down,
}

/// Which directions are stalled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stall {
    up: bool,
    down: bool,
}

impl Stall {
    fn holds(&self, direction: Direction) -> bool {
        match direction {
            Direction::Up => self.up,
            Direction::Down => self.down,
        }
    }
}

/// Cuts still to come: after how many more bytes in `direction` each one
/// happens (counted from the previous cut).
struct CutPlan {
    direction: Direction,
    gaps: VecDeque<u64>,
    /// Bytes forwarded in `direction` since the last cut of the plan.
    done: u64,
}

#[derive(Default)]
struct Control {
    /// One token per live connection (by number); cancelling it aborts the connection.
    connections: Mutex<HashMap<u64, CancellationToken>>,
    plan: Mutex<Option<CutPlan>>,
    accepted: AtomicU64,
    /// Bytes forwarded client → server and server → client.
    up: AtomicU64,
    down: AtomicU64,
    cuts: watch::Sender<u64>,
    stall: watch::Sender<Stall>,
}

impl Control {
    fn connections(&self) -> MutexGuard<'_, HashMap<u64, CancellationToken>> {
        self.connections.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn plan(&self) -> MutexGuard<'_, Option<CutPlan>> {
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cut_all(&self) {
        for (_, connection) in self.connections().drain() {
            connection.cancel();
        }
        self.cuts.send_modify(|n| *n += 1);
    }

    /// How many of `wanted` bytes in `direction` may pass before the next
    /// planned cut; `None` = all of them.
    fn allowance(&self, direction: Direction, wanted: usize) -> Option<usize> {
        let plan = self.plan();
        let plan = plan.as_ref().filter(|p| p.direction == direction)?;
        let gap = *plan.gaps.front()?;
        let left = gap.saturating_sub(plan.done);
        (left < wanted as u64).then_some(left as usize)
    }

    /// Count `n` bytes forwarded in `direction`; true if that reached a planned cut.
    fn forwarded(&self, direction: Direction, n: usize) -> bool {
        match direction {
            Direction::Up => self.up.fetch_add(n as u64, Ordering::SeqCst),
            Direction::Down => self.down.fetch_add(n as u64, Ordering::SeqCst),
        };
        let mut plan = self.plan();
        let Some(plan) = plan.as_mut().filter(|p| p.direction == direction) else {
            return false;
        };
        plan.done += n as u64;
        match plan.gaps.front() {
            Some(&gap) if plan.done >= gap => {
                plan.gaps.pop_front();
                plan.done = 0;
                true
            }
            _ => false,
        }
    }
}

/// The proxy; see the module comment.
pub struct FaultProxy {
    addr: SocketAddr,
    control: Arc<Control>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.control.cut_all();
    }
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `target`.
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let control = Arc::new(Control::default());
        let task = tokio::spawn(accept_loop(listener, target, control.clone()));
        FaultProxy {
            addr,
            control,
            task,
        }
    }

    /// A proxy in front of the server at `url` (`ws://HOST:PORT...`).
    pub async fn in_front_of(url: &str) -> FaultProxy {
        let rest = url.strip_prefix("ws://").expect("a ws:// URL");
        let authority = rest.split('/').next().unwrap_or(rest);
        let target = authority.parse().expect("ws://IP:PORT");
        FaultProxy::start(target).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WebSocket URL of the proxy.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.control.accepted.load(Ordering::SeqCst)
    }

    /// Bytes forwarded so far client → server.
    pub fn bytes_up(&self) -> u64 {
        self.control.up.load(Ordering::SeqCst)
    }

    /// Bytes forwarded so far server → client.
    pub fn bytes_down(&self) -> u64 {
        self.control.down.load(Ordering::SeqCst)
    }

    /// Cuts done so far (by any means).
    pub fn cuts(&self) -> u64 {
        *self.control.cuts.borrow()
    }

    /// Abort every current connection now, with a reset on both sides.
    pub fn cut(&self) {
        self.control.cut_all();
    }

    /// Cut every connection once exactly `bytes` more bytes went `direction`
    /// (the last write is split there, so the cut lands mid-frame).
    pub fn cut_after(&self, direction: Direction, bytes: u64) {
        self.plan(direction, vec![bytes]);
    }

    /// Plan `count` cuts in `direction`, each after a pseudo-random number
    /// of bytes in `min..=max` (from the previous cut), drawn from `seed`.
    pub fn cut_randomly(&self, direction: Direction, seed: u64, count: usize, min: u64, max: u64) {
        let mut state = seed | 1;
        let gaps = (0..count)
            .map(|_| {
                // xorshift64: deterministic for a seed, good enough to scatter cuts.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                min + state % (max - min + 1)
            })
            .collect();
        self.plan(direction, gaps);
    }

    /// Cut after each of `gaps` bytes in turn (each counted from the previous cut).
    pub fn plan(&self, direction: Direction, gaps: Vec<u64>) {
        *self.control.plan() = Some(CutPlan {
            direction,
            gaps: gaps.into(),
            done: 0,
        });
    }

    /// Stop forwarding in `direction` (both with `None`) until [`FaultProxy::unstall`].
    pub fn stall(&self, direction: Option<Direction>) {
        self.control.stall.send_modify(|stall| match direction {
            Some(Direction::Up) => stall.up = true,
            Some(Direction::Down) => stall.down = true,
            None => {
                *stall = Stall {
                    up: true,
                    down: true,
                }
            }
        });
    }

    /// Forward in both directions again.
    pub fn unstall(&self) {
        self.control.stall.send_replace(Stall::default());
    }

    /// Wait (bounded by [`TIMEOUT`]) until at least `n` cuts have happened.
    pub async fn wait_cuts(&self, n: u64) {
        let mut cuts = self.control.cuts.subscribe();
        tokio::time::timeout(TIMEOUT, cuts.wait_for(|done| *done >= n))
            .await
            .unwrap_or_else(|_| panic!("fewer than {n} cuts within {TIMEOUT:?}"))
            .expect("proxy control");
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, control: Arc<Control>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        // Registered before the far side is dialled, so a cut meanwhile aborts it too.
        let number = control.accepted.fetch_add(1, Ordering::SeqCst);
        let cancel = CancellationToken::new();
        control.connections().insert(number, cancel.clone());
        let Ok(server) = TcpStream::connect(target).await else {
            control.connections().remove(&number);
            // No server: the client sees its connection reset.
            let _ = client.set_zero_linger();
            continue;
        };
        tokio::spawn(relay(client, server, control.clone(), number, cancel));
    }
}

/// Forward both ways until both sides closed, or abort on a cut.
async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    control: Arc<Control>,
    number: u64,
    cancel: CancellationToken,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let cut = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(client_read, server_write, Direction::Up, &control);
        let down = pump(server_read, client_write, Direction::Down, &control);
        tokio::select! {
            _ = cancel.cancelled() => true,
            _ = async { tokio::join!(up, down) } => false,
        }
    };
    if cut {
        // A reset, not a FIN: the peers see the connection die, no close.
        let _ = client.set_zero_linger();
        let _ = server.set_zero_linger();
    }
    control.connections().remove(&number);
}

async fn pump<R, W>(mut from: R, mut to: W, direction: Direction, control: &Control)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut stall = control.stall.subscribe();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        if stall.wait_for(|s| !s.holds(direction)).await.is_err() {
            return;
        }
        let pass = control.allowance(direction, n).unwrap_or(n);
        if to.write_all(&buf[..pass]).await.is_err() {
            return;
        }
        let _ = to.flush().await;
        if control.forwarded(direction, pass) {
            control.cut_all();
            // The relay is being aborted; never forward another byte.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that sends `total` counting bytes to each connection, then closes.
    async fn counting_server(total: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let data: Vec<u8> = (0..total).map(|i| i as u8).collect();
                    let _ = socket.write_all(&data).await;
                });
            }
        });
        addr
    }

    /// Read until EOF or an error; the bytes and whether it ended in an error.
    async fn drain(socket: &mut TcpStream) -> (Vec<u8>, bool) {
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match tokio::time::timeout(TIMEOUT, socket.read(&mut buf)).await {
                Err(_) => panic!("no data and no end within {TIMEOUT:?}"),
                Ok(Ok(0)) => return (got, false),
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Ok(Err(_)) => return (got, true),
            }
        }
    }

    #[tokio::test]
    async fn forwards_everything_and_cuts_exactly_after_n_bytes() {
        let server = counting_server(300_000).await;
        let proxy = FaultProxy::start(server).await;
        let mut whole = TcpStream::connect(proxy.addr()).await.unwrap();
        let (got, reset) = drain(&mut whole).await;
        assert_eq!(got.len(), 300_000);
        assert!(!reset, "a clean end is passed on as a clean end");

        proxy.cut_after(Direction::Down, 100_001);
        let mut cut = TcpStream::connect(proxy.addr()).await.unwrap();
        let (got, reset) = drain(&mut cut).await;
        assert_eq!(got.len(), 100_001, "exactly the planned bytes pass");
        assert!(reset, "the cut is a reset, not a clean end");
        assert_eq!(proxy.cuts(), 1);

        // Still accepting, and the plan is used up.
        let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(drain(&mut after).await.0.len(), 300_000);
        assert_eq!(proxy.accepted(), 3);
    }

    #[tokio::test]
    async fn random_cuts_follow_the_seed() {
        let server = counting_server(1_000_000).await;
        let proxy = FaultProxy::start(server).await;
        proxy.cut_randomly(Direction::Down, 7, 3, 1_000, 50_000);
        let mut lengths = Vec::new();
        for _ in 0..3 {
            let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
            let (got, reset) = drain(&mut socket).await;
            assert!(reset);
            assert!((1_000..=50_000).contains(&got.len()), "{}", got.len());
            lengths.push(got.len());
        }
        let again = FaultProxy::start(server).await;
        again.cut_randomly(Direction::Down, 7, 3, 1_000, 50_000);
        for expected in lengths {
            let mut socket = TcpStream::connect(again.addr()).await.unwrap();
            assert_eq!(drain(&mut socket).await.0.len(), expected);
        }
    }

    #[tokio::test]
    async fn a_stall_holds_bytes_until_unstalled() {
        let server = counting_server(1000).await;
        let proxy = FaultProxy::start(server).await;
        proxy.stall(Some(Direction::Down));
        let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
        let mut buf = [0u8; 1];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(300), socket.read(&mut buf))
                .await;
        assert!(early.is_err(), "nothing passes a stall");
        proxy.unstall();
        assert_eq!(drain(&mut socket).await.0.len(), 1000);
    }

    #[tokio::test]
    async fn cut_resets_an_idle_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = FaultProxy::start(listener.local_addr().unwrap()).await;
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        let (mut server_side, _) = listener.accept().await.unwrap();
        proxy.cut();
        proxy.wait_cuts(1).await;
        assert!(drain(&mut client).await.1, "the client sees a reset");
        assert!(drain(&mut server_side).await.1, "the server sees a reset");
    }
}
