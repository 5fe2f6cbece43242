//! codex's managed network, as execd serves it: the `networkProxy` launch
//! config on `process/start` (what the tree's proxy allows), the
//! server→client `network/policyRequest` for hosts the config leaves open,
//! and the `network/policyDecision` notification reporting each decision.
//! The shapes follow codex's exec-server protocol; fields execd does not
//! use are accepted and ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const POLICY_REQUEST: &str = "network/policyRequest";
pub const POLICY_DECISION: &str = "network/policyDecision";

/// `networkProxy` on `process/start`: launch a proxy for this tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProxyLaunch {
    pub proxy: RemoteNetworkProxyConfig,
    /// How long a `network/policyRequest` may take (default 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_decision_timeout_ms: Option<u64>,
}

/// The proxy settings codex sends (the subset execd reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RemoteNetworkProxyConfig {
    #[serde(default)]
    pub enabled: bool,
    /// `full` or `limited`; execd serves `full` (every method).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Domain pattern → `allow`, `deny` or `none` (ask).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<BTreeMap<String, DomainPermission>>,
    /// SOCKS5 listeners; execd serves HTTP only and refuses this.
    #[serde(default)]
    pub enable_socks5: bool,
    /// Binding and talking on the sandbox's own loopback; always possible
    /// in execd's (private) namespace.
    #[serde(default)]
    pub allow_local_binding: bool,
}

/// One domain pattern's permission in codex's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DomainPermission {
    None,
    Allow,
    Deny,
}

/// `network/policyRequest` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRequestParams {
    pub process_id: String,
    pub request: PolicyRequest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PolicyRequest {
    pub protocol: CodexNetworkProtocol,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CodexNetworkProtocol {
    Http,
    HttpsConnect,
    Socks5Tcp,
    Socks5Udp,
}

/// `network/policyRequest` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PolicyRequestResult {
    pub decision: PolicyDecision,
}

/// codex's answer; `ask` (the controller could not decide) denies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PolicyDecision {
    Allow,
    Deny {
        #[serde(default)]
        reason: String,
    },
    Ask {
        #[serde(default)]
        reason: String,
    },
}

/// `network/policyDecision` params.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDecisionParams {
    pub process_id: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// `process`.
    pub scope: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// Who decided: `rule`, `default`, `decider` (the client), `remembered`,
    /// `timeout`, `private_address`.
    pub source: String,
    pub reason: String,
    pub protocol: CodexNetworkProtocol,
    pub host: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default)]
    pub policy_override: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn launch_config_and_answers_as_codex_sends_them() {
        let launch: NetworkProxyLaunch = serde_json::from_value(serde_json::json!({
            "proxy": {"enabled": true, "enableSocks5": false, "enableSocks5Udp": false,
                      "allowUpstreamProxy": false, "dangerouslyAllowAllUnixSockets": false,
                      "mode": "full", "domains": {"pypi.org": "allow", "evil.test": "deny"},
                      "unixSockets": null, "allowLocalBinding": false},
            "auditMetadata": {}, "environmentId": null, "executionId": null,
            "policyDecisionTimeoutMs": 1500
        }))
        .expect("launch");
        let domains = launch.proxy.domains.expect("domains");
        assert_eq!(domains["evil.test"], DomainPermission::Deny);
        assert_eq!(launch.policy_decision_timeout_ms, Some(1500));
        let answer: PolicyRequestResult =
            serde_json::from_str(r#"{"decision":{"type":"deny","reason":"no"}}"#).expect("deny");
        assert_eq!(
            answer.decision,
            PolicyDecision::Deny {
                reason: "no".into()
            }
        );
        let answer: PolicyRequestResult =
            serde_json::from_str(r#"{"decision":{"type":"allow"}}"#).expect("allow");
        assert_eq!(answer.decision, PolicyDecision::Allow);
    }
}
