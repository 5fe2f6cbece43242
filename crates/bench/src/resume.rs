//! Measurements of sessions that survive the network: streaming with the
//! remote environment's default `outputWindow` against the same stream
//! without a window (alternating runs, one connection each), and how long a
//! cut connection takes to come back: from the cut to the first byte of
//! output after the resume, against a fresh connection's handshake plus
//! the same round trip, measured in the same run. The cut is made by a
//! small TCP relay in front of the server (dropping both sockets: the
//! client and the server see the connection end without a close).

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

/// Time from a cut to the first output byte after the resume (`execd`
/// column), against connecting afresh plus the same round trip (`local`
/// column: the baseline in this run), both through the relay.
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
    let options = config.connect.clone();
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
        let started = Instant::now();
        relay.cut();
        echo(&mut cat, rep).await?;
        resumed.push(started.elapsed());

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

/// A TCP relay whose connections can all be dropped at once.
struct Relay {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    task: AbortHandle,
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
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let Ok(mut server) = TcpStream::connect(target).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let relay = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
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
        })
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Drop every connection (no WebSocket close on either side).
    fn cut(&self) {
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
