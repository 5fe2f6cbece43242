//! One process tree under an exec policy: who decides its execs
//! ([`TreeGuard`]: the policy resolved for the tree, the owner's gate), and
//! the state that the kernel guard (`exec_guard`) and the escalation wrapper
//! (`escalation`) share for it: the approvals the wrapper granted and the
//! process groups of escalated commands.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use execd_protocol::policy::ExecPolicy;

use crate::decision::{decide, ExecGate, Outcome, PendingExec, ResolvedPolicy};

/// How long an approval granted through the wrapper stays usable: the
/// wrapper's caller execs right after the answer.
pub const APPROVAL_TTL: Duration = Duration::from_secs(10);
/// Unused approvals kept per tree; the oldest go first.
pub const MAX_APPROVALS: usize = 64;

/// Process groups of escalated commands still running for one tree: every
/// signal to the tree goes to them too, so they are cleaned up with it.
pub type Escalated = Arc<Mutex<HashSet<i32>>>;

/// One exec the wrapper decided `run` for.
#[derive(Debug)]
struct Approval {
    pid: u32,
    path: String,
    argv: Vec<String>,
    granted: Instant,
}

/// Execs decided through the wrapper, which the kernel guard then lets
/// through without asking again. Each authorises exactly one exec — by the
/// process that asked (its pid from the socket's peer credentials), of that
/// file, with that argv — once, within [`APPROVAL_TTL`]; at most
/// [`MAX_APPROVALS`] are kept.
/// The tree's first exec may also be decided before its process exists
/// ([`Approvals::grant_first`]): then only the first exec the kernel guard
/// sees can use it, whatever it is.
#[derive(Debug, Default)]
pub struct Approvals {
    granted: Mutex<VecDeque<Approval>>,
    /// The program's own exec, decided before the fork.
    first: Mutex<FirstExecSlot>,
}

/// What the tree's first exec may use.
#[derive(Debug, Default)]
enum FirstExecSlot {
    /// Nothing granted, and the guard has seen no exec yet.
    #[default]
    Open,
    /// Granted before the fork: (file, argv).
    Granted(String, Vec<String>),
    /// The guard has decided an exec: nothing may use a first grant now.
    Used,
}

impl Approvals {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Approval>> {
        self.granted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Record that the tree's first exec, if it is of `path` with `argv`,
    /// was decided `run` already.
    pub fn grant_first(&self, path: &str, argv: &[String]) {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*first, FirstExecSlot::Open) {
            *first = FirstExecSlot::Granted(path.to_string(), argv.to_vec());
        }
    }

    /// For the first exec the kernel guard decides: whether it is the one
    /// granted before the fork. Every later call answers false.
    pub fn take_first(&self, path: &str, argv: &[String]) -> bool {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        match std::mem::replace(&mut *first, FirstExecSlot::Used) {
            FirstExecSlot::Granted(p, a) => p == path && a == argv,
            FirstExecSlot::Open | FirstExecSlot::Used => false,
        }
    }

    /// Record that `pid` may exec `path` with `argv` once.
    pub fn grant(&self, pid: u32, path: &str, argv: &[String]) {
        let mut approvals = self.lock();
        approvals.retain(|a| a.granted.elapsed() < APPROVAL_TTL);
        while approvals.len() >= MAX_APPROVALS {
            approvals.pop_front();
        }
        approvals.push_back(Approval {
            pid,
            path: path.to_string(),
            argv: argv.to_vec(),
            granted: Instant::now(),
        });
    }

    /// Use up the approval for exactly this exec, if there is one.
    pub fn take(&self, pid: u32, path: &str, argv: &[String]) -> bool {
        let mut approvals = self.lock();
        approvals.retain(|a| a.granted.elapsed() < APPROVAL_TTL);
        let found = approvals
            .iter()
            .position(|a| a.pid == pid && a.path == path && a.argv == argv);
        found.and_then(|at| approvals.remove(at)).is_some()
    }

    /// Approvals still usable.
    pub fn len(&self) -> usize {
        let mut approvals = self.lock();
        approvals.retain(|a| a.granted.elapsed() < APPROVAL_TTL);
        approvals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Who decides for one process tree.
#[derive(Clone)]
pub struct TreeGuard {
    pub process_id: String,
    pub policy: Arc<ResolvedPolicy>,
    pub gate: Arc<dyn ExecGate>,
    pub runtime: tokio::runtime::Handle,
    /// Execs already decided through the wrapper (`escalation`).
    pub approved: Arc<Approvals>,
    /// Process groups of the tree's escalated commands.
    pub escalated: Escalated,
}

impl TreeGuard {
    /// A guard for tree `process_id`; the policy's programs are resolved
    /// through `search_path` (the tree's `PATH`); tasks run on `runtime`.
    pub fn new(
        process_id: &str,
        policy: &ExecPolicy,
        search_path: &str,
        gate: Arc<dyn ExecGate>,
        runtime: tokio::runtime::Handle,
    ) -> TreeGuard {
        TreeGuard {
            process_id: process_id.to_string(),
            policy: Arc::new(ResolvedPolicy::new(policy, search_path)),
            gate,
            runtime,
            approved: Arc::default(),
            escalated: Escalated::default(),
        }
    }

    /// Decide `exec` for this tree (rules, then the gate for `ask`) and
    /// report the decision to the owner before anything happens to the
    /// exec, so the transcript precedes its output.
    pub async fn decide_and_report(&self, exec: PendingExec, can_escalate: bool) -> Outcome {
        let (outcome, report) = decide(
            &self.policy,
            self.gate.as_ref(),
            &self.process_id,
            exec,
            can_escalate,
        )
        .await;
        self.gate.report(report).await;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_exec_grant_is_for_the_first_exec_only() {
        let approvals = Approvals::default();
        approvals.grant_first("/usr/bin/ls", &argv(&["ls"]));
        assert!(!approvals.take_first("/usr/bin/id", &argv(&["ls"])));
        // Used up by the first exec, even though it was another.
        assert!(!approvals.take_first("/usr/bin/ls", &argv(&["ls"])));
        let fresh = Approvals::default();
        fresh.grant_first("/usr/bin/ls", &argv(&["ls"]));
        assert!(fresh.take_first("/usr/bin/ls", &argv(&["ls"])));
        assert!(!fresh.take_first("/usr/bin/ls", &argv(&["ls"])));
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_approval_is_for_one_exact_exec_once() {
        let approvals = Approvals::default();
        approvals.grant(7, "/usr/bin/echo", &argv(&["echo", "safe"]));
        assert!(!approvals.take(7, "/usr/bin/echo", &argv(&["echo", "other"])));
        assert!(!approvals.take(8, "/usr/bin/echo", &argv(&["echo", "safe"])));
        assert!(!approvals.take(7, "/usr/bin/dash", &argv(&["echo", "safe"])));
        assert!(approvals.take(7, "/usr/bin/echo", &argv(&["echo", "safe"])));
        assert!(!approvals.take(7, "/usr/bin/echo", &argv(&["echo", "safe"])));
    }

    #[test]
    fn unused_approvals_are_bounded() {
        let approvals = Approvals::default();
        for pid in 0..(MAX_APPROVALS as u32 * 3) {
            approvals.grant(pid, "/bin/true", &argv(&["true"]));
        }
        assert_eq!(approvals.len(), MAX_APPROVALS);
        // The oldest went first.
        assert!(!approvals.take(0, "/bin/true", &argv(&["true"])));
        let newest = MAX_APPROVALS as u32 * 3 - 1;
        assert!(approvals.take(newest, "/bin/true", &argv(&["true"])));
    }
}
