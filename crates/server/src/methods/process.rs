//! `process/*`: start, write, terminate, resize, signal, read, ack and
//! list, as a thin adapter over the session's `LocalBackend` (wire params
//! in, wire results out). Quick, order-sensitive methods (start, write,
//! terminate, ack) answer inline in frame order; long-polls answer from a
//! task. Retries are safe: a start repeated after a resume with the same
//! `processId` and identical params returns the first result, and a write with a
//! `writeId` the process remembers writes nothing again.

use std::time::{Duration, Instant};

use execd_protocol::fs::Empty;
use execd_protocol::process::{self as pp, TerminalSize};
use execd_protocol::{ErrorCode, RequestId, RpcError};
use serde_json::value::RawValue;

use execd_local::LocalBackend;

use crate::audit;
use crate::methods::{dialect, done, ok, Reply, RpcResult};
use crate::rpc::parse_params;
use crate::session::Session;

/// Inline, so a following write finds the process; but a start under
/// an exec policy may wait for a client's answer, which the connection's
/// loop must stay free to read, so that one replies from a task. A start
/// with more frames waiting behind it spawns on the blocking pool beside
/// the others of its burst ([`crate::start_burst`]); the connection holds
/// every later request until it has been answered.
pub fn start(session: &mut Session, id: &RequestId, params: &RawValue) -> Result<Reply, RpcError> {
    let (params, dialect) = dialect::start_params(params)?;
    let result = move |params: pp::StartParams| dialect::start_result(params.process_id, dialect);
    if session.backend().is_retried_start(&params) {
        return Ok(Reply::Now(result(params)));
    }
    let asked = Instant::now();
    let place = if params.exec_policy.is_some() {
        session.in_flight()?
    } else {
        // Alone, or with every place taken: spawned inline.
        let place = session
            .starts
            .side_by_side()
            .then(|| session.in_flight().ok());
        match place.flatten() {
            Some(place) => place,
            None => {
                let started = start_inline(session, &params);
                return Ok(started.and_then(|()| result(params)).into());
            }
        }
    };
    // Claimed now, in frame order, so a write right behind this start
    // answers `starting` (and a second start of the id is a duplicate).
    let backend = session.backend().clone();
    if let Err(err) = backend.reserve(&params) {
        let err = RpcError::from(err);
        session.metrics().process_start(false, asked.elapsed());
        audit_start(session.id(), &backend, &params, &Err(err.clone()));
        return Err(err);
    }
    let side_by_side = params.exec_policy.is_none();
    let session_id = session.id().to_string();
    let metrics = session.shared_metrics();
    let task = session.reply_with(place, id, async move {
        let started = backend
            .start_reserved(&params)
            .await
            .map_err(RpcError::from);
        metrics.process_start(started.is_ok(), asked.elapsed());
        audit_start(&session_id, &backend, &params, &started);
        started?;
        result(params)
    });
    if side_by_side {
        session.starts.push(task);
    }
    Ok(Reply::Later)
}

/// Spawn on the connection's task and answer in frame order.
fn start_inline(session: &Session, params: &pp::StartParams) -> Result<(), RpcError> {
    let asked = Instant::now();
    let backend = session.backend();
    let started = backend.start_now(params).map_err(RpcError::from);
    session
        .metrics()
        .process_start(started.is_ok(), asked.elapsed());
    audit_start(session.id(), backend, params, &started);
    started
}

fn audit_start(
    session: &str,
    backend: &LocalBackend,
    params: &pp::StartParams,
    started: &Result<(), RpcError>,
) {
    let outcome = match started {
        Ok(()) => Ok(backend.pid(&params.process_id)),
        Err(err) => Err(err.message.as_str()),
    };
    audit::process_start(
        session,
        &params.process_id,
        &params.argv,
        &params.cwd,
        params.tty,
        outcome,
    );
}

pub fn write(session: &Session, params: &RawValue) -> RpcResult {
    let params: pp::WriteParams = parse_params(pp::WRITE, params)?;
    if let Some(write_id) = &params.write_id {
        if write_id.len() > pp::MAX_WRITE_ID_BYTES {
            return Err(RpcError::new(
                ErrorCode::InvalidParams,
                format!(
                    "writeId of {} bytes is longer than {} bytes",
                    write_id.len(),
                    pp::MAX_WRITE_ID_BYTES
                ),
            ));
        }
    }
    session.metrics().input(params.chunk.len());
    let status = session.backend().write(
        &params.process_id,
        params.chunk,
        params.close_stdin,
        params.write_id.as_deref(),
    )?;
    ok(pp::WriteResult { status })
}

/// The client consumed the process's events up to `seq` (flow control).
pub fn ack(session: &Session, params: &RawValue) -> RpcResult {
    let params: pp::AckParams = parse_params(pp::ACK, params)?;
    done(
        session
            .backend()
            .ack(&params.process_id, params.seq)
            .map(|()| Empty {}),
    )
}

/// The session's processes (closed records too) and their states.
pub fn list(session: &Session, params: &RawValue) -> RpcResult {
    let _: pp::ListParams = parse_params(pp::LIST, params)?;
    ok(pp::ListResult {
        processes: session.backend().list(),
    })
}

pub fn terminate(session: &Session, params: &RawValue) -> RpcResult {
    let params: pp::TerminateParams = parse_params(pp::TERMINATE, params)?;
    ok(pp::TerminateResult {
        running: session.backend().terminate(&params.process_id),
    })
}

pub fn resize(session: &Session, params: &RawValue) -> RpcResult {
    let params: pp::ResizeParams = parse_params(pp::RESIZE, params)?;
    let size = TerminalSize {
        rows: params.rows,
        cols: params.cols,
    };
    done(
        session
            .backend()
            .resize(&params.process_id, size)
            .map(|()| Empty {}),
    )
}

pub fn signal(session: &Session, params: &RawValue) -> RpcResult {
    let params: pp::SignalParams = parse_params(pp::SIGNAL, params)?;
    // codex's one signal, `interrupt`, is SIGINT.
    let name = if params.signal == execd_protocol::codex::SIGNAL_INTERRUPT {
        "INT"
    } else {
        &params.signal
    };
    let running = session.backend().signal(&params.process_id, name)?;
    ok(pp::SignalResult { running })
}

/// A long-poll (up to the server's `max_read_wait`): answered from a task.
pub fn read(session: &Session, id: &RequestId, params: &RawValue) -> Result<Reply, RpcError> {
    let params: pp::ReadParams = parse_params(pp::READ, params)?;
    let backend = session.backend().clone();
    let wait =
        Duration::from_millis(params.wait_ms.unwrap_or(0)).min(session.config().max_read_wait);
    session.reply_later(id, async move {
        let after_seq = params.after_seq.unwrap_or(0);
        let mut result = done(
            backend
                .read(&params.process_id, after_seq, params.max_bytes, wait)
                .await,
        )?;
        // codex's newer readers look for it; execd does not classify
        // failures as sandbox denials.
        result["sandboxDenied"] = false.into();
        Ok(result)
    })
}
