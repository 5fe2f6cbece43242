//! A tree under a network policy, on both backends: its only way out of
//! its network namespace is execd's proxy. `curl` through the proxy
//! (plain HTTP and a `CONNECT` tunnel) reaches an allowed test server on
//! the host's loopback; a denied host gets a 403 naming the policy and the
//! server sees no connection; `ask` goes to the client and back, both ways,
//! "for the rest of the process" too, and times out to deny; a direct
//! connection fails; literal private addresses (and names that resolve only
//! to them) need a rule naming them. Skipped, loudly, where the kernel
//! cannot give a tree a network namespace of its own.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use execd_client::Environment;
use execd_policy::decision::ExecGate;
use execd_protocol::network::{
    NetworkAnswer, NetworkApproveParams, NetworkApproveResult, NetworkDecidedBy,
    NetworkDecisionParams, NetworkDialect, NetworkPolicy, NetworkRule, NetworkVerdict,
};
use execd_protocol::policy::{Answer, ApproveParams, DecisionParams};
use execd_protocol::process::StartParams;
use execd_protocol::sandbox::SandboxSpec;
use execd_test_support::policy::run;
use execd_test_support::{both_backends, closing_reply, process_params, Backend, HttpHost};

/// How the gate answers `network/approve` (`None`: never).
type NetAnswer = dyn Fn(&NetworkApproveParams) -> Option<NetworkApproveResult> + Send + Sync;

/// A harness's gate for network asks: answers with a settable function,
/// records asks and decisions.
struct NetGate {
    answer: Mutex<Box<NetAnswer>>,
    asked: Mutex<Vec<NetworkApproveParams>>,
    decisions: Mutex<Vec<NetworkDecisionParams>>,
}

impl NetGate {
    fn answer_with(
        &self,
        answer: impl Fn(&NetworkApproveParams) -> Option<NetworkApproveResult> + Send + Sync + 'static,
    ) {
        *self.answer.lock().unwrap() = Box::new(answer);
    }

    fn asked(&self) -> Vec<NetworkApproveParams> {
        self.asked.lock().unwrap().clone()
    }

    fn decisions(&self) -> Vec<NetworkDecisionParams> {
        self.decisions.lock().unwrap().clone()
    }
}

#[async_trait]
impl ExecGate for NetGate {
    async fn ask(&self, _request: ApproveParams) -> Option<Answer> {
        None
    }
    async fn report(&self, _decision: DecisionParams) {}
    async fn ask_network(
        &self,
        request: NetworkApproveParams,
        _dialect: NetworkDialect,
    ) -> Option<NetworkApproveResult> {
        self.asked.lock().unwrap().push(request.clone());
        let answer = (self.answer.lock().unwrap())(&request);
        match answer {
            Some(answer) => Some(answer),
            None => std::future::pending().await,
        }
    }
    async fn report_network(&self, decision: NetworkDecisionParams, _dialect: NetworkDialect) {
        self.decisions.lock().unwrap().push(decision);
    }
}

/// What the host's loopback HTTP server answers every request with.
const GREETING: &str = "hello from the host";

fn allow(host: &str, port: Option<u16>) -> NetworkRule {
    NetworkRule {
        host: host.into(),
        port,
        decision: NetworkVerdict::Allow,
    }
}

/// `bash -c script` in a sandbox whose network is the proxy under `policy`.
fn policied(id: &str, script: &str, policy: NetworkPolicy) -> StartParams {
    let mut params = process_params(id, &["bash", "-c", script]);
    params.sandbox = Some(SandboxSpec {
        writable_roots: Vec::new(),
        network: false,
        read_only: false,
    });
    params.network_policy = Some(policy);
    params
}

/// Start the backend with a fresh gate, unless the kernel cannot give a
/// tree a network namespace (then say so, loudly, and pass).
async fn with_net_gate<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Environment, Arc<NetGate>, HttpHost) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    if !execd_policy::sandbox::features().network_namespace {
        eprintln!(
            "\n\n!!! SKIPPED: this kernel (or our privileges) cannot create a network namespace, \
             which a network policy needs\n"
        );
        return;
    }
    let gate = Arc::new(NetGate {
        answer: Mutex::new(Box::new(|_| None)),
        asked: Mutex::new(Vec::new()),
        decisions: Mutex::new(Vec::new()),
    });
    let (env, guard) = backend.start_with_gate(gate.clone()).await;
    test(env, gate, HttpHost::start(closing_reply(GREETING)).await).await;
    guard.finish().await;
}

/// curl with bounded times, failing on HTTP errors, showing them.
fn curl(args: &str) -> String {
    format!("curl -sS --max-time 20 {args}")
}

async fn allowed_hosts_are_reached_through_the_proxy(
    env: Environment,
    gate: Arc<NetGate>,
    host: HttpHost,
) {
    let port = host.port;
    let script = format!(
        "echo \"proxy=$HTTP_PROXY\"; {}; echo; {}; echo; {}",
        curl(&format!("http://127.0.0.1:{port}/plain")),
        curl(&format!("-p http://127.0.0.1:{port}/tunnel")),
        curl(&format!("http://localhost:{port}/by-name")),
    );
    let policy = NetworkPolicy::new(vec![
        allow("127.0.0.1", Some(port)),
        allow("localhost", None),
    ]);
    let ran = run(&env, policied("allowed", &script, policy)).await;
    assert_eq!(
        ran.exit_code, 0,
        "stdout {} stderr {}",
        ran.stdout, ran.stderr
    );
    assert!(
        ran.stdout.contains("proxy=http://127.0.0.1:3128"),
        "{}",
        ran.stdout
    );
    assert_eq!(ran.stdout.matches(GREETING).count(), 3, "{}", ran.stdout);
    assert_eq!(host.connections(), 3);
    let decisions = gate.decisions();
    assert_eq!(decisions.len(), 3, "{decisions:?}");
    assert!(decisions
        .iter()
        .all(|d| d.decision == NetworkAnswer::Allow && d.decided_by == NetworkDecidedBy::Rule));
}

async fn denied_hosts_get_a_clear_error_and_no_connection(
    env: Environment,
    gate: Arc<NetGate>,
    host: HttpHost,
) {
    let port = host.port;
    // Allowed on another port only; the default denies.
    let policy = NetworkPolicy::new(vec![allow("localhost", Some(port.wrapping_add(1)))]);
    let script = format!(
        "{}; echo \"tunnel=$?\"; {}",
        curl(&format!("-p http://localhost:{port}/")),
        curl(&format!("-i http://localhost:{port}/")),
    );
    let ran = run(&env, policied("denied", &script, policy)).await;
    assert!(
        ran.stdout.contains("tunnel=56"),
        "CONNECT refused: {}",
        ran.stdout
    );
    assert!(ran.stderr.contains("403"), "{}", ran.stderr);
    assert!(
        ran.stdout.contains("HTTP/1.1 403 Forbidden"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains(&format!("connection to localhost:{port} denied by the network policy (the policy's default is deny)")),
        "{}",
        ran.stdout
    );
    assert_eq!(host.connections(), 0, "the proxy never connected");
    let decisions = gate.decisions();
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    assert!(decisions
        .iter()
        .all(|d| d.decision == NetworkAnswer::Deny && d.decided_by == NetworkDecidedBy::Default));
}

async fn direct_connections_fail(env: Environment, gate: Arc<NetGate>, host: HttpHost) {
    let port = host.port;
    let policy = NetworkPolicy::new(vec![allow("*", None), allow("127.0.0.1", None)]);
    let script = curl(&format!(
        "--noproxy '*' --connect-timeout 5 http://127.0.0.1:{port}/"
    ));
    let ran = run(&env, policied("direct", &script, policy)).await;
    assert_eq!(
        ran.exit_code, 7,
        "connection refused: {} {}",
        ran.stdout, ran.stderr
    );
    assert_eq!(host.connections(), 0);
    assert!(gate.decisions().is_empty(), "the proxy was not involved");
}

async fn literal_private_addresses_need_a_rule_naming_them(
    env: Environment,
    gate: Arc<NetGate>,
    host: HttpHost,
) {
    let port = host.port;
    // Everything allowed by wildcard and default: private places still not.
    let mut policy = NetworkPolicy::new(vec![allow("*", None)]);
    policy.default = NetworkVerdict::Allow;
    let script = format!(
        "{}; {}; {}; {}",
        curl(&format!("-i http://127.0.0.1:{port}/")),
        curl("-i http://169.254.169.254/latest/meta-data/"),
        curl(&format!("-i http://[::1]:{port}/")),
        curl(&format!("-i http://localhost:{port}/")),
    );
    let ran = run(&env, policied("private", &script, policy)).await;
    assert_eq!(
        ran.stdout.matches("HTTP/1.1 403 Forbidden").count(),
        4,
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains(
            "127.0.0.1 is a private, loopback or link-local address and no rule names it"
        ),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("localhost resolves only to private, loopback or link-local addresses"),
        "{}",
        ran.stdout
    );
    assert_eq!(host.connections(), 0);
    let decisions = gate.decisions();
    assert_eq!(decisions.len(), 4, "{decisions:?}");
    assert!(decisions
        .iter()
        .all(|d| d.decision == NetworkAnswer::Deny
            && d.decided_by == NetworkDecidedBy::PrivateAddress));
}

async fn ask_round_trips_both_ways(env: Environment, gate: Arc<NetGate>, host: HttpHost) {
    let port = host.port;
    // 127.0.0.1 allowed, localhost denied; the second asks each remembered.
    gate.answer_with(|ask| {
        Some(NetworkApproveResult {
            decision: if ask.host == "127.0.0.1" {
                NetworkAnswer::Allow
            } else {
                NetworkAnswer::Deny
            },
            for_process: ask.host == "localhost",
        })
    });
    // A literal loopback address is asked about only when a rule names it.
    let ask = |host: &str| NetworkRule {
        host: host.into(),
        port: None,
        decision: NetworkVerdict::Ask,
    };
    let policy = NetworkPolicy::new(vec![ask("127.0.0.1"), ask("localhost")]);
    let script = format!(
        "{a}; echo; {a}; echo; {b}; {b}",
        a = curl(&format!("http://127.0.0.1:{port}/")),
        b = curl(&format!("-i http://localhost:{port}/")),
    );
    let ran = run(&env, policied("ask", &script, policy)).await;
    assert_eq!(ran.stdout.matches(GREETING).count(), 2, "{}", ran.stdout);
    assert_eq!(
        ran.stdout.matches("HTTP/1.1 403 Forbidden").count(),
        2,
        "{}",
        ran.stdout
    );
    assert_eq!(host.connections(), 2);
    let asked = gate.asked();
    // 127.0.0.1 twice (answered for one connection each), localhost once.
    let hosts: Vec<&str> = asked.iter().map(|a| a.host.as_str()).collect();
    assert_eq!(hosts, ["127.0.0.1", "127.0.0.1", "localhost"]);
    let first = &asked[0];
    assert_eq!((first.process_id.as_str(), first.port), ("ask", port));
    // What the tree was running: the curl that connected.
    assert!(first.pid.is_some(), "{first:?}");
    assert_eq!(
        first.argv.first().map(String::as_str),
        Some("curl"),
        "{first:?}"
    );
    let by: Vec<NetworkDecidedBy> = gate.decisions().iter().map(|d| d.decided_by).collect();
    use NetworkDecidedBy::*;
    assert_eq!(by, [Client, Client, Client, Remembered]);
}

async fn ask_times_out_to_deny(env: Environment, gate: Arc<NetGate>, host: HttpHost) {
    let port = host.port;
    let mut policy = NetworkPolicy::new(vec![NetworkRule {
        host: "localhost".into(),
        port: None,
        decision: NetworkVerdict::Ask,
    }]);
    policy.ask_timeout_ms = Some(300);
    let ran = run(
        &env,
        policied(
            "timeout",
            &curl(&format!("-i http://localhost:{port}/")),
            policy,
        ),
    )
    .await;
    assert!(
        ran.stdout.contains("HTTP/1.1 403 Forbidden"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("did not answer within 300 ms"),
        "{}",
        ran.stdout
    );
    assert_eq!(host.connections(), 0);
    assert_eq!(gate.asked().len(), 1);
    let decisions = gate.decisions();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].decided_by, NetworkDecidedBy::Timeout);
}

async fn a_policy_without_its_own_network_is_refused(
    env: Environment,
    _gate: Arc<NetGate>,
    _host: HttpHost,
) {
    let mut params = policied("shared", "true", NetworkPolicy::new(vec![]));
    params.sandbox.as_mut().expect("sandbox").network = true;
    let Err(err) = env.exec.start(params).await else {
        panic!("started");
    };
    assert!(
        err.to_string()
            .contains("networkPolicy needs sandbox.network false"),
        "{err}"
    );
    let mut params = policied("bare", "true", NetworkPolicy::new(vec![]));
    params.sandbox = None;
    let Err(err) = env.exec.start(params).await else {
        panic!("started");
    };
    assert!(
        err.to_string().contains("networkPolicy needs a sandbox"),
        "{err}"
    );
}

both_backends!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] with_net_gate:
    allowed_hosts_are_reached_through_the_proxy,
    denied_hosts_get_a_clear_error_and_no_connection,
    direct_connections_fail,
    literal_private_addresses_need_a_rule_naming_them,
    ask_round_trips_both_ways,
    ask_times_out_to_deny,
    a_policy_without_its_own_network_is_refused,
);
