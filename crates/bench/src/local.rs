//! The local limit: the same work done directly by this process, with no
//! server in between (a TCP ping-pong, fork+exec+wait, a pipe; the PTY of
//! our own is in [`crate::echo`], and fork+exec+wait is taken in turn with
//! execd's spawns in [`crate::remote`]).

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::report::{stream_rows, Report};
use crate::stats::summarize;
use crate::stream::zero_stream_median;
use crate::{io_error, BenchConfig, BenchError};

pub async fn measure(config: &BenchConfig, report: &mut Report) -> Result<(), BenchError> {
    let reps = config.reps;
    let bytes = config.stream_bytes;
    let (ping, stream) = tokio::task::spawn_blocking(move || {
        Ok::<_, BenchError>((tcp_ping_pong(reps)?, stream(bytes)?))
    })
    .await
    .map_err(|err| BenchError::Check(format!("local baseline task failed: {err}")))??;
    report.latency(crate::report::ROUND_TRIP).local = summarize(&ping);
    for row in stream_rows(config.stream_bytes) {
        report.throughput(&row).local = Some(stream);
    }
    Ok(())
}

/// The floor under any request/response: 64 bytes to an echoing thread
/// over loopback TCP (Nagle off) and back.
fn tcp_ping_pong(reps: usize) -> Result<Vec<Duration>, BenchError> {
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_error("binding loopback"))?;
    let addr = listener
        .local_addr()
        .map_err(io_error("binding loopback"))?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut peer, _) = listener.accept()?;
        peer.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        loop {
            match peer.read(&mut buf)? {
                0 => return Ok(()),
                n => peer.write_all(&buf[..n])?,
            }
        }
    });
    let mut stream = TcpStream::connect(addr).map_err(io_error("connecting on loopback"))?;
    stream
        .set_nodelay(true)
        .map_err(io_error("setting TCP_NODELAY"))?;
    let message = [7u8; 64];
    let mut back = [0u8; 64];
    let mut samples = Vec::with_capacity(reps);
    for _ in 0..reps {
        let started = Instant::now();
        stream
            .write_all(&message)
            .map_err(io_error("loopback write"))?;
        stream
            .read_exact(&mut back)
            .map_err(io_error("loopback read"))?;
        samples.push(started.elapsed());
    }
    drop(stream);
    let _ = echo.join();
    Ok(samples)
}

/// One fork + exec + wait of /bin/true (taken in turn with execd's spawns,
/// see [`crate::remote`]).
pub(crate) fn spawn_once() -> Result<Duration, BenchError> {
    let started = Instant::now();
    let status = Command::new("/bin/true")
        .status()
        .map_err(io_error("running /bin/true"))?;
    let elapsed = started.elapsed();
    if !status.success() {
        return Err(BenchError::Check("/bin/true failed".into()));
    }
    Ok(elapsed)
}

/// Bytes per second of `head -c N /dev/zero` read through a pipe.
fn stream(bytes: u64) -> Result<f64, BenchError> {
    let head = || {
        let mut command = Command::new("head");
        command.args(["-c", &bytes.to_string(), "/dev/zero"]);
        command
    };
    zero_stream_median(head, bytes, "local head")
}
