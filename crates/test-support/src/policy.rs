//! Exec-policy tests' shared parts: [`TestGate`], a harness's gate that
//! answers asks with a function (or never) and records every ask and
//! decision; rules and policies in a line; running a policied command to its
//! end on a backend ([`with_gate_answering`], [`run_under`]).

use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use execd_client::Environment;
use execd_policy::decision::ExecGate;
use execd_protocol::policy::{Answer, ApproveParams, DecisionParams, ExecPolicy, Rule, Verdict};
use execd_protocol::process::StartParams;

use crate::backends::{collect_in_time, process_params, Backend};

/// How a test gate answers an ask (`None`: never).
pub type AnswerFn = dyn Fn(&ApproveParams) -> Option<Answer> + Send + Sync;

/// A harness's gate: answers asks with a function (or never), records all.
pub struct TestGate {
    answer: Box<AnswerFn>,
    /// Every ask, in order.
    pub asked: Mutex<Vec<ApproveParams>>,
    decisions: Mutex<Vec<DecisionParams>>,
}

impl TestGate {
    pub fn new(
        answer: impl Fn(&ApproveParams) -> Option<Answer> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(TestGate {
            answer: Box::new(answer),
            asked: Mutex::new(Vec::new()),
            decisions: Mutex::new(Vec::new()),
        })
    }

    pub fn decisions(&self) -> Vec<DecisionParams> {
        self.decisions.lock().unwrap().clone()
    }

    /// The decision reported for the exec whose argv starts with `argv0`.
    pub fn decision_for(&self, argv0: &str) -> DecisionParams {
        self.decisions()
            .into_iter()
            .find(|d| d.argv.first().map(String::as_str) == Some(argv0))
            .unwrap_or_else(|| panic!("no decision for {argv0}: {:?}", self.decisions()))
    }
}

#[async_trait]
impl ExecGate for TestGate {
    async fn ask(&self, request: ApproveParams) -> Option<Answer> {
        self.asked.lock().unwrap().push(request.clone());
        match (self.answer)(&request) {
            Some(answer) => Some(answer),
            // Never answers: the policy's timeout must decide.
            None => std::future::pending().await,
        }
    }

    async fn report(&self, decision: DecisionParams) {
        self.decisions.lock().unwrap().push(decision);
    }
}

/// Run `test` on `backend` with a fresh gate answering asks with `answer`.
pub async fn with_gate_answering<F, Fut>(
    backend: Backend,
    answer: impl Fn(&ApproveParams) -> Option<Answer> + Send + Sync + 'static,
    test: F,
) where
    F: FnOnce(Environment, Arc<TestGate>) -> Fut,
    Fut: Future<Output = ()>,
{
    let gate = TestGate::new(answer);
    let (env, guard) = backend.start_with_gate(gate.clone()).await;
    test(env, gate).await;
    guard.finish().await;
}

pub fn rule(prefix: &[&str], decision: Verdict) -> Rule {
    Rule {
        prefix: prefix.iter().map(|s| s.to_string()).collect(),
        decision,
    }
}

pub fn policy(rules: Vec<Rule>) -> ExecPolicy {
    ExecPolicy {
        rules,
        default: Verdict::Allow,
        ask_timeout_ms: None,
    }
}

/// A pipe process under a policy of `rules`, allowing what they do not match.
pub fn params(id: &str, argv: &[&str], rules: Vec<Rule>) -> StartParams {
    StartParams {
        exec_policy: Some(policy(rules)),
        ..process_params(id, argv)
    }
}

/// What a policied command left behind.
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i32,
}

pub async fn run(env: &Environment, params: StartParams) -> Ran {
    let mut started = env.exec.start(params).await.expect("start");
    let done = collect_in_time(&mut started.events).await;
    Ran {
        stdout: done.stdout_text(),
        stderr: done.stderr_text(),
        exit_code: done.code().expect("exited"),
    }
}

/// Run `argv` under a policy of `rules` to its end.
pub async fn run_under(env: &Environment, id: &str, argv: &[&str], rules: Vec<Rule>) -> Ran {
    run(env, params(id, argv, rules)).await
}
