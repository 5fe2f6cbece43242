//! Decide every exec of a process tree: a shell runs under an exec policy
//! whose `ask` rules come to this program's gate, which lets `ls` run and
//! refuses `rm`; every decision is printed. Works on `EXECD_URL`'s server
//! (`exec/approve` requests) and on this machine alike (needs Linux with
//! seccomp user notification).
//!
//! `cargo run -p execd-client --example approve_execs`

use std::sync::Arc;

use execd_client::{
    async_trait, Answer, ApproveParams, DecisionParams, EnvError, EnvironmentManager, ExecGate,
    ExecPolicy, Rule, Verdict,
};

/// Allows everything but `rm`.
struct NoRemoving;

#[async_trait]
impl ExecGate for NoRemoving {
    async fn ask(&self, request: ApproveParams) -> Option<Answer> {
        let answer = if request.argv.first().is_some_and(|program| program == "rm") {
            Answer::Deny
        } else {
            Answer::Run
        };
        println!("asked: {:?} in {} -> {answer:?}", request.argv, request.cwd);
        Some(answer)
    }

    async fn report(&self, decision: DecisionParams) {
        println!(
            "decided: {} -> {:?} by {:?}",
            decision.path, decision.decision, decision.decided_by
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), EnvError> {
    let env = EnvironmentManager::from_env()
        .with_exec_gate(Arc::new(NoRemoving))
        .environment()
        .await?;
    let policy = ExecPolicy {
        rules: vec![
            Rule {
                prefix: vec!["ls".into()],
                decision: Verdict::Ask,
            },
            Rule {
                prefix: vec!["rm".into()],
                decision: Verdict::Ask,
            },
        ],
        default: Verdict::Allow,
        ask_timeout_ms: Some(30_000),
    };
    let output = env
        .command("bash")
        .args([
            "-c",
            "ls / >/dev/null && echo listed; rm -f /tmp/nothing-here || echo rm refused",
        ])
        .exec_policy(policy)
        .output()
        .await?;
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    Ok(())
}
