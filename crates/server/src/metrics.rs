//! The server's Prometheus metrics: one [`Metrics`] per server (in
//! [`crate::shared::Shared`]) owns the `prometheus-client` registry and a
//! handle on every metric, and [`Metrics::render`] writes them in the text
//! format for `GET /metrics`. Call sites are one line each (a counter
//! bumped, a guard held); nothing here takes a lock on the output path:
//! the per-stream output counters are plain atomics fetched once, and the
//! gauges read from elsewhere (processes not closed, retained output) are
//! set when a scrape renders. Label values are all fixed strings, so a
//! client cannot grow the set of series.

use std::time::Duration;

use execd_process::SharedBudget;
use execd_protocol::policy::Verdict;
use execd_protocol::process::OutputStream;
use execd_protocol::RpcError;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// The content type of [`Metrics::render`]'s text (OpenMetrics, which
/// Prometheus reads).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = [(&'static str, &'static str); 1];
type LabelPair = [(&'static str, &'static str); 2];

/// Every metric of one server (see the module).
pub struct Metrics {
    registry: Registry,
    connections_open: Gauge,
    connections: Counter,
    auth_failures: Counter,
    sessions_open: Gauge,
    sessions: Counter,
    processes_running: Gauge,
    processes_open: Gauge,
    processes_started: Counter,
    process_start_failures: Counter,
    processes_exited: Family<Labels, Counter>,
    spawn_seconds: Histogram,
    output_stdout: Counter,
    output_stderr: Counter,
    output_pty: Counter,
    stdin_bytes: Counter,
    exec_decisions: Family<Labels, Counter>,
    fs_operations: Family<LabelPair, Counter>,
    retained_bytes: Gauge,
}

/// Held while something counted as open is: the gauge goes down on drop.
pub struct OpenGuard(Gauge);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("execd");
        let output: Family<Labels, Counter> = Family::default();
        let metrics = Metrics {
            connections_open: Gauge::default(),
            connections: Counter::default(),
            auth_failures: Counter::default(),
            sessions_open: Gauge::default(),
            sessions: Counter::default(),
            processes_running: Gauge::default(),
            processes_open: Gauge::default(),
            processes_started: Counter::default(),
            process_start_failures: Counter::default(),
            processes_exited: Family::default(),
            // 100 µs to ~3.3 s.
            spawn_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            output_stdout: output.get_or_create_owned(&[("stream", "stdout")]),
            output_stderr: output.get_or_create_owned(&[("stream", "stderr")]),
            output_pty: output.get_or_create_owned(&[("stream", "pty")]),
            stdin_bytes: Counter::default(),
            exec_decisions: Family::default(),
            fs_operations: Family::default(),
            retained_bytes: Gauge::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "connections_open",
            "WebSocket connections being served",
            metrics.connections_open.clone(),
        );
        r.register(
            "connections",
            "WebSocket connections admitted",
            metrics.connections.clone(),
        );
        r.register(
            "auth_failures",
            "WebSocket upgrades refused for a missing or wrong token",
            metrics.auth_failures.clone(),
        );
        r.register(
            "sessions_open",
            "Sessions alive (attached to a connection or waiting for a resume)",
            metrics.sessions_open.clone(),
        );
        r.register("sessions", "Sessions created", metrics.sessions.clone());
        r.register(
            "processes_running",
            "Processes started and not yet exited",
            metrics.processes_running.clone(),
        );
        r.register(
            "processes_open",
            "Processes not yet closed (running, or exited with output retained), against --max-processes",
            metrics.processes_open.clone(),
        );
        r.register(
            "processes_started",
            "Processes started",
            metrics.processes_started.clone(),
        );
        r.register(
            "process_start_failures",
            "process/start requests that started nothing (spawn error, limit, policy)",
            metrics.process_start_failures.clone(),
        );
        r.register(
            "processes_exited",
            "Processes exited, by outcome: success (status 0), failure (other status), signal",
            metrics.processes_exited.clone(),
        );
        r.register_with_unit(
            "process_spawn",
            "Time from process/start to the process running",
            Unit::Seconds,
            metrics.spawn_seconds.clone(),
        );
        r.register_with_unit(
            "process_output",
            "Process output delivered to clients, by stream",
            Unit::Bytes,
            output,
        );
        r.register_with_unit(
            "process_input",
            "Bytes written to processes' stdin (process/write)",
            Unit::Bytes,
            metrics.stdin_bytes.clone(),
        );
        r.register(
            "exec_decisions",
            "Exec-policy decisions, by outcome (allow, deny, escalate)",
            metrics.exec_decisions.clone(),
        );
        r.register(
            "fs_operations",
            "Filesystem requests answered, by method and error (none, not_found, invalid_params, invalid_request, internal, other)",
            metrics.fs_operations.clone(),
        );
        r.register_with_unit(
            "retained_output",
            "Process output retained for process/read over all connections, against --retain-total-bytes",
            Unit::Bytes,
            metrics.retained_bytes.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The text for `GET /metrics`, with the gauges read from `budget` now.
    pub fn render(&self, budget: &SharedBudget) -> String {
        self.processes_open.set(gauge_value(budget.processes()));
        self.retained_bytes
            .set(gauge_value(budget.retained_bytes()));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }

    /// A WebSocket connection admitted; open until the guard drops.
    pub fn connection_opened(&self) -> OpenGuard {
        self.connections.inc();
        self.connections_open.inc();
        OpenGuard(self.connections_open.clone())
    }

    /// An upgrade refused for its token.
    pub fn auth_failed(&self) {
        self.auth_failures.inc();
    }

    /// A session created; alive until the guard drops.
    pub fn session_opened(&self) -> OpenGuard {
        self.sessions.inc();
        self.sessions_open.inc();
        OpenGuard(self.sessions_open.clone())
    }

    /// A `process/start` done after `took`: started, or not.
    pub fn process_start(&self, started: bool, took: Duration) {
        if started {
            self.processes_started.inc();
            self.processes_running.inc();
            self.spawn_seconds.observe(took.as_secs_f64());
        } else {
            self.process_start_failures.inc();
        }
    }

    /// A process exited with `code`, or was killed by `signal`.
    pub fn process_exited(&self, code: i32, signal: Option<&str>) {
        let outcome = match (code, signal) {
            (_, Some(_)) => "signal",
            (0, None) => "success",
            _ => "failure",
        };
        self.processes_running.dec();
        self.processes_exited
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }

    /// `bytes` of output delivered from `stream` (atomics only).
    pub fn output(&self, stream: OutputStream, bytes: usize) {
        let counter = match stream {
            OutputStream::Stdout => &self.output_stdout,
            OutputStream::Stderr => &self.output_stderr,
            OutputStream::Pty => &self.output_pty,
        };
        counter.inc_by(bytes as u64);
    }

    /// `bytes` written to a process's stdin.
    pub fn input(&self, bytes: usize) {
        self.stdin_bytes.inc_by(bytes as u64);
    }

    /// An exec-policy decision reported.
    pub fn exec_decision(&self, verdict: Verdict) {
        let outcome = match verdict {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Escalate => "escalate",
            Verdict::Ask => "ask",
        };
        self.exec_decisions
            .get_or_create(&[("outcome", outcome)])
            .inc();
    }

    /// A filesystem request answered (`method` one of the fixed names of
    /// [`fs_method`]).
    pub fn fs_operation(&self, method: &'static str, result: Result<(), &RpcError>) {
        let error = match result {
            Ok(()) => "none",
            Err(err) => error_kind(err),
        };
        self.fs_operations
            .get_or_create(&[("method", method), ("error", error)])
            .inc();
    }
}

/// The fixed name of a filesystem method, `None` for anything else (so
/// made-up method names never become label values).
pub fn fs_method(method: &str) -> Option<&'static str> {
    use execd_protocol::codex::fs as cfs;
    use execd_protocol::fs as fsp;
    use execd_protocol::fs_watch as fw;
    use execd_protocol::transfer as tp;
    [
        fsp::READ_FILE,
        fsp::WRITE_FILE,
        fsp::CREATE_DIRECTORY,
        fsp::GET_METADATA,
        fsp::SET_METADATA,
        fsp::READ_DIRECTORY,
        fsp::REMOVE,
        fsp::COPY,
        fsp::RENAME,
        fw::WATCH,
        fw::UNWATCH,
        tp::UPLOAD,
        tp::UPLOAD_FINISH,
        tp::DOWNLOAD,
        tp::TRANSFER_CANCEL,
        cfs::OPEN,
        cfs::READ_BLOCK,
        cfs::CLOSE,
        cfs::CANONICALIZE,
        cfs::WALK,
        cfs::WATCH_MISSING,
    ]
    .into_iter()
    .find(|known| *known == method)
}

/// A JSON-RPC error as a label value.
fn error_kind(err: &RpcError) -> &'static str {
    match err.code {
        -32004 => "not_found",
        -32602 => "invalid_params",
        -32600 => "invalid_request",
        -32603 => "internal",
        _ => "other",
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
