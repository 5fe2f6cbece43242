//! A measured process: its start params (the same minimal environment for
//! every row), and reading its next output chunk within a bounded wait.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use execd_environment::EventReceiver;
use execd_protocol::event::EventKind;
use execd_protocol::process::StartParams;

use crate::stream::all_zero;
use crate::BenchError;

/// Longest any single wait may take before the run is declared broken.
pub(crate) const WAIT: Duration = Duration::from_secs(120);

/// The whole environment of every measured process (the local baselines
/// give their children the same).
pub(crate) const ENV: [(&str, &str); 2] =
    [("PATH", "/usr/local/bin:/usr/bin:/bin"), ("TERM", "xterm")];

pub(crate) fn params(id: String, argv: &[&str], tty: bool) -> StartParams {
    let mut params = StartParams::new(argv.iter().copied());
    params.process_id = id;
    params.env = ENV
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect::<HashMap<_, _>>();
    params.tty = tty;
    params
}

pub(crate) async fn next_output(events: &mut EventReceiver) -> Result<Bytes, BenchError> {
    let event = tokio::time::timeout(WAIT, events.recv())
        .await
        .map_err(|_| BenchError::Check("no output in time".into()))?
        .ok_or_else(|| BenchError::Check("event channel ended".into()))??;
    match event.kind {
        EventKind::Output { chunk, .. } => Ok(chunk),
        other => Err(BenchError::Check(format!("process ended early: {other:?}"))),
    }
}

/// Output bytes of a process until it closed, with its exit code.
pub(crate) struct Drained {
    pub output: Vec<u8>,
    pub bytes: u64,
    pub exit_code: Option<i32>,
}

/// Drain a process's events until `Closed`. With `keep`, the output is kept.
pub(crate) async fn drain(events: &mut EventReceiver, keep: bool) -> Result<Drained, BenchError> {
    let mut drained = Drained {
        output: Vec::new(),
        bytes: 0,
        exit_code: None,
    };
    loop {
        let event = tokio::time::timeout(WAIT, events.recv())
            .await
            .map_err(|_| BenchError::Check("a process did not close in time".into()))?
            .ok_or_else(|| BenchError::Check("event channel ended before closed".into()))??;
        match event.kind {
            EventKind::Output { chunk, .. } => {
                drained.bytes += chunk.len() as u64;
                if keep {
                    drained.output.extend_from_slice(&chunk);
                } else if !all_zero(&chunk) {
                    return Err(BenchError::Check(
                        "streamed data is not all zero bytes".into(),
                    ));
                }
            }
            EventKind::Exited(exit) => drained.exit_code = Some(exit.code),
            EventKind::Closed => return Ok(drained),
        }
    }
}
