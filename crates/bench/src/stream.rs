//! Streaming measurements shared by the baselines: read a child's stdout to
//! the end, checking every byte, and report bytes per second.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::{io_error, BenchError};

/// Each stream is run this many times and its median rate reported: one
/// transfer of a gigabyte moves by ±20 % with what else the machine does.
pub const RUNS: usize = 3;

/// The median of `RUNS` rates.
pub fn median_rate(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates.get(rates.len() / 2).copied().unwrap_or(0.0)
}

/// The median rate of `RUNS` runs of `command()`.
pub fn zero_stream_median(
    mut command: impl FnMut() -> Command,
    bytes: u64,
    what: &str,
) -> Result<f64, BenchError> {
    let rates = (0..RUNS)
        .map(|_| zero_stream_rate(command(), bytes, what))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(median_rate(rates))
}

/// True if every byte is zero (compared a block at a time).
pub fn all_zero(data: &[u8]) -> bool {
    static ZEROS: [u8; 4096] = [0; 4096];
    data.chunks(ZEROS.len())
        .all(|block| block == &ZEROS[..block.len()])
}

/// Run `command` (which prints `bytes` zero bytes) and return bytes per
/// second from start to exit; `what` names it in errors.
pub fn zero_stream_rate(mut command: Command, bytes: u64, what: &str) -> Result<f64, BenchError> {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(io_error(format!("starting {what}")))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::Check(format!("{what} has no stdout")))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = stdout
            .read(&mut buf)
            .map_err(io_error(format!("reading {what}")))?;
        if n == 0 {
            break;
        }
        if !all_zero(&buf[..n]) {
            return Err(BenchError::Check(format!(
                "{what} output is not all zero bytes"
            )));
        }
        total += n as u64;
    }
    child
        .wait()
        .map_err(io_error(format!("waiting for {what}")))?;
    let elapsed = started.elapsed();
    if total != bytes {
        return Err(BenchError::Check(format!(
            "{what} gave {total} bytes, expected {bytes}"
        )));
    }
    Ok(bytes as f64 / elapsed.as_secs_f64())
}
