//! A hostile program inside a policied tree, on both backends: it cannot
//! name itself into a rule with argv[0] or a symlink, cannot reuse or
//! widen an approval, cannot break escalation for the rest of the tree with
//! garbage on its socket, and cannot wedge an escalated command by closing
//! its stdio; execs with thousands of arguments are decided like any other.
//! Also: a client that goes away during an ask denies the exec at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use execd_client::Environment;
use execd_protocol::policy::{Answer, ApproveParams, DecidedBy, ExecPolicy, Rule, Verdict};
use execd_protocol::process::StartParams;
use execd_protocol::sandbox::SandboxSpec;
use execd_test_support::policy::{params, rule, run, run_under, with_gate_answering, TestGate};
use execd_test_support::{
    both_backends, connected, eventually, start_params, wait_dead, Backend, TempDir,
};
use serde_json::json;

/// Gates that never get asked in these tests answer nothing.
fn never(_: &ApproveParams) -> Option<Answer> {
    None
}

async fn with_plain_gate<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Environment, Arc<TestGate>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    with_gate_answering(backend, never, test).await;
}

/// Only what the rules allow; everything else denied.
fn deny_by_default(id: &str, script: &str, rules: Vec<Rule>) -> StartParams {
    let mut p = params(id, &["bash", "-c", script], rules);
    p.exec_policy = Some(ExecPolicy {
        default: Verdict::Deny,
        ..p.exec_policy.take().expect("policy")
    });
    p
}

fn canonical(path: &str) -> String {
    std::fs::canonicalize(path)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// `exec -a ls /usr/bin/id` under `{allow: [ls], default: deny}`: argv[0]
/// names nothing; the file the kernel runs (id) is denied.
async fn argv0_does_not_name_the_program(env: Environment, gate: Arc<TestGate>) {
    let rules = vec![
        rule(&["bash"], Verdict::Allow),
        rule(&["ls"], Verdict::Allow),
    ];
    let ran = run(
        &env,
        deny_by_default("spoof", "exec -a ls /usr/bin/id -un", rules),
    )
    .await;
    assert_eq!(ran.stdout, "", "id must not run; stderr {}", ran.stderr);
    assert!(ran.stderr.contains("ermission denied"), "{}", ran.stderr);
    let id = gate.decision_for("ls");
    assert_eq!(id.path, canonical("/usr/bin/id"), "{id:?}");
    assert_eq!(
        (id.decision, id.decided_by, id.rule),
        (Verdict::Deny, DecidedBy::Default, None)
    );
}

/// Under `{escalate: [touch]}` with a read-only sandbox, neither `exec -a
/// touch /bin/sh` nor a symlink named `touch` runs a shell outside the
/// sandbox; the real touch does escalate (so the target is reachable).
async fn spoofed_escalations_stay_in_the_sandbox(env: Environment, gate: Arc<TestGate>) {
    let outside = TempDir::new("hostile-outside");
    let work = TempDir::new("hostile-work");
    let script = format!(
        "exec -a touch /bin/sh -c 'echo pwned > {out}/by-argv0' & wait; \
         ln -s /bin/sh {work}/touch && {work}/touch -c 'echo pwned > {out}/by-link'; \
         touch {out}/real; echo done",
        out = outside.path().display(),
        work = work.path().display(),
    );
    let mut p = params(
        "esc",
        &["bash", "-c", &script],
        vec![rule(&["touch"], Verdict::Escalate)],
    );
    p.sandbox = Some(SandboxSpec {
        writable_roots: vec![work.path().display().to_string()],
        network: false,
        read_only: true,
    });
    let ran = run(&env, p).await;
    assert_eq!(ran.stdout, "done\n", "stderr {}", ran.stderr);
    assert!(
        !outside.join("by-argv0").exists(),
        "argv[0] escalated a shell"
    );
    assert!(
        !outside.join("by-link").exists(),
        "a symlink escalated a shell"
    );
    assert!(outside.join("real").exists(), "touch itself must escalate");
    let escalated: Vec<_> = gate
        .decisions()
        .into_iter()
        .filter(|d| d.decision == Verdict::Escalate)
        .map(|d| d.path)
        .collect();
    assert_eq!(escalated, vec![canonical("/usr/bin/touch")]);
}

/// Python speaking the wrapper protocol on fd 1023, then exec'ing with a
/// raw syscall (no shim): ask about `echo safe`, try the approval from a
/// forked child, try it with another argv, then use it.
const SWAP: &str = r#"
import ctypes, os, socket, struct
def ask(path, argv):
    tree = socket.socket(fileno=os.dup(1023))
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    tree.sendmsg([b"XQ2"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("4i", 0, 1, 2, theirs.fileno()))])
    theirs.close()
    fields = [path, os.getcwd(), str(len(argv))] + argv + ["0"]
    body = b"".join(f.encode() + b"\0" for f in fields)
    ours.sendall(struct.pack("<Q", len(body)) + body)
    reply = b""
    while len(reply) < 5:
        chunk = ours.recv(5 - len(reply))
        if not chunk:
            break
        reply += chunk
    return reply[:1].decode()
libc = ctypes.CDLL(None, use_errno=True)
NR = {"x86_64": 59, "aarch64": 221}[os.uname().machine]
def raw_exec(path, argv):
    args = (ctypes.c_char_p * (len(argv) + 1))(*[a.encode() for a in argv], None)
    env = (ctypes.c_char_p * 1)(None)
    libc.syscall(NR, path.encode(), args, env)
    return ctypes.get_errno()
print("asked", ask("/bin/echo", ["echo", "safe"]), flush=True)
child = os.fork()
if child == 0:
    print("child", raw_exec("/bin/echo", ["echo", "safe"]), flush=True)
    os._exit(0)
os.waitpid(child, 0)
print("swapped", raw_exec("/bin/echo", ["echo", "NOT-APPROVED-ARGV"]), flush=True)
raw_exec("/bin/echo", ["echo", "safe"])
print("not reached")
"#;

/// An approval authorises one exact exec by the process that asked, once:
/// not another pid, not another argv; and every exec is reported with the
/// argv that ran (or was refused).
async fn approvals_are_exact_and_single_use(backend: Backend) {
    // The first ask about `echo safe` is answered run; every later one deny.
    let safe_asks = AtomicUsize::new(0);
    let answer = move |request: &ApproveParams| {
        let safe = request.argv == ["echo", "safe"];
        Some(if safe && safe_asks.fetch_add(1, Ordering::SeqCst) == 0 {
            Answer::Run
        } else {
            Answer::Deny
        })
    };
    with_gate_answering(backend, answer, |env, gate| async move {
        let rules = vec![rule(&["echo"], Verdict::Ask)];
        let ran = run_under(&env, "swap", &["python3", "-c", SWAP], rules).await;
        assert_eq!(
            ran.stdout, "asked R\nchild 13\nswapped 13\nsafe\n",
            "stderr {}",
            ran.stderr
        );
        let asked: Vec<Vec<String>> = gate
            .asked
            .lock()
            .unwrap()
            .iter()
            .map(|a| a.argv.clone())
            .collect();
        // The wrapper's ask, the child's exec, the swapped exec; the
        // approved exec itself went through without another ask.
        assert_eq!(
            asked,
            vec![
                vec!["echo", "safe"],
                vec!["echo", "safe"],
                vec!["echo", "NOT-APPROVED-ARGV"]
            ]
        );
        let swapped: Vec<_> = gate
            .decisions()
            .into_iter()
            .filter(|d| d.argv == ["echo", "NOT-APPROVED-ARGV"])
            .map(|d| (d.decision, d.path))
            .collect();
        assert_eq!(swapped, vec![(Verdict::Deny, canonical("/bin/echo"))]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_exact_and_single_use_local() {
    approvals_are_exact_and_single_use(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_exact_and_single_use_remote() {
    approvals_are_exact_and_single_use(Backend::Remote).await;
}

/// Closed stdin or stdout around an escalated command: it gets `/dev/null`
/// there, and neither side waits forever.
async fn escalation_with_closed_stdio(env: Environment, _gate: Arc<TestGate>) {
    let script = "cat /etc/hostname >&-; echo \"closed-out:$?\"; cat <&-; echo \"closed-in:$?\"";
    let ran = run_under(
        &env,
        "closed",
        &["bash", "-c", script],
        vec![rule(&["cat"], Verdict::Escalate)],
    )
    .await;
    assert_eq!(
        ran.stdout, "closed-out:0\nclosed-in:0\n",
        "stderr {}",
        ran.stderr
    );
}

/// 5,000 arguments under `default: allow` run, and are reported whole.
async fn thousands_of_arguments_are_decided(env: Environment, gate: Arc<TestGate>) {
    let ran = run_under(
        &env,
        "many",
        &["bash", "-c", "seq 1 5000 | xargs /bin/echo | wc -w"],
        vec![],
    )
    .await;
    assert_eq!(ran.stdout.trim(), "5000", "stderr {}", ran.stderr);
    let echo = gate.decision_for("/bin/echo");
    assert_eq!((echo.decision, echo.argv.len()), (Verdict::Allow, 5001));
}

/// Garbage, empty and oversized datagrams and an oversized request on the
/// escalation socket: each refused, and escalation keeps working after.
async fn garbage_on_the_socket_does_not_end_escalation(env: Environment, gate: Arc<TestGate>) {
    let too_large = r#"
import os, socket, struct
tree = socket.socket(fileno=os.dup(1023))
tree.send(b"")
try:
    tree.send(b"x" * 150000)
except OSError as err:
    print("oversized datagram refused by the kernel:", err)
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
tree.sendmsg([b"XQ2"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("4i", 0, 1, 2, theirs.fileno()))])
theirs.close()
ours.sendall(struct.pack("<Q", 9 * 1024 * 1024))
reply = ours.recv(5)
print("too-large", reply[:1].decode(), struct.unpack("<i", reply[1:5])[0])
"#;
    let script = format!(
        "printf junk >&1023; printf '%s\\0' XQ2 >&1023; python3 -c '{too_large}'; cat /etc/hostname",
    );
    let ran = run_under(
        &env,
        "garbage",
        &["bash", "-c", &script],
        vec![rule(&["cat"], Verdict::Escalate)],
    )
    .await;
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap();
    assert!(
        ran.stdout.ends_with(&format!("too-large D 7\n{hostname}")),
        "stdout {:?} stderr {}",
        ran.stdout,
        ran.stderr
    );
    assert_eq!(gate.decision_for("cat").decision, Verdict::Escalate);
}

/// The program's own exec is decided before its process is forked (pid 0
/// in the ask): no child sits held with copies of the server's descriptors
/// while the client thinks; once allowed it runs without a second ask.
async fn the_first_exec_is_decided_before_the_fork(backend: Backend) {
    let answer = |_: &ApproveParams| Some(Answer::Run);
    with_gate_answering(backend, answer, |env, gate| async move {
        let rules = vec![rule(&["sleep"], Verdict::Ask)];
        let ran = run_under(&env, "first", &["sleep", "0.1"], rules).await;
        assert_eq!(ran.exit_code, 0, "stderr {}", ran.stderr);
        let asked = gate.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 1, "one ask: {asked:?}");
        assert_eq!(
            (asked[0].pid, asked[0].argv.clone()),
            (0, vec!["sleep".to_string(), "0.1".into()])
        );
        assert_eq!(gate.decision_for("sleep").decision, Verdict::Allow);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_exec_is_decided_before_the_fork_local() {
    the_first_exec_is_decided_before_the_fork(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_exec_is_decided_before_the_fork_remote() {
    the_first_exec_is_decided_before_the_fork(Backend::Remote).await;
}

both_backends!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    with_plain_gate:
    argv0_does_not_name_the_program,
    spoofed_escalations_stay_in_the_sandbox,
    escalation_with_closed_stdio,
    thousands_of_arguments_are_decided,
    garbage_on_the_socket_does_not_end_escalation,
);

/// Whether this process has a thread with this name (`comm`).
fn has_thread(name: &str) -> bool {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .any(|comm| comm.trim_end() == name)
}

/// A client that disconnects while an `exec/approve` waits: the exec is
/// denied at once (the tree's guard thread ends) and the tree is gone, long
/// before the ask's ten-minute timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnecting_during_an_ask_denies_at_once() {
    let (server, mut client) = connected().await;
    let mut start = start_params("zzq9", &["bash", "-c", "cat /etc/hostname"]);
    start["execPolicy"] = json!({
        "rules": [{"prefix": ["cat"], "decision": "ask"}],
        "default": "allow",
        "askTimeoutMs": 600_000,
    });
    client.call("process/start", start).await.expect("started");
    let queued = client.take_notifications();
    let mut approve = queued.into_iter().find(|f| f["method"] == "exec/approve");
    while approve.is_none() {
        let frame = client.recv_frame().await;
        approve = (frame["method"] == "exec/approve").then_some(frame);
    }
    let approve = approve.expect("exec/approve");
    let pid = approve["params"]["pid"].as_i64().expect("pid") as i32;
    assert!(has_thread("exec-guard-zzq9"), "the exec is held");
    drop(client);
    eventually("the held exec is decided", || {
        !has_thread("exec-guard-zzq9")
    })
    .await;
    wait_dead(&[pid]).await;
    server.shutdown().await;
}
