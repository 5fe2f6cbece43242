//! Exec decisions: matching an exec against a policy's rules, and the
//! [`ExecGate`] through which the owner of a process (a connection, or a
//! local environment) is asked about `ask` verdicts and told every decision.

use std::time::Duration;

use async_trait::async_trait;
use execd_protocol::policy::{
    Answer, ApproveParams, DecidedBy, DecisionParams, ExecPolicy, Verdict,
};

/// How long an `ask` waits when the policy does not say.
pub const DEFAULT_ASK_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an escalation is refused when the exec did not come through the wrapper.
const CANNOT_ESCALATE: &str = "escalation needs the execd wrapper, which this exec bypassed (static binary or no libc execve); denied";

/// The owner's side of exec decisions.
#[async_trait]
pub trait ExecGate: Send + Sync + 'static {
    /// Ask about an exec; `None` means no answer (gone, or refused), which denies.
    async fn ask(&self, request: ApproveParams) -> Option<Answer>;
    /// Every decision, for the owner's transcript.
    async fn report(&self, decision: DecisionParams);
}

/// A gate with nobody behind it: asks are denied, reports dropped.
pub struct NoGate;

#[async_trait]
impl ExecGate for NoGate {
    async fn ask(&self, _request: ApproveParams) -> Option<Answer> {
        None
    }
    async fn report(&self, _decision: DecisionParams) {}
}

/// The verdict of the rules for one exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    pub verdict: Verdict,
    pub decided_by: DecidedBy,
    /// The prefix of the rule that matched.
    pub rule: Option<Vec<String>>,
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// How many leading words of `argv` a rule's prefix matches (0 = no match).
/// The first word matches the program by base name or full path.
fn matched_len(prefix: &[String], path: &str, argv: &[String]) -> usize {
    let Some((program, args)) = prefix.split_first() else {
        return 0;
    };
    let first = argv.first().map(String::as_str).unwrap_or_default();
    let program_matches = [path, base_name(path), first, base_name(first)]
        .iter()
        .any(|candidate| !candidate.is_empty() && *candidate == program.as_str());
    if !program_matches || args.len() > argv.len().saturating_sub(1) {
        return 0;
    }
    if args.iter().zip(&argv[1..]).all(|(want, have)| want == have) {
        prefix.len()
    } else {
        0
    }
}

/// The verdict for executing `path` with `argv`: the longest matching rule
/// (the first of equals), else the policy's default.
pub fn evaluate(policy: &ExecPolicy, path: &str, argv: &[String]) -> RuleMatch {
    let mut best: Option<(usize, &execd_protocol::policy::Rule)> = None;
    for rule in &policy.rules {
        let len = matched_len(&rule.prefix, path, argv);
        if len > 0 && best.is_none_or(|(best_len, _)| len > best_len) {
            best = Some((len, rule));
        }
    }
    match best {
        Some((_, rule)) => RuleMatch {
            verdict: rule.decision,
            decided_by: DecidedBy::Rule,
            rule: Some(rule.prefix.clone()),
        },
        None => RuleMatch {
            verdict: policy.default,
            decided_by: DecidedBy::Default,
            rule: None,
        },
    }
}

/// One exec to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingExec {
    pub pid: u32,
    /// The program, resolved to an absolute path.
    pub path: String,
    pub argv: Vec<String>,
    pub cwd: String,
}

/// What happens to a decided exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Run,
    Deny,
    /// Run outside the sandbox (only when the exec came through the wrapper).
    Escalate,
}

/// Decide one exec of process tree `process_id`: the rules, then for `ask`
/// the gate, within the policy's timeout. `can_escalate`: the exec came
/// through the wrapper, so an escalation can be carried out; otherwise it
/// is denied, with the reason. Returns the outcome and its report.
pub async fn decide(
    policy: &ExecPolicy,
    gate: &dyn ExecGate,
    process_id: &str,
    exec: PendingExec,
    can_escalate: bool,
) -> (Outcome, DecisionParams) {
    let matched = evaluate(policy, &exec.path, &exec.argv);
    let mut decided_by = matched.decided_by;
    let mut reason = None;
    let wanted = match matched.verdict {
        Verdict::Allow => Outcome::Run,
        Verdict::Deny => Outcome::Deny,
        Verdict::Escalate => Outcome::Escalate,
        Verdict::Ask => {
            let request = ApproveParams {
                process_id: process_id.to_string(),
                pid: exec.pid,
                path: exec.path.clone(),
                argv: exec.argv.clone(),
                cwd: exec.cwd.clone(),
                escalation: can_escalate,
            };
            let timeout = policy
                .ask_timeout_ms
                .map_or(DEFAULT_ASK_TIMEOUT, Duration::from_millis);
            match tokio::time::timeout(timeout, gate.ask(request)).await {
                Ok(Some(answer)) => {
                    decided_by = DecidedBy::Client;
                    match answer {
                        Answer::Run => Outcome::Run,
                        Answer::Deny => Outcome::Deny,
                        Answer::Escalate => Outcome::Escalate,
                    }
                }
                Ok(None) => {
                    decided_by = DecidedBy::Timeout;
                    reason = Some("no answer from the client".to_string());
                    Outcome::Deny
                }
                Err(_) => {
                    decided_by = DecidedBy::Timeout;
                    reason = Some(format!("no answer within {timeout:?}"));
                    Outcome::Deny
                }
            }
        }
    };
    let (outcome, decision) = match wanted {
        Outcome::Run => (Outcome::Run, Verdict::Allow),
        Outcome::Deny => (Outcome::Deny, Verdict::Deny),
        Outcome::Escalate if can_escalate => {
            reason = Some("run outside the sandbox".to_string());
            (Outcome::Escalate, Verdict::Escalate)
        }
        Outcome::Escalate => {
            reason = Some(CANNOT_ESCALATE.to_string());
            (Outcome::Deny, Verdict::Deny)
        }
    };
    let report = DecisionParams {
        process_id: process_id.to_string(),
        pid: exec.pid,
        path: exec.path,
        argv: exec.argv,
        decision,
        decided_by,
        rule: matched.rule,
        reason,
    };
    (outcome, report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use execd_protocol::policy::Rule;

    fn rule(prefix: &[&str], decision: Verdict) -> Rule {
        Rule {
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
            decision,
        }
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn most_specific_rule_wins_and_default_applies_otherwise() {
        let policy = ExecPolicy {
            rules: vec![
                rule(&["git"], Verdict::Allow),
                rule(&["git", "push"], Verdict::Ask),
                rule(&["/usr/bin/rm"], Verdict::Deny),
            ],
            default: Verdict::Deny,
            ask_timeout_ms: None,
        };
        let push = evaluate(&policy, "/usr/bin/git", &argv(&["git", "push", "origin"]));
        assert_eq!(push.verdict, Verdict::Ask);
        assert_eq!(push.rule, Some(argv(&["git", "push"])));
        let status = evaluate(&policy, "/usr/bin/git", &argv(&["git", "status"]));
        assert_eq!(
            (status.verdict, status.decided_by),
            (Verdict::Allow, DecidedBy::Rule)
        );
        // Full path matches too, whatever argv[0] says.
        let rm = evaluate(&policy, "/usr/bin/rm", &argv(&["anything", "-rf", "/"]));
        assert_eq!(rm.verdict, Verdict::Deny);
        let other = evaluate(&policy, "/bin/ls", &argv(&["ls"]));
        assert_eq!(
            (other.verdict, other.decided_by),
            (Verdict::Deny, DecidedBy::Default)
        );
        // A prefix longer than argv does not match.
        let bare = evaluate(&policy, "/usr/bin/git", &argv(&["git"]));
        assert_eq!(bare.rule, Some(argv(&["git"])));
    }
}
