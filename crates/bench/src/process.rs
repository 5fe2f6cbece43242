//! A measured process: its start params (the same minimal environment for
//! every row), and reading its next output chunk within a bounded wait.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use execd_environment::EventReceiver;
use execd_protocol::event::EventKind;
use execd_protocol::process::StartParams;

use crate::BenchError;

/// Longest any single wait may take before the run is declared broken.
pub(crate) const WAIT: Duration = Duration::from_secs(120);

pub(crate) fn params(id: String, argv: &[&str], tty: bool) -> StartParams {
    StartParams {
        process_id: id,
        argv: argv.iter().map(|s| s.to_string()).collect(),
        cwd: "/".into(),
        env: HashMap::from([
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("TERM".into(), "xterm".into()),
        ]),
        tty,
        pipe_stdin: false,
        arg0: None,
        size: None,
        exec_policy: None,
        sandbox: None,
        output_window: None,
    }
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
