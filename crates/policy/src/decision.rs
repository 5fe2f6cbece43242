//! Exec decisions: matching an exec against a policy's rules, and the
//! [`ExecGate`] through which the owner of a process (a connection, or a
//! local environment) is asked about `ask` verdicts and told every decision
//! (of execs, and of a network policy's connections).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use execd_protocol::network::{
    ConnectionSummary, NetworkApproveParams, NetworkApproveResult, NetworkDecisionParams,
    NetworkDialect,
};
use execd_protocol::policy::{
    Answer, ApproveParams, DecidedBy, DecisionParams, ExecPolicy, Rule, Verdict,
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
    /// Ask about a connection of a tree under a network policy, in the
    /// tree's `dialect`; `None` (the default: nobody to ask) denies.
    async fn ask_network(
        &self,
        _request: NetworkApproveParams,
        _dialect: NetworkDialect,
    ) -> Option<NetworkApproveResult> {
        None
    }
    /// Every network decision, in the tree's `dialect`.
    async fn report_network(&self, _decision: NetworkDecisionParams, _dialect: NetworkDialect) {}
    /// A proxied connection ended (for an audit trail).
    fn connection_ended(&self, _summary: &ConnectionSummary) {}
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

/// The name a program was invoked as: argv[0]'s base name, without the
/// leading `-` of a login shell.
fn invoked_as(argv: &[String]) -> &str {
    let first = argv.first().map(String::as_str).unwrap_or_default();
    base_name(first).trim_start_matches('-')
}

/// One rule with its program resolved to the files it names.
#[derive(Debug, Clone)]
struct ResolvedRule {
    rule: Rule,
    /// Canonical paths of the program: a path as written (symlinks
    /// resolved), or every match of a bare name in the tree's `PATH`.
    programs: Vec<PathBuf>,
    /// The program's base name as the rule writes it.
    name: String,
}

/// A policy whose rules name files, not words: a rule's first word is
/// resolved once, when the tree starts, to the program files it names, and
/// an exec matches it only if the file the kernel will run is one of them.
/// Neither argv[0] nor the path an exec was called with (a symlink, a copy
/// named `make` in a writable directory) can make a rule match. A rule that
/// grants (`allow`, `escalate`) also needs argv[0] to agree with the rule's
/// name, so a multi-call binary (busybox) cannot run one applet under
/// another's rule; that only narrows a grant, never a `deny` or `ask`.
#[derive(Debug, Clone)]
pub struct ResolvedPolicy {
    rules: Vec<ResolvedRule>,
    pub default: Verdict,
    pub ask_timeout: Duration,
}

impl ResolvedPolicy {
    /// Resolve `policy`'s programs: paths as written (relative to `/`),
    /// bare names through `search_path` (the tree's `PATH`, trusted since
    /// the client set it), every directory, as a shell would find them.
    pub fn new(policy: &ExecPolicy, search_path: &str) -> ResolvedPolicy {
        let rules = policy
            .rules
            .iter()
            .filter_map(|rule| {
                let program = rule.prefix.first()?;
                Some(ResolvedRule {
                    programs: resolve_program(program, search_path),
                    name: base_name(program).to_string(),
                    rule: rule.clone(),
                })
            })
            .collect();
        ResolvedPolicy {
            rules,
            default: policy.default,
            ask_timeout: policy
                .ask_timeout_ms
                .map_or(DEFAULT_ASK_TIMEOUT, Duration::from_millis),
        }
    }

    /// The verdict for executing the file at `path` (canonical) with `argv`:
    /// the longest matching rule (the first of equals), else the default.
    pub fn evaluate(&self, path: &str, argv: &[String]) -> RuleMatch {
        let mut best: Option<(usize, &Rule)> = None;
        for resolved in &self.rules {
            let len = resolved.matched_len(path, argv);
            if len > 0 && best.is_none_or(|(best_len, _)| len > best_len) {
                best = Some((len, &resolved.rule));
            }
        }
        match best {
            Some((_, rule)) => RuleMatch {
                verdict: rule.decision,
                decided_by: DecidedBy::Rule,
                rule: Some(rule.prefix.clone()),
            },
            None => RuleMatch {
                verdict: self.default,
                decided_by: DecidedBy::Default,
                rule: None,
            },
        }
    }
}

impl ResolvedRule {
    /// How many leading words of the exec this rule matches (0 = none).
    fn matched_len(&self, path: &str, argv: &[String]) -> usize {
        let args = &self.rule.prefix[1..];
        if !self
            .programs
            .iter()
            .any(|program| program.as_os_str() == path)
        {
            return 0;
        }
        let grants = matches!(self.rule.decision, Verdict::Allow | Verdict::Escalate);
        if grants && invoked_as(argv) != self.name {
            return 0;
        }
        if args.len() > argv.len().saturating_sub(1) {
            return 0;
        }
        if args.iter().zip(&argv[1..]).all(|(want, have)| want == have) {
            self.rule.prefix.len()
        } else {
            0
        }
    }
}

/// The files a rule's program word names, symlinks resolved.
fn resolve_program(program: &str, search_path: &str) -> Vec<PathBuf> {
    if program.contains('/') {
        let path = Path::new("/").join(program);
        return vec![std::fs::canonicalize(&path).unwrap_or(path)];
    }
    let mut found: Vec<PathBuf> = Vec::new();
    for dir in search_path.split(':').filter(|d| d.starts_with('/')) {
        let candidate = Path::new(dir).join(program);
        if let Ok(canonical) = std::fs::canonicalize(&candidate) {
            if canonical.is_file() && !found.contains(&canonical) {
                found.push(canonical);
            }
        }
    }
    found
}

/// The errno an exec gets when [`executable`] found nothing to run.
pub fn missing_errno(err: &std::io::Error) -> i32 {
    match err.raw_os_error() {
        Some(errno @ (libc::EACCES | libc::ENOTDIR | libc::ELOOP | libc::ENAMETOOLONG)) => errno,
        _ => libc::ENOENT,
    }
}

/// The file the kernel will run for an exec of `path` (absolute, or
/// relative to `base`): every symlink resolved; an error (as the kernel's
/// exec would fail) if nothing is there.
pub fn executable(path: &str, base: &Path) -> std::io::Result<PathBuf> {
    std::fs::canonicalize(base.join(path))
}

/// One exec to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingExec {
    pub pid: u32,
    /// The file the kernel will run: absolute, every symlink resolved.
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
    policy: &ResolvedPolicy,
    gate: &dyn ExecGate,
    process_id: &str,
    exec: PendingExec,
    can_escalate: bool,
) -> (Outcome, DecisionParams) {
    let matched = policy.evaluate(&exec.path, &exec.argv);
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
            let timeout = policy.ask_timeout;
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

    fn rule(prefix: &[&str], decision: Verdict) -> Rule {
        Rule {
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
            decision,
        }
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    fn resolved(rules: Vec<Rule>, default: Verdict) -> ResolvedPolicy {
        let policy = ExecPolicy {
            rules,
            default,
            ask_timeout_ms: None,
        };
        ResolvedPolicy::new(&policy, "/usr/local/bin:/usr/bin:/bin")
    }

    /// The canonical path of a program found in the test PATH.
    fn program(name: &str) -> String {
        ["/usr/local/bin", "/usr/bin", "/bin"]
            .iter()
            .find_map(|dir| executable(name, Path::new(dir)).ok())
            .unwrap_or_else(|| panic!("{name} not installed"))
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn most_specific_rule_wins_and_default_applies_otherwise() {
        let rm = program("rm");
        let policy = resolved(
            vec![
                rule(&["ls"], Verdict::Allow),
                rule(&["ls", "-l"], Verdict::Ask),
                rule(&[rm.as_str()], Verdict::Deny),
            ],
            Verdict::Deny,
        );
        let ls = program("ls");
        let long = policy.evaluate(&ls, &argv(&["ls", "-l", "/"]));
        assert_eq!(long.verdict, Verdict::Ask);
        assert_eq!(long.rule, Some(argv(&["ls", "-l"])));
        let short = policy.evaluate(&ls, &argv(&["ls", "/"]));
        assert_eq!(
            (short.verdict, short.decided_by),
            (Verdict::Allow, DecidedBy::Rule)
        );
        // A full path rule matches the file, whatever argv[0] says.
        let removed = policy.evaluate(&rm, &argv(&["anything", "-rf", "/"]));
        assert_eq!(removed.verdict, Verdict::Deny);
        let other = policy.evaluate(&program("cat"), &argv(&["cat"]));
        assert_eq!(
            (other.verdict, other.decided_by),
            (Verdict::Deny, DecidedBy::Default)
        );
        // A prefix longer than argv does not match; the shorter rule does.
        let bare = policy.evaluate(&ls, &argv(&["ls"]));
        assert_eq!(bare.rule, Some(argv(&["ls"])));
    }

    #[test]
    fn argv0_cannot_name_the_program() {
        let policy = resolved(
            vec![
                rule(&["ls"], Verdict::Allow),
                rule(&["cat"], Verdict::Escalate),
            ],
            Verdict::Deny,
        );
        // `exec -a ls /usr/bin/id`, `exec -a cat /bin/sh`.
        let id = policy.evaluate(&program("id"), &argv(&["ls"]));
        assert_eq!((id.verdict, id.rule), (Verdict::Deny, None));
        let sh = policy.evaluate(&program("sh"), &argv(&["cat", "-c", "touch /x"]));
        assert_eq!((sh.verdict, sh.rule), (Verdict::Deny, None));
    }

    #[test]
    fn a_link_or_copy_named_like_the_program_does_not_match() {
        let dir = std::env::temp_dir().join(format!("execd-decision-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("ls");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(program("id"), &link).unwrap();
        let policy = resolved(vec![rule(&["ls"], Verdict::Escalate)], Verdict::Deny);
        let target = executable("ls", &dir).unwrap();
        let spoofed = policy.evaluate(&target.to_string_lossy(), &argv(&["ls"]));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(spoofed.verdict, Verdict::Deny);
    }

    #[test]
    fn grants_need_argv0_to_agree_denials_do_not() {
        let ls = program("ls");
        let allow = resolved(vec![rule(&["ls"], Verdict::Allow)], Verdict::Deny);
        // A multi-call binary run under another applet's name: not granted.
        assert_eq!(allow.evaluate(&ls, &argv(&["sh"])).verdict, Verdict::Deny);
        // Login-shell style and full-path argv[0] still agree.
        assert_eq!(allow.evaluate(&ls, &argv(&["-ls"])).verdict, Verdict::Allow);
        assert_eq!(allow.evaluate(&ls, &argv(&[&ls])).verdict, Verdict::Allow);
        let deny = resolved(vec![rule(&["ls"], Verdict::Deny)], Verdict::Allow);
        assert_eq!(deny.evaluate(&ls, &argv(&["sh"])).verdict, Verdict::Deny);
    }
}
