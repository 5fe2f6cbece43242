//! Matching a connection's host and port against a network policy's rules
//! (the most specific rule wins), normalising the host a program named, and
//! telling which addresses are private (loopback, private ranges,
//! link-local and the like), which only a rule naming them may reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use execd_protocol::network::{NetworkPolicy, NetworkRule, NetworkVerdict};

/// Longest host name accepted (DNS's limit).
pub const MAX_HOST_BYTES: usize = 253;

/// The verdict of the rules for one host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    pub verdict: NetworkVerdict,
    /// The rule that matched; `None`: the policy's default.
    pub rule: Option<NetworkRule>,
    /// The rule names this host exactly (not by wildcard): it may reach a
    /// private address.
    pub names_host: bool,
}

/// The host as rules see it: lowercase, without IPv6 brackets or a
/// trailing dot; `None` when it is not a plausible host name or IP literal.
pub fn normalize_host(host: &str) -> Option<String> {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() || host.len() > MAX_HOST_BYTES {
        return None;
    }
    if host.parse::<IpAddr>().is_ok() {
        return Some(host);
    }
    let plausible = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    (plausible && !host.starts_with('.') && !host.contains("..")).then_some(host)
}

/// How specifically `pattern` matches `host` (higher is more specific), or
/// `None` when it does not match. An exact name beats every wildcard that
/// matches it, since a wildcard's suffix is shorter than the name.
fn specificity(pattern: &str, host: &str) -> Option<usize> {
    let pattern = normalize_pattern(pattern);
    if pattern == "*" {
        return Some(0);
    }
    if let Some(suffix) = pattern.strip_prefix("*.") {
        let below = host.len() > suffix.len() + 1
            && host.ends_with(suffix)
            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.';
        return below.then_some(2 * suffix.len() + 1);
    }
    (pattern == host).then_some(2 * host.len() + 2)
}

fn normalize_pattern(pattern: &str) -> String {
    if pattern == "*" || pattern.starts_with("*.") {
        return pattern.to_ascii_lowercase();
    }
    normalize_host(pattern).unwrap_or_else(|| pattern.to_ascii_lowercase())
}

/// The rule deciding `host:port` (host already normalised): the most
/// specific host pattern, then a rule with a port over one without; the
/// first of equals. Otherwise the policy's default.
pub fn match_rules(policy: &NetworkPolicy, host: &str, port: u16) -> RuleMatch {
    let mut best: Option<((usize, bool), &NetworkRule)> = None;
    for rule in &policy.rules {
        if rule.port.is_some_and(|p| p != port) {
            continue;
        }
        let Some(score) = specificity(&rule.host, host) else {
            continue;
        };
        let key = (score, rule.port.is_some());
        if best.as_ref().is_none_or(|(best_key, _)| key > *best_key) {
            best = Some((key, rule));
        }
    }
    match best {
        Some(((score, _), rule)) => RuleMatch {
            verdict: rule.decision,
            rule: Some(rule.clone()),
            names_host: score == 2 * host.len() + 2,
        },
        None => RuleMatch {
            verdict: policy.default,
            rule: None,
            names_host: false,
        },
    }
}

/// Whether `ip` is anything but a public unicast address: loopback,
/// private, shared (CGNAT), link-local, unspecified, multicast, broadcast,
/// reserved, benchmarking, documentation, or an IPv6 form embedding such an
/// IPv4 address (mapped, compatible, NAT64).
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => private_v6(v6),
    }
}

fn private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
}

fn private_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return private_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) and the deprecated IPv4-compatible form.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (segments[..6] == [0; 6] && segments[6] != 0)
    {
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return private_v4(Ipv4Addr::new(a, b, c, d));
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] & 0xffc0) == 0xfec0
        || (segments[0] == 0x2001 && segments[1] == 0xdb8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(host: &str, port: Option<u16>, decision: NetworkVerdict) -> NetworkRule {
        NetworkRule {
            host: host.into(),
            port,
            decision,
        }
    }

    fn policy(rules: Vec<NetworkRule>) -> NetworkPolicy {
        NetworkPolicy::new(rules)
    }

    #[test]
    fn the_most_specific_rule_wins() {
        use NetworkVerdict::*;
        let p = policy(vec![
            rule("*", None, Ask),
            rule("*.example.com", None, Allow),
            rule("bad.example.com", None, Deny),
            rule("*.example.com", Some(22), Deny),
        ]);
        assert_eq!(match_rules(&p, "a.example.com", 443).verdict, Allow);
        assert_eq!(match_rules(&p, "a.example.com", 22).verdict, Deny);
        assert_eq!(match_rules(&p, "bad.example.com", 443).verdict, Deny);
        assert!(match_rules(&p, "bad.example.com", 443).names_host);
        assert!(!match_rules(&p, "a.example.com", 443).names_host);
        // The wildcard covers names below it only.
        assert_eq!(match_rules(&p, "example.com", 443).verdict, Ask);
        assert_eq!(match_rules(&p, "notexample.com", 443).verdict, Ask);
        let empty = policy(vec![]);
        let matched = match_rules(&empty, "x.org", 80);
        assert_eq!((matched.verdict, matched.rule), (Deny, None));
    }

    #[test]
    fn the_first_of_equals_wins() {
        use NetworkVerdict::*;
        let p = policy(vec![
            rule("X.org", Some(80), Allow),
            rule("x.org", Some(80), Deny),
        ]);
        assert_eq!(match_rules(&p, "x.org", 80).verdict, Allow);
    }

    #[test]
    fn hosts_are_normalised_and_garbage_refused() {
        assert_eq!(
            normalize_host("Example.COM.").as_deref(),
            Some("example.com")
        );
        assert_eq!(normalize_host("[::1]").as_deref(), Some("::1"));
        assert_eq!(normalize_host("a b"), None);
        assert_eq!(normalize_host(""), None);
        assert_eq!(normalize_host("a..b"), None);
        assert_eq!(normalize_host(&"a".repeat(300)), None);
    }

    #[test]
    fn private_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in [
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }
}
