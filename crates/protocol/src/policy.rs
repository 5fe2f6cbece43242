//! Per-command exec decisions (extension): the policy a process tree runs
//! under, the server→client `exec/approve` request and the `exec/decision`
//! notification that reports every decision.

use serde::{Deserialize, Serialize};

/// Server → client request: may this exec run?
pub const APPROVE: &str = "exec/approve";
/// Server → client notification: what was decided for an exec, and by whom.
pub const DECISION: &str = "exec/decision";

/// What to do with an exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// Run it (inside the sandbox, if any).
    Allow,
    /// Fail it with EACCES.
    Deny,
    /// Run it outside the sandbox, on the caller's stdio (through the
    /// wrapper; an exec that bypasses the wrapper is denied instead).
    Escalate,
    /// Ask the client with `exec/approve`.
    Ask,
}

/// One rule: an argv prefix and its verdict. The first element names a
/// program file (`/usr/bin/git`, or `git` found through the tree's `PATH`);
/// an exec matches when the file the kernel runs is that file (never by
/// argv[0]). The rest match the arguments exactly. The longest matching
/// prefix wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Rule {
    pub prefix: Vec<String>,
    pub decision: Verdict,
}

/// `execPolicy` on `process/start`: every exec in the process tree is held
/// until decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecPolicy {
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Verdict when no rule matches (default `allow`).
    #[serde(default = "default_verdict")]
    pub default: Verdict,
    /// How long an `ask` waits for the client before denying (default 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_timeout_ms: Option<u64>,
}

fn default_verdict() -> Verdict {
    Verdict::Allow
}

/// `exec/approve` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApproveParams {
    pub process_id: String,
    /// The pid of the process calling exec; 0 for the program's own exec,
    /// which is decided before its process is started.
    pub pid: u32,
    /// The file being executed: absolute, every symlink resolved.
    pub path: String,
    pub argv: Vec<String>,
    pub cwd: String,
    /// True when the exec came through the wrapper, so `escalate` can be done.
    pub escalation: bool,
}

/// The client's answer to `exec/approve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Answer {
    Run,
    Escalate,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApproveResult {
    pub decision: Answer,
}

/// Who decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DecidedBy {
    Rule,
    Default,
    Client,
    /// The client did not answer in time (or was gone): denied.
    Timeout,
    /// The exec could not be inspected (e.g. unreadable memory): denied.
    Error,
}

/// `exec/decision` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionParams {
    pub process_id: String,
    pub pid: u32,
    pub path: String,
    pub argv: Vec<String>,
    /// `allow`, `deny` or `escalate` (what actually happened).
    pub decision: Verdict,
    pub decided_by: DecidedBy,
    /// The matching rule's prefix, when a rule decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<Vec<String>>,
    /// Why, in words (e.g. for an escalation that could not be done).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
