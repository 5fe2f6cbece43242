//! Measurements of sessions that survive the network: streaming with the
//! remote environment's default `outputWindow` against the same stream
//! without a window (alternating runs, one connection each), and how long a
//! cut connection takes to come back: from the cut to the first *replayed*
//! byte (output the server sent while the link was already dead, so it
//! reached the client only through the resume), against a fresh
//! connection's handshake plus a start and an echo, measured in the same
//! run. The cut is made by a small TCP relay in front of the server: it can
//! first swallow what the server sends (a dead link the server does not
//! notice), then drop both sockets (the client and the server see the
//! connection end without a close).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use execd_client::{ConnectOptions, ExecServerClient, RemoteEnvironment, DEFAULT_OUTPUT_WINDOW};
use execd_environment::{Environment, EventReceiver, StartedProcess};
use execd_protocol::event::EventKind;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::process::{params, WAIT};
use crate::remote::stream;
use crate::report::{Report, RESUME_ROW};
use crate::stats::summarize;
use crate::stream::median_rate;
use crate::{io_error, BenchConfig, BenchError};

/// Output windows compared with no window: the default and larger ones.
const WINDOWS_MIB: [u64; 3] = [DEFAULT_OUTPUT_WINDOW >> 20, 16, 32];

/// A connection whose processes get `window` (`None`: no window).
async fn windowed(config: &BenchConfig, window: Option<u64>) -> Result<Environment, BenchError> {
    let options = ConnectOptions {
        output_window: window,
        ..config.connect.clone()
    };
    let client = ExecServerClient::connect_with(&config.url, options)
        .await
        .map_err(execd_environment::EnvError::from)?;
    Ok(RemoteEnvironment::new(client).into_environment())
}

/// Windowed streams against unwindowed ones (runs alternate, `RUNS` each).
pub async fn measure_window(config: &BenchConfig, report: &mut Report) -> Result<(), BenchError> {
    let unwindowed = windowed(config, None).await?;
    let mut envs = Vec::new();
    for mib in WINDOWS_MIB {
        envs.push(windowed(config, Some(mib << 20)).await?);
    }
    let mut without = Vec::new();
    let mut with = vec![Vec::new(); envs.len()];
    for run in 0..crate::stream::RUNS {
        without.push(stream(&unwindowed, format!("nowin{run}"), config.stream_bytes).await?);
        for (i, env) in envs.iter().enumerate() {
            with[i].push(stream(env, format!("win{i}-{run}"), config.stream_bytes).await?);
        }
    }
    let without = median_rate(without);
    for (mib, rates) in WINDOWS_MIB.iter().zip(with) {
        let rate = median_rate(rates);
        report.note(
            &format!(
                "stream {} MiB, binary frames, outputWindow {mib} MiB (acked as consumed) vs none",
                config.stream_bytes >> 20
            ),
            format!(
                "{:.0} vs {:.0} MB/s: {:.1} % of the unwindowed rate (median of {} runs each)",
                rate / 1e6,
                without / 1e6,
                100.0 * rate / without,
                crate::stream::RUNS
            ),
        );
    }
    Ok(())
}

/// Time from a cut to the first replayed output byte (`execd` column),
/// against connecting afresh plus a start and an echo (`local` column: the
/// baseline in this run), both through the relay.
pub async fn measure_resume(config: &BenchConfig, report: &mut Report) -> Result<(), BenchError> {
    let Some(target) = config
        .url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|authority| authority.parse::<SocketAddr>().ok())
    else {
        report.note(
            RESUME_ROW,
            "not measured (needs a ws://IP:PORT server)".into(),
        );
        return Ok(());
    };
    let relay = Relay::start(target).await?;
    // Binary output frames: the relay finds the echo in them as it is.
    let options = ConnectOptions {
        binary_output: true,
        ..config.connect.clone()
    };
    let client = ExecServerClient::connect_with(&relay.url(), options.clone())
        .await
        .map_err(execd_environment::EnvError::from)?;
    let env = RemoteEnvironment::new(client).into_environment();
    let mut cat = params("resume-cat".into(), &["cat"], false);
    cat.pipe_stdin = true;
    let mut cat = env.exec.start(cat).await?;
    let reps = config.reps.clamp(1, 50);
    let mut resumed = Vec::with_capacity(reps);
    let mut fresh = Vec::with_capacity(reps);
    for rep in 0..reps {
        // The echo is sent into a dead link: it can only come by replay.
        let line = format!("replayed {rep}\n");
        relay.swallow(line.as_bytes());
        let process = cat.process.clone();
        let write = tokio::spawn({
            let line = line.clone();
            async move { process.write(line.into()).await }
        });
        tokio::time::timeout(WAIT, relay.swallowed())
            .await
            .map_err(|_| BenchError::Check("the echo never left the server".into()))?;
        let started = Instant::now();
        relay.cut();
        let first = next_output(&mut cat.events).await?;
        resumed.push(started.elapsed());
        let mut got = first.to_vec();
        while got.len() < line.len() {
            got.extend_from_slice(&next_output(&mut cat.events).await?);
        }
        if got != line.as_bytes() {
            return Err(BenchError::Check(format!("replayed {got:?}, not {line:?}")));
        }
        // Retried after the resume with its writeId: applied once.
        write
            .await
            .map_err(|err| BenchError::Check(format!("the write task failed: {err}")))??;

        let started = Instant::now();
        let client = ExecServerClient::connect_with(&relay.url(), options.clone())
            .await
            .map_err(execd_environment::EnvError::from)?;
        let other = RemoteEnvironment::new(client).into_environment();
        let mut p = params(format!("fresh{rep}"), &["cat"], false);
        p.pipe_stdin = true;
        let mut other_cat = other.exec.start(p).await?;
        echo(&mut other_cat, rep).await?;
        fresh.push(started.elapsed());
        other_cat.process.terminate().await?;
    }
    cat.process.terminate().await?;
    let row = report.latency(RESUME_ROW);
    row.execd = summarize(&resumed);
    row.local = summarize(&fresh);
    Ok(())
}

/// Write a line to `cat` and wait for it to come back.
async fn echo(cat: &mut StartedProcess, rep: usize) -> Result<(), BenchError> {
    let line = format!("resume {rep}\n");
    cat.process.write(line.clone().into()).await?;
    let mut got = Vec::new();
    while got.len() < line.len() {
        got.extend_from_slice(&next_output(&mut cat.events).await?);
    }
    if got != line.as_bytes() {
        return Err(BenchError::Check(format!("cat echoed {got:?}")));
    }
    Ok(())
}

async fn next_output(events: &mut EventReceiver) -> Result<bytes::Bytes, BenchError> {
    loop {
        let event = tokio::time::timeout(WAIT, events.recv())
            .await
            .map_err(|_| BenchError::Check("no output after the resume".into()))?
            .ok_or_else(|| BenchError::Check("event channel ended".into()))??;
        if let EventKind::Output { chunk, .. } = event.kind {
            return Ok(chunk);
        }
    }
}

/// A TCP relay whose connections can all be dropped at once, and which can
/// first swallow what the server sends until a marker has gone by.
struct Relay {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    task: AbortHandle,
    swallow: Arc<Swallow>,
}

/// Server-to-client bytes are dropped while `active`; `gone` is told (once
/// per marker) when the marker was among them.
#[derive(Default)]
struct Swallow {
    state: Mutex<SwallowState>,
    gone: tokio::sync::Notify,
}

#[derive(Default)]
struct SwallowState {
    active: bool,
    marker: Option<Vec<u8>>,
}

impl Swallow {
    fn state(&self) -> std::sync::MutexGuard<'_, SwallowState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True if `bytes` are to be dropped (and tells once the marker was in them).
    fn takes(&self, bytes: &[u8]) -> bool {
        let mut state = self.state();
        if !state.active {
            return false;
        }
        // A WebSocket frame from the server is not masked: a binary output
        // frame carries the program's bytes as they are.
        let seen = state
            .marker
            .as_ref()
            .is_some_and(|marker| bytes.windows(marker.len()).any(|window| window == marker));
        if seen {
            state.marker = None;
            self.gone.notify_one();
        }
        true
    }
}

/// Client-to-server bytes pass; server-to-client bytes pass unless swallowed.
async fn relay_one(client: TcpStream, server: TcpStream, swallow: Arc<Swallow>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = tokio::io::copy(&mut client_read, &mut server_write);
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = server_read.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            if !swallow.takes(&buf[..n]) {
                client_write.write_all(&buf[..n]).await?;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

impl Relay {
    async fn start(target: SocketAddr) -> Result<Relay, BenchError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io_error("binding the relay"))?;
        let addr = listener
            .local_addr()
            .map_err(io_error("the relay's address"))?;
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let held = connections.clone();
        let swallow = Arc::new(Swallow::default());
        let swallowing = swallow.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let relay = tokio::spawn(relay_one(client, server, swallowing.clone()));
                held.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(relay.abort_handle());
            }
        })
        .abort_handle();
        Ok(Relay {
            addr,
            connections,
            task,
            swallow,
        })
    }

    /// Drop what the server sends from now until the next cut; see
    /// [`Relay::swallowed`].
    fn swallow(&self, marker: &[u8]) {
        *self.swallow.state() = SwallowState {
            active: true,
            marker: Some(marker.to_vec()),
        };
    }

    /// Resolves once `marker` was among the swallowed bytes.
    async fn swallowed(&self) {
        self.swallow.gone.notified().await
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Drop every connection (no WebSocket close on either side); the next
    /// ones relay everything.
    fn cut(&self) {
        *self.swallow.state() = SwallowState::default();
        for connection in self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            connection.abort();
        }
    }
}
