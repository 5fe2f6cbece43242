//! The network policy of a sandboxed process tree (extension): `networkPolicy`
//! on `process/start` (rules by host and port), the server→client
//! `network/approve` request for `ask` verdicts and the `network/decision`
//! notification that reports every decision the tree's proxy made.

use serde::{Deserialize, Serialize};

/// Server → client request: may the tree connect to this host and port?
pub const APPROVE: &str = "network/approve";
/// Server → client notification: what was decided for a connection.
pub const DECISION: &str = "network/decision";
/// The port of the proxy inside the tree's network namespace (the namespace
/// is new and empty, so it is always free); `HTTP_PROXY` and friends name it.
pub const PROXY_PORT: u16 = 3128;
/// What `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` (and lowercase) are set to.
pub const PROXY_URL: &str = "http://127.0.0.1:3128";

/// What to do with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NetworkVerdict {
    Allow,
    Deny,
    /// Ask the client with `network/approve`.
    Ask,
}

/// One rule: a host pattern, an optional port, a verdict. `host` is a name
/// or literal IP matched exactly (case-insensitively), `*.example.com`
/// (every name below `example.com`, not `example.com` itself), or `*`
/// (every host). The most specific matching rule wins: a longer host
/// pattern, then one with a port; the first of equals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NetworkRule {
    pub host: String,
    /// The port it applies to; every port when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub decision: NetworkVerdict,
}

/// `networkPolicy` on `process/start` (needs `sandbox` with `network:
/// false`): the tree's only way out of its network namespace is execd's
/// HTTP proxy, which decides every connection by these rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicy {
    #[serde(default)]
    pub rules: Vec<NetworkRule>,
    /// Verdict when no rule matches (default `deny`).
    #[serde(default = "default_verdict")]
    pub default: NetworkVerdict,
    /// How long an `ask` waits for the client before denying (default 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_timeout_ms: Option<u64>,
    /// Which messages ask and report: execd's own (`network/approve`,
    /// `network/decision`) or, for a start in codex's dialect (`networkProxy`),
    /// codex's (`network/policyRequest`, `network/policyDecision`). Not on
    /// the wire.
    #[serde(skip)]
    #[schemars(skip)]
    pub dialect: NetworkDialect,
}

/// Whose messages a tree's network decisions travel in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkDialect {
    #[default]
    Execd,
    Codex,
}

fn default_verdict() -> NetworkVerdict {
    NetworkVerdict::Deny
}

impl NetworkPolicy {
    /// A policy of `rules`, denying the rest.
    pub fn new(rules: Vec<NetworkRule>) -> NetworkPolicy {
        NetworkPolicy {
            rules,
            default: NetworkVerdict::Deny,
            ask_timeout_ms: None,
            dialect: NetworkDialect::Execd,
        }
    }
}

/// How the tree asked for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NetworkProtocol {
    /// A plain HTTP request through the proxy (absolute URI, `Host`).
    Http,
    /// An HTTP `CONNECT` tunnel (HTTPS and anything else over TCP).
    Connect,
}

/// `network/approve` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkApproveParams {
    pub process_id: String,
    /// The host as the program named it (lowercase, no brackets).
    pub host: String,
    pub port: u16,
    pub protocol: NetworkProtocol,
    /// The process that opened the connection, when it could be found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// What it was running (its command line; the tree's own argv when the
    /// process could not be found).
    pub argv: Vec<String>,
}

/// The client's answer to `network/approve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NetworkAnswer {
    Allow,
    Deny,
}

/// `network/approve` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkApproveResult {
    pub decision: NetworkAnswer,
    /// Apply the answer to every later connection of this process tree to
    /// the same host and port, without asking again.
    #[serde(default)]
    pub for_process: bool,
}

/// Who decided a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NetworkDecidedBy {
    Rule,
    Default,
    Client,
    /// An earlier answer given `forProcess`.
    Remembered,
    /// The client did not answer in time (or was gone): denied.
    Timeout,
    /// A literal private, loopback or link-local address (or a name that
    /// resolves only to such) that no rule names: denied.
    PrivateAddress,
}

/// `network/decision` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkDecisionParams {
    pub process_id: String,
    pub host: String,
    pub port: u16,
    pub protocol: NetworkProtocol,
    /// What happened: `allow` (the proxy connects) or `deny`.
    pub decision: NetworkAnswer,
    pub decided_by: NetworkDecidedBy,
    /// The matching rule, when a rule decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<NetworkRule>,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One proxied connection at its end, for audit trails (not a message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSummary {
    pub process_id: String,
    /// Empty (and `port` 0) when it was refused before naming a target.
    pub host: String,
    pub port: u16,
    pub protocol: NetworkProtocol,
    /// `allow` or `deny`.
    pub decision: NetworkAnswer,
    /// The upstream address connected to, when one was.
    pub upstream: Option<String>,
    /// Bytes from the program upstream, and back.
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
    /// How it ended: `closed`, `idle timeout`, `byte limit`, `denied`,
    /// `connect failed: ...`, ...
    pub end: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_defaults_and_wire_names() {
        let policy: NetworkPolicy = serde_json::from_str(
            r#"{"rules":[{"host":"*.example.com","port":443,"decision":"allow"}],"askTimeoutMs":5}"#,
        )
        .expect("policy");
        assert_eq!(policy.default, NetworkVerdict::Deny);
        assert_eq!(policy.rules[0].port, Some(443));
        assert_eq!(policy.ask_timeout_ms, Some(5));
        assert_eq!(policy.dialect, NetworkDialect::Execd);
        let answer: NetworkApproveResult =
            serde_json::from_str(r#"{"decision":"allow"}"#).expect("answer");
        assert!(!answer.for_process);
        let json = serde_json::to_value(NetworkApproveResult {
            decision: NetworkAnswer::Deny,
            for_process: true,
        })
        .expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"decision": "deny", "forProcess": true})
        );
    }
}
