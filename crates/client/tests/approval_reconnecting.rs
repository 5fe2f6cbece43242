//! An exec approval decided while the connection is lost: the harness's
//! gate answers after a cut (the fault-injecting proxy resets the
//! connection while the gate decides), and the answer reaches the server
//! on the connection that resumes the session, so the exec runs. (Sent on
//! the lost connection, it would be dropped, and the ask would wait out
//! its `askTimeoutMs` and deny.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use execd_client::{ExecServerClient, LinkState, RemoteEnvironment};
use execd_policy::decision::ExecGate;
use execd_protocol::policy::{Answer, ApproveParams, DecisionParams, Verdict};
use execd_server::ServerConfig;
use execd_test_support::policy::{params, rule, run};
use execd_test_support::{quick_reconnect, start_server_with, FaultProxy, TIMEOUT};
use tokio::sync::watch;

/// A gate whose every ask first loses the connection, then answers `Run`
/// while the client is reconnecting.
struct CuttingGate {
    proxy: Arc<FaultProxy>,
    state: Mutex<Option<watch::Receiver<LinkState>>>,
    answered_while: Mutex<Vec<LinkState>>,
    decisions: Mutex<Vec<DecisionParams>>,
}

#[async_trait]
impl ExecGate for CuttingGate {
    async fn ask(&self, _request: ApproveParams) -> Option<Answer> {
        let mut state = self
            .state
            .lock()
            .unwrap()
            .clone()
            .expect("the client's state");
        self.proxy.stall(None);
        self.proxy.cut();
        let reconnecting = state.wait_for(|s| matches!(s, LinkState::Reconnecting { .. }));
        tokio::time::timeout(TIMEOUT, reconnecting)
            .await
            .expect("reconnecting in time")
            .expect("state");
        self.answered_while
            .lock()
            .unwrap()
            .push(state.borrow().clone());
        self.proxy.unstall();
        Some(Answer::Run)
    }

    async fn report(&self, decision: DecisionParams) {
        self.decisions.lock().unwrap().push(decision);
    }
}

#[tokio::test]
async fn an_answer_decided_while_reconnecting_reaches_the_server() {
    let server = start_server_with(ServerConfig::default()).await;
    let proxy = Arc::new(FaultProxy::in_front_of(&server.url()).await);
    let options = quick_reconnect(Duration::from_secs(60));
    let client = ExecServerClient::connect_with(&proxy.url(), options)
        .await
        .expect("connect through the proxy");
    let gate = Arc::new(CuttingGate {
        proxy: proxy.clone(),
        state: Mutex::new(Some(client.link_state())),
        answered_while: Mutex::new(Vec::new()),
        decisions: Mutex::new(Vec::new()),
    });
    client.set_exec_gate(gate.clone());
    let env = RemoteEnvironment::new(client.clone()).into_environment();
    let mut start = params(
        "asked",
        &["bash", "-c", "env true && echo ran-env; echo end"],
        vec![rule(&["env"], Verdict::Ask)],
    );
    if let Some(policy) = start.exec_policy.as_mut() {
        policy.ask_timeout_ms = Some(25_000);
    }
    let ran = run(&env, start).await;
    assert_eq!(ran.stdout, "ran-env\nend\n", "stderr {}", ran.stderr);
    let answered_while = gate.answered_while.lock().unwrap().clone();
    assert!(
        matches!(answered_while[..], [LinkState::Reconnecting { .. }]),
        "{answered_while:?}"
    );
    assert_eq!(proxy.cuts(), 1);
    let decisions = gate.decisions.lock().unwrap().clone();
    let env_decision = decisions
        .iter()
        .find(|d| d.argv.first().map(String::as_str) == Some("env"))
        .expect("a decision for env");
    assert_eq!(env_decision.decision, Verdict::Allow);
}
