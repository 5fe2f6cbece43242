//! Params, results and notifications of the `process/*` methods.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub const START: &str = "process/start";
pub const READ: &str = "process/read";
pub const WRITE: &str = "process/write";
pub const TERMINATE: &str = "process/terminate";
/// Extension: resize a PTY process.
pub const RESIZE: &str = "process/resize";
/// Extension: send a signal by name.
pub const SIGNAL: &str = "process/signal";
/// Extension: the client consumed every event up to a seq (flow control).
pub const ACK: &str = "process/ack";
/// Extension: the session's processes and their states.
pub const LIST: &str = "process/list";
/// Longest `writeId` accepted, in bytes.
pub const MAX_WRITE_ID_BYTES: usize = 128;
pub const OUTPUT: &str = "process/output";
pub const EXITED: &str = "process/exited";
pub const CLOSED: &str = "process/closed";

/// Which stream an output chunk came from. TTY processes have one merged `pty` stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OutputStream {
    Stdout,
    Stderr,
    Pty,
}

/// Terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TerminalSize {
    pub rows: u16,
    pub cols: u16,
}

impl Default for TerminalSize {
    fn default() -> Self {
        TerminalSize { rows: 24, cols: 80 }
    }
}

/// `PATH` of a process started with [`StartParams::new`] (what `execd run` gives too).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `process/start` params. [`StartParams::new`] fills in the defaults; the
/// fields are public for everything else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartParams {
    pub process_id: String,
    pub argv: Vec<String>,
    pub cwd: String,
    /// The child's entire environment.
    pub env: HashMap<String, String>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub pipe_stdin: bool,
    #[serde(default)]
    pub arg0: Option<String>,
    /// Extension: initial PTY size (default 24x80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub size: Option<TerminalSize>,
    /// Extension: hold every exec of the process tree for a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub exec_policy: Option<crate::policy::ExecPolicy>,
    /// Extension: confine the process tree (filesystem, network).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub sandbox: Option<crate::sandbox::SandboxSpec>,
    /// Extension: with `sandbox` (`network: false`), the tree reaches the
    /// network only through execd's proxy, which decides by these rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub network_policy: Option<crate::network::NetworkPolicy>,
    /// Extension: at most this many output bytes the client has not
    /// acknowledged (`process/ack`); past it the process's output is not
    /// read until an ack makes room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub output_window: Option<u64>,
}

/// A fresh process id, unique for any connection: `proc-<random uuid>`.
pub fn new_process_id() -> String {
    format!("proc-{}", uuid::Uuid::new_v4())
}

impl StartParams {
    /// Run `argv` with the defaults: a fresh unique process id
    /// (`proc-<uuid>`), cwd `/`, an environment of only
    /// `PATH=`[`DEFAULT_PATH`], pipes (no terminal), stdin closed.
    ///
    /// ```
    /// let mut params = execd_protocol::process::StartParams::new(["bash", "-c", "echo hi"]);
    /// params.cwd = "/tmp".into();
    /// assert!(params.process_id.starts_with("proc-"));
    /// assert_eq!(params.env["PATH"], execd_protocol::process::DEFAULT_PATH);
    /// ```
    pub fn new<I, S>(argv: I) -> StartParams
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        StartParams {
            process_id: new_process_id(),
            argv: argv.into_iter().map(Into::into).collect(),
            cwd: "/".into(),
            env: HashMap::from([("PATH".to_string(), DEFAULT_PATH.to_string())]),
            tty: false,
            pipe_stdin: false,
            arg0: None,
            size: None,
            exec_policy: None,
            sandbox: None,
            network_policy: None,
            output_window: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartResult {
    pub process_id: String,
    /// Extension (codex dialect: starts with `file://` paths): which
    /// sandbox the process runs in; absent in the baseline dialect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true, "x-execd-dialect" = "codex"))]
    pub sandbox_type: Option<crate::codex::SandboxType>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadParams {
    pub process_id: String,
    #[serde(default)]
    pub after_seq: Option<u64>,
    #[serde(default)]
    pub max_bytes: Option<u64>,
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OutputChunk {
    pub seq: u64,
    pub stream: OutputStream,
    #[serde(with = "crate::base64_bytes")]
    #[schemars(with = "String", extend("contentEncoding" = "base64"))]
    pub chunk: Bytes,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadResult {
    pub chunks: Vec<OutputChunk>,
    /// The seq after the last chunk returned, or the process's next seq if none was.
    pub next_seq: u64,
    pub exited: bool,
    pub exit_code: Option<i32>,
    pub closed: bool,
    pub failure: Option<String>,
    /// Extension: name of the signal that killed the process, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub signal: Option<String>,
    /// Extension: the seq of the `exited` event, once the process exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub exited_seq: Option<u64>,
    /// Extension: the seq of the `closed` event, once the process closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub closed_seq: Option<u64>,
    /// Extension (codex's newer readers look for it): whether the failure
    /// was a sandbox denial; execd always says `false` (it does not
    /// classify failures that way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub sandbox_denied: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WriteParams {
    pub process_id: String,
    #[serde(with = "crate::base64_bytes")]
    #[schemars(with = "String", extend("contentEncoding" = "base64"))]
    pub chunk: Bytes,
    /// Extension: close stdin after this chunk (EOF for the program).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    #[schemars(extend("x-execd-extension" = true))]
    pub close_stdin: bool,
    /// Retry key (at most 128 bytes): a write whose id the process
    /// remembers returns the remembered result and writes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub write_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WriteStatus {
    Accepted,
    UnknownProcess,
    StdinClosed,
    Starting,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WriteResult {
    pub status: WriteStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TerminateParams {
    pub process_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TerminateResult {
    pub running: bool,
}

/// `process/resize` (extension): new PTY size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResizeParams {
    pub process_id: String,
    pub rows: u16,
    pub cols: u16,
}

/// `process/signal` (extension): `signal` is one of INT, TERM, KILL, HUP,
/// QUIT, USR1, USR2, WINCH, with or without the `SIG` prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignalParams {
    pub process_id: String,
    pub signal: String,
}

/// `process/signal` result: whether the process was running when signalled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SignalResult {
    pub running: bool,
}

/// `process/output` notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputNotification {
    pub process_id: String,
    pub seq: u64,
    pub stream: OutputStream,
    #[serde(with = "crate::base64_bytes")]
    #[schemars(with = "String", extend("contentEncoding" = "base64"))]
    pub chunk: Bytes,
}

/// `process/exited` notification. `exitCode` is -1 when a signal killed the process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExitedNotification {
    pub process_id: String,
    pub seq: u64,
    pub exit_code: i32,
    /// Extension: the signal's name (e.g. `SIGKILL`) when a signal ended the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-execd-extension" = true))]
    pub signal: Option<String>,
}

/// `process/closed` notification: the last event of a process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClosedNotification {
    pub process_id: String,
    pub seq: u64,
}

/// `process/ack` (extension): every event of the process up to `seq` was consumed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AckParams {
    pub process_id: String,
    pub seq: u64,
}

/// `process/list` (extension) params: none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListParams {}

/// Where a listed process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ProcessStateName {
    Running,
    Exited,
    Closed,
}

/// One process of `process/list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListedProcess {
    pub process_id: String,
    pub state: ProcessStateName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// The seq the next event will get.
    pub next_seq: u64,
    pub tty: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_window: Option<u64>,
    /// The highest seq acknowledged with `process/ack` (windowed processes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acked_seq: Option<u64>,
}

/// `process/list` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListResult {
    pub processes: Vec<ListedProcess>,
}
