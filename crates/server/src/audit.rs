//! The audit trail: one structured `tracing` event, target `execd::audit`,
//! for each thing an operator may have to account for afterwards: a
//! connection admitted or refused (peer, how it authenticated or why not),
//! a connection closed, a session detached (its connection lost),
//! resumed or expired, a process started or not (argv, cwd, pid, session),
//! an exec-policy decision (the `exec/decision` content), each connection
//! through a network policy's proxy (decision, bytes, how it ended), and each
//! filesystem change (write, append, directory creation, remove, copy, with
//! the paths). Every event has an `event` field naming it; lists (argv) are
//! JSON text. `execd serve --log-format json` renders them as JSON lines;
//! filter them with `RUST_LOG=execd::audit=info`.

use execd_protocol::network::{ConnectionSummary, NetworkAnswer};
use execd_protocol::policy::DecisionParams;
use tracing::{info, warn};

use crate::access::{Admission, Refusal};

/// The target of every audit event.
pub const TARGET: &str = "execd::audit";

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

/// A handshake refused (warn: someone tried to get in).
pub fn connection_refused(peer: &str, refusal: &Refusal) {
    warn!(
        target: TARGET,
        event = "connection.refused",
        peer,
        status = refusal.status().as_u16(),
        reason = refusal.kind(),
        detail = %refusal.message(),
        "connection refused"
    );
}

/// A connection admitted; its session id ties the later events to it.
pub fn connection_opened(peer: &str, session: &str, auth: Admission) {
    info!(
        target: TARGET,
        event = "connection.opened",
        peer,
        session,
        auth = auth.as_str(),
        "connection opened"
    );
}

pub fn connection_closed(peer: &str, session: &str) {
    info!(
        target: TARGET,
        event = "connection.closed",
        peer,
        session,
        "connection closed"
    );
}

/// A session's connection was lost: it waits `grace_ms` for a resume.
pub fn session_detached(peer: &str, session: &str, grace_ms: u128) {
    info!(
        target: TARGET,
        event = "session.detached",
        peer,
        session,
        grace_ms = grace_ms as u64,
        "session detached"
    );
}

/// A session taken over by a new connection (`initialize {resumeSessionId}`).
pub fn session_resumed(peer: &str, session: &str, took_over: bool) {
    info!(
        target: TARGET,
        event = "session.resumed",
        peer,
        session,
        took_over,
        "session resumed"
    );
}

/// A detached session ended: `reason` is `expired` (not resumed within
/// the grace), `evicted` (too many detached) or `shutdown`.
pub fn session_ended(session: &str, reason: &str) {
    info!(
        target: TARGET,
        event = "session.ended",
        session,
        reason,
        "detached session ended"
    );
}

/// A `process/start`: `pid` when it started, `error` when it did not.
pub fn process_start(
    session: &str,
    process_id: &str,
    argv: &[String],
    cwd: &str,
    tty: bool,
    outcome: Result<Option<i32>, &str>,
) {
    let argv = json_list(argv);
    match outcome {
        Ok(pid) => info!(
            target: TARGET,
            event = "process.started",
            session,
            process_id,
            argv,
            cwd,
            tty,
            pid,
            "process started"
        ),
        Err(error) => info!(
            target: TARGET,
            event = "process.start_failed",
            session,
            process_id,
            argv,
            cwd,
            tty,
            error,
            "process did not start"
        ),
    }
}

/// An exec-policy decision, as reported to the client in `exec/decision`.
pub fn exec_decision(session: &str, decision: &DecisionParams) {
    let verdict = serde_json::to_value(decision.decision).unwrap_or_default();
    let decided_by = serde_json::to_value(decision.decided_by).unwrap_or_default();
    let rule = decision.rule.as_deref().map(json_list);
    info!(
        target: TARGET,
        event = "exec.decision",
        session,
        process_id = decision.process_id,
        pid = decision.pid,
        path = decision.path,
        argv = json_list(&decision.argv),
        decision = verdict.as_str().unwrap_or_default(),
        decided_by = decided_by.as_str().unwrap_or_default(),
        rule,
        reason = decision.reason,
        "exec decision"
    );
}

/// One connection of a network-policied tree through its proxy, at its
/// end: allowed ones with what they carried, denied ones too.
pub fn network_connection(session: &str, summary: &ConnectionSummary) {
    let protocol = serde_json::to_value(summary.protocol).unwrap_or_default();
    let decision = match summary.decision {
        NetworkAnswer::Allow => "allow",
        NetworkAnswer::Deny => "deny",
    };
    info!(
        target: TARGET,
        event = "network.connection",
        session,
        process_id = summary.process_id,
        host = summary.host,
        port = summary.port,
        protocol = protocol.as_str().unwrap_or_default(),
        decision,
        upstream = summary.upstream,
        bytes_up = summary.bytes_up,
        bytes_down = summary.bytes_down,
        duration_ms = summary.duration_ms,
        end = summary.end,
        "network connection"
    );
}

/// A filesystem change: `operation` is the method (`fs/writeFile`, ...),
/// `path` what it changed, `destination` the copy's target.
pub fn fs_change(
    session: &str,
    operation: &str,
    path: &str,
    destination: Option<&str>,
    outcome: Result<(), String>,
) {
    let error = outcome.err();
    info!(
        target: TARGET,
        event = "fs.change",
        session,
        operation,
        path,
        destination,
        ok = error.is_none(),
        error,
        "filesystem change"
    );
}
