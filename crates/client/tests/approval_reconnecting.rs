//! Exec approvals across a lost connection. An approval decided while the
//! connection is lost: the harness's gate answers after a cut (the
//! fault-injecting proxy resets the connection while the gate decides),
//! and the answer reaches the server on the connection that resumes the
//! session, so the exec runs; the server's asking again after the resume
//! does not ask the gate a second time. An ask the lost connection
//! swallowed (written by the server, never delivered) is asked again
//! after the resume. (Otherwise either would wait out its `askTimeoutMs`
//! and deny.)

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use execd_client::{LinkState, RemoteEnvironment};
use execd_policy::decision::ExecGate;
use execd_protocol::policy::{Answer, ApproveParams, DecisionParams, Verdict};
use execd_test_support::policy::{params, rule, run, TestGate};
use execd_test_support::{collect_in_time, Direction, FaultProxy, Proxied, TempDir, TIMEOUT};
use tokio::sync::watch;

/// A gate whose every ask first loses the connection, then answers `Run`
/// while the client is reconnecting, or (`after_resume`) once it is
/// connected again — by when the server has asked again.
struct CuttingGate {
    proxy: Arc<FaultProxy>,
    after_resume: bool,
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
        self.proxy.unstall();
        if self.after_resume {
            let connected = state.wait_for(|s| matches!(s, LinkState::Connected));
            tokio::time::timeout(TIMEOUT, connected)
                .await
                .expect("connected again in time")
                .expect("state");
        }
        self.answered_while
            .lock()
            .unwrap()
            .push(state.borrow().clone());
        Some(Answer::Run)
    }

    async fn report(&self, decision: DecisionParams) {
        self.decisions.lock().unwrap().push(decision);
    }
}

/// Run a command whose `env` asks, through a [`CuttingGate`]: the exec
/// runs, the gate was asked once, and the state it answered in.
async fn ask_across_a_cut(after_resume: bool) -> Vec<LinkState> {
    let Proxied {
        server: _server,
        proxy,
        client,
    } = Proxied::start().await;
    let gate = Arc::new(CuttingGate {
        proxy: proxy.clone(),
        after_resume,
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
    // One cut: the server's asking again did not reach the gate again.
    assert_eq!(proxy.cuts(), 1);
    let decisions = gate.decisions.lock().unwrap().clone();
    let env_decision = decisions
        .iter()
        .find(|d| d.argv.first().map(String::as_str) == Some("env"))
        .expect("a decision for env");
    assert_eq!(env_decision.decision, Verdict::Allow);
    let answered_while = gate.answered_while.lock().unwrap().clone();
    answered_while
}

#[tokio::test]
async fn an_answer_decided_while_reconnecting_reaches_the_server() {
    let answered_while = ask_across_a_cut(false).await;
    assert!(
        matches!(answered_while[..], [LinkState::Reconnecting { .. }]),
        "{answered_while:?}"
    );
}

#[tokio::test]
async fn an_ask_still_being_decided_at_the_resume_is_not_asked_again() {
    let answered_while = ask_across_a_cut(true).await;
    assert!(
        matches!(answered_while[..], [LinkState::Connected]),
        "{answered_while:?}"
    );
}

#[tokio::test]
async fn an_ask_the_lost_connection_swallowed_is_asked_again_after_the_resume() {
    let Proxied {
        server: _server,
        proxy,
        client,
    } = Proxied::start().await;
    let gate = TestGate::new(|_| Some(Answer::Run));
    client.set_exec_gate(gate.clone());
    let env = RemoteEnvironment::new(client.clone()).into_environment();
    let dir = TempDir::new("lost-ask");
    let fifo = dir.path().join("go");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    // Builtins only until `env`: its exec is the first to ask.
    let script = format!(
        "read -r line < {}; env true && echo ran-env; echo end",
        fifo.display()
    );
    let mut start = params(
        "lost-ask",
        &["bash", "-c", &script],
        vec![rule(&["env"], Verdict::Ask)],
    );
    if let Some(policy) = start.exec_policy.as_mut() {
        policy.ask_timeout_ms = Some(25_000);
    }
    let mut started = env.exec.start(start).await.expect("start");

    // The next bytes from the server — the ask for `env` — are dropped,
    // and the connection cut there.
    proxy.cut_after(Direction::Down, 0);
    let release = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        // Opening blocks until the script opens its end.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .and_then(|mut go| go.write_all(b"go\n"))
    });
    tokio::time::timeout(TIMEOUT, release)
        .await
        .expect("the script reads its fifo in time")
        .expect("release task")
        .expect("write to the fifo");
    let done = collect_in_time(&mut started.events).await;
    assert_eq!(
        done.stdout_text(),
        "ran-env\nend\n",
        "stderr {}",
        done.stderr_text()
    );
    assert_eq!(proxy.cuts(), 1, "the ask went out on the cut connection");
    let asked: Vec<String> = gate
        .asked
        .lock()
        .unwrap()
        .iter()
        .map(|ask| ask.argv[0].clone())
        .collect();
    assert_eq!(asked, ["env"], "asked once, after the resume");
}
