//! codex's managed network in execd's terms: a `networkProxy` launch config
//! as a network policy (each domain pattern a rule; `none`, and hosts no
//! pattern names, asked), execd's asks and decisions as codex's
//! `network/policyRequest` and `network/policyDecision`, and codex's
//! answers as execd's (`ask`, "the controller cannot decide", denies).

use std::time::{SystemTime, UNIX_EPOCH};

use execd_protocol::codex::network::{
    CodexNetworkProtocol, DomainPermission, NetworkProxyLaunch, PolicyDecision,
    PolicyDecisionParams, PolicyRequest, PolicyRequestParams,
};
use execd_protocol::network::{
    NetworkAnswer, NetworkApproveParams, NetworkApproveResult, NetworkDecidedBy,
    NetworkDecisionParams, NetworkDialect, NetworkPolicy, NetworkProtocol, NetworkRule,
    NetworkVerdict,
};

/// Why a `networkProxy` cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("networkProxy.proxy.enabled is false: send enforceManagedNetwork false (or no networkProxy) for no proxy")]
    Disabled,
    #[error("networkProxy.proxy.mode {0:?}: execd's proxy serves \"full\" only (it does not restrict HTTP methods)")]
    Mode(String),
    #[error(
        "networkProxy.proxy.domains: pattern {0:?} is not a host, \"*.domain\" or \"**.domain\""
    )]
    Pattern(String),
}

/// The tree's network policy for codex's launch config.
pub fn policy(launch: &NetworkProxyLaunch) -> Result<NetworkPolicy, LaunchError> {
    let proxy = &launch.proxy;
    if !proxy.enabled {
        return Err(LaunchError::Disabled);
    }
    if let Some(mode) = proxy.mode.as_deref().filter(|m| *m != "full") {
        return Err(LaunchError::Mode(mode.to_string()));
    }
    let mut rules = Vec::new();
    for (pattern, permission) in proxy.domains.iter().flatten() {
        let decision = match permission {
            DomainPermission::Allow => NetworkVerdict::Allow,
            DomainPermission::Deny => NetworkVerdict::Deny,
            DomainPermission::None => NetworkVerdict::Ask,
        };
        // `**.d` is d and every name below it.
        let hosts = match pattern.strip_prefix("**.") {
            Some(domain) => vec![domain.to_string(), format!("*.{domain}")],
            None => vec![pattern.clone()],
        };
        for host in hosts {
            let base = host.strip_prefix("*.").unwrap_or(&host);
            let valid = host == "*"
                || execd_policy::network::rules::normalize_host(base)
                    .is_some_and(|_| !base.contains('*'));
            if !valid {
                return Err(LaunchError::Pattern(pattern.clone()));
            }
            rules.push(NetworkRule {
                host,
                port: None,
                decision,
            });
        }
    }
    Ok(NetworkPolicy {
        rules,
        default: NetworkVerdict::Ask,
        ask_timeout_ms: launch.policy_decision_timeout_ms,
        dialect: NetworkDialect::Codex,
    })
}

fn protocol(protocol: NetworkProtocol) -> CodexNetworkProtocol {
    match protocol {
        NetworkProtocol::Http => CodexNetworkProtocol::Http,
        NetworkProtocol::Connect => CodexNetworkProtocol::HttpsConnect,
    }
}

/// `network/policyRequest` for an ask.
pub fn request(ask: &NetworkApproveParams) -> PolicyRequestParams {
    PolicyRequestParams {
        process_id: ask.process_id.clone(),
        request: PolicyRequest {
            protocol: protocol(ask.protocol),
            host: ask.host.clone(),
            port: ask.port,
        },
    }
}

/// codex's answer as execd's; codex's answers hold for one connection.
pub fn answer(decision: &PolicyDecision) -> NetworkApproveResult {
    let decision = match decision {
        PolicyDecision::Allow => NetworkAnswer::Allow,
        PolicyDecision::Deny { .. } | PolicyDecision::Ask { .. } => NetworkAnswer::Deny,
    };
    NetworkApproveResult {
        decision,
        for_process: false,
    }
}

/// `network/policyDecision` for a decision.
pub fn decision(decided: &NetworkDecisionParams) -> PolicyDecisionParams {
    let source = match decided.decided_by {
        NetworkDecidedBy::Rule => "rule",
        NetworkDecidedBy::Default => "default",
        NetworkDecidedBy::Client => "decider",
        NetworkDecidedBy::Remembered => "remembered",
        NetworkDecidedBy::Timeout => "timeout",
        NetworkDecidedBy::PrivateAddress => "private_address",
    };
    PolicyDecisionParams {
        process_id: decided.process_id.clone(),
        timestamp: rfc3339_now(),
        scope: "process".into(),
        decision: match decided.decision {
            NetworkAnswer::Allow => "allow".into(),
            NetworkAnswer::Deny => "deny".into(),
        },
        source: source.into(),
        reason: decided.reason.clone().unwrap_or_default(),
        protocol: protocol(decided.protocol),
        host: decided.host.clone(),
        port: decided.port,
        method: None,
        policy_override: false,
    }
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ` (UTC; days to a civil date as in
/// Howard Hinnant's `civil_from_days`).
fn rfc3339_now() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(proxy: serde_json::Value) -> NetworkProxyLaunch {
        serde_json::from_value(serde_json::json!({"proxy": proxy})).expect("launch")
    }

    #[test]
    fn domains_become_rules_and_the_rest_is_asked() {
        let policy = policy(&launch(serde_json::json!({"enabled": true, "mode": "full",
            "domains": {"pypi.org": "allow", "**.evil.test": "deny", "maybe.test": "none"}})))
        .expect("policy");
        assert_eq!(policy.default, NetworkVerdict::Ask);
        assert_eq!(policy.dialect, NetworkDialect::Codex);
        let hosts: Vec<(&str, NetworkVerdict)> = policy
            .rules
            .iter()
            .map(|r| (r.host.as_str(), r.decision))
            .collect();
        assert!(hosts.contains(&("pypi.org", NetworkVerdict::Allow)));
        assert!(hosts.contains(&("evil.test", NetworkVerdict::Deny)));
        assert!(hosts.contains(&("*.evil.test", NetworkVerdict::Deny)));
        assert!(hosts.contains(&("maybe.test", NetworkVerdict::Ask)));
    }

    #[test]
    fn unservable_configs_are_refused_by_name() {
        let err = policy(&launch(serde_json::json!({"enabled": false}))).unwrap_err();
        assert!(err.to_string().contains("enabled"), "{err}");
        let err = policy(&launch(
            serde_json::json!({"enabled": true, "mode": "limited"}),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("limited"), "{err}");
        let err = policy(&launch(
            serde_json::json!({"enabled": true, "domains": {"a b": "allow"}}),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("a b"), "{err}");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let now = rfc3339_now();
        assert_eq!(now.len(), 20, "{now}");
        assert!(
            now.starts_with("20") && now.ends_with('Z') && now.as_bytes()[10] == b'T',
            "{now}"
        );
    }
}
