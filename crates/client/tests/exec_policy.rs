//! Per-command exec decisions and the sandbox, the same on both backends:
//! real shells (bash, dash, zsh) and Python run under a policy; every exec in
//! the tree is held until decided by a rule, or by the harness's gate for
//! `ask`; a sandboxed tree cannot write outside its roots or reach the network.

use std::future::Future;
use std::sync::Arc;

use execd_client::{EnvError, Environment};
use execd_protocol::policy::{Answer, ApproveParams, DecidedBy, Verdict};
use execd_protocol::process::StartParams;
use execd_protocol::sandbox::SandboxSpec;
use execd_test_support::policy::{
    params, policy, rule, run, run_under, with_gate_answering, TestGate,
};
use execd_test_support::procs::pids_running;
use execd_test_support::{
    both_backends, collect_in_time, eventually, process_params, Backend, TempDir,
};

/// Run `test` on `backend` with a fresh gate that answers asks by argv
/// ([`answer_by_argv`]).
async fn with_gate<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Environment, Arc<TestGate>) -> Fut,
    Fut: Future<Output = ()>,
{
    with_gate_answering(backend, answer_by_argv, test).await;
}

const SCRIPT: &str = "echo start; ls / >/dev/null && echo ls-ok; rm -f /tmp/execd-policy-none || echo rm-denied; echo end";

/// An allowed command runs; a denied one fails with a message and the shell goes on.
async fn shell_runs_allowed_and_survives_denied(
    shell: &str,
    env: Environment,
    gate: Arc<TestGate>,
) {
    let argv = [shell, "-c", SCRIPT];
    let ran = run_under(&env, "sh", &argv, vec![rule(&["rm"], Verdict::Deny)]).await;
    assert_eq!(
        ran.stdout, "start\nls-ok\nrm-denied\nend\n",
        "{shell}: stderr {}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("ermission denied"),
        "{shell}: {}",
        ran.stderr
    );
    assert_eq!(ran.exit_code, 0);
    let rm = gate.decision_for("rm");
    assert_eq!(
        (rm.decision, rm.decided_by),
        (Verdict::Deny, DecidedBy::Rule)
    );
    assert_eq!(rm.rule, Some(vec!["rm".to_string()]));
    assert!(rm.path.ends_with("/rm"), "{rm:?}");
    let ls = gate.decision_for("ls");
    assert_eq!(
        (ls.decision, ls.decided_by),
        (Verdict::Allow, DecidedBy::Default)
    );
    // The shell's own exec was held and decided too.
    assert_eq!(gate.decision_for(shell).decision, Verdict::Allow);
}

async fn bash_under_policy(env: Environment, gate: Arc<TestGate>) {
    shell_runs_allowed_and_survives_denied("bash", env, gate).await;
}

async fn dash_under_policy(env: Environment, gate: Arc<TestGate>) {
    shell_runs_allowed_and_survives_denied("dash", env, gate).await;
}

async fn zsh_under_policy(env: Environment, gate: Arc<TestGate>) {
    shell_runs_allowed_and_survives_denied("zsh", env, gate).await;
}

async fn ask_is_answered_both_ways(env: Environment, gate: Arc<TestGate>) {
    let script = "cat /etc/hostname >/dev/null && echo first-ran; cat /etc/passwd >/dev/null || echo second-denied";
    let argv = ["bash", "-c", script];
    let ran = run_under(&env, "ask", &argv, vec![rule(&["cat"], Verdict::Ask)]).await;
    assert_eq!(
        ran.stdout, "first-ran\nsecond-denied\n",
        "stderr {}",
        ran.stderr
    );
    let asked = gate.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0].argv, vec!["cat", "/etc/hostname"]);
    assert_eq!(asked[0].cwd, "/tmp");
    assert_eq!(asked[0].process_id, "ask");
    let client_decisions: Vec<_> = gate
        .decisions()
        .into_iter()
        .filter(|d| d.decided_by == DecidedBy::Client)
        .map(|d| d.decision)
        .collect();
    assert_eq!(client_decisions, vec![Verdict::Allow, Verdict::Deny]);
}

fn answer_by_argv(request: &ApproveParams) -> Option<Answer> {
    if request.argv.first().is_some_and(|a| a == "touch") {
        Some(Answer::Escalate)
    } else if request.argv.iter().any(|a| a == "/etc/hostname") {
        Some(Answer::Run)
    } else if request.argv.iter().any(|a| a == "/etc/passwd") {
        Some(Answer::Deny)
    } else {
        None
    }
}

async fn unanswered_ask_times_out_and_denies(env: Environment, gate: Arc<TestGate>) {
    let argv = ["bash", "-c", "cat /etc/shadow || echo timed-out"];
    let mut p = params("silent", &argv, vec![rule(&["cat"], Verdict::Ask)]);
    p.exec_policy.as_mut().unwrap().ask_timeout_ms = Some(300);
    let ran = run(&env, p).await;
    assert_eq!(ran.stdout, "timed-out\n");
    let cat = gate.decision_for("cat");
    assert_eq!(
        (cat.decision, cat.decided_by),
        (Verdict::Deny, DecidedBy::Timeout)
    );
}

async fn python_subprocess_is_intercepted(env: Environment, gate: Arc<TestGate>) {
    let code = "import subprocess\ntry:\n    subprocess.run(['true'])\n    print('ran')\nexcept PermissionError:\n    print('denied')";
    let argv = ["/usr/bin/python3", "-c", code];
    let ran = run_under(&env, "py", &argv, vec![rule(&["true"], Verdict::Deny)]).await;
    assert_eq!(ran.stdout, "denied\n", "stderr {}", ran.stderr);
    let denied = gate.decision_for("true");
    assert_eq!(denied.decision, Verdict::Deny);
}

async fn denied_program_fails_to_start(env: Environment, gate: Arc<TestGate>) {
    let err = env
        .exec
        .start(params(
            "rm",
            &["rm", "-rf", "/tmp/nothing"],
            vec![rule(&["rm"], Verdict::Deny)],
        ))
        .await
        .err()
        .expect("start must fail");
    assert!(
        matches!(err, EnvError::InvalidInput(ref m) if m.contains("denied by the exec policy")),
        "{err:?}"
    );
    assert_eq!(gate.decision_for("rm").decision, Verdict::Deny);
}

/// An escalated command runs outside the tree's process group, yet
/// terminating the tree ends it too, and the tree closes.
async fn terminating_the_tree_ends_its_escalated_commands(env: Environment, _gate: Arc<TestGate>) {
    let seconds = if env.remote { "987" } else { "986" };
    let script = format!("echo started; sleep {seconds}; echo after");
    let mut started = env
        .exec
        .start(params(
            "esc-kill",
            &["bash", "-c", &script],
            vec![rule(&["sleep"], Verdict::Escalate)],
        ))
        .await
        .expect("start");
    eventually("the escalated sleep", || {
        !pids_running(&["sleep", seconds]).is_empty()
    })
    .await;
    let running = started.process.terminate().await.unwrap();
    let done = collect_in_time(&mut started.events).await;
    assert!(running, "already exited: {done:?} / {}", done.stderr_text());
    assert_eq!(done.stdout_text(), "started\n");
    eventually("the escalated sleep to die", || {
        pids_running(&["sleep", seconds]).is_empty()
    })
    .await;
}

/// A static binary that execs with a raw syscall (no libc `execve`, no
/// shim): built once per test process with the system C compiler.
fn raw_exec_binary() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("rawexec");
            std::fs::create_dir_all(&dir).unwrap();
            let source = dir.join("rawexec.c");
            std::fs::write(
                &source,
                "#include <errno.h>\n#include <stdio.h>\n#include <sys/syscall.h>\n#include <unistd.h>\n\
                 int main(void) {\n  char *argv[] = {\"echo\", \"ran\", 0};\n  char *envp[] = {0};\n\
                 syscall(SYS_execve, \"/bin/echo\", argv, envp);\n\
                 printf(\"exec failed: %d\\n\", errno);\n  return 0;\n}\n",
            )
            .unwrap();
            let binary = dir.join("rawexec");
            let status = std::process::Command::new("cc")
                .args(["-static", "-O2", "-o"])
                .arg(&binary)
                .arg(&source)
                .status()
                .expect("run cc");
            assert!(status.success(), "cc -static failed");
            binary
        })
        .clone()
}

/// Execs that bypass libc (static binaries, raw syscalls) are held by the
/// kernel guard all the same.
async fn static_binaries_are_held_too(env: Environment, gate: Arc<TestGate>) {
    let binary = raw_exec_binary();
    let program = binary.to_str().unwrap();
    let rules = vec![rule(&["echo"], Verdict::Deny)];
    let ran = run_under(&env, "static", &[program], rules).await;
    assert_eq!(ran.stdout, "exec failed: 13\n", "stderr {}", ran.stderr);
    let echo = gate.decision_for("echo");
    // The path reported is the file the kernel runs, symlinks resolved.
    let file = std::fs::canonicalize("/bin/echo").unwrap();
    assert_eq!(
        (echo.decision, echo.path.as_str()),
        (Verdict::Deny, file.to_str().unwrap())
    );
    // Allowed, the same raw exec goes through.
    let ran = run_under(&env, "static-ok", &[program], vec![]).await;
    assert_eq!(ran.stdout, "ran\n");
}

/// `bash -c script` in a read-only sandbox without network, writable only
/// under `roots`; no policy.
fn sandboxed(id: &str, script: &str, roots: Vec<String>) -> StartParams {
    StartParams {
        sandbox: Some(SandboxSpec {
            writable_roots: roots,
            network: false,
            read_only: true,
        }),
        ..process_params(id, &["bash", "-c", script])
    }
}

async fn sandbox_confines_writes_and_network(env: Environment, _gate: Arc<TestGate>) {
    let temp = TempDir::new("sandbox");
    let base = temp.path();
    let root = base.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let outside = base.join("outside");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "echo ok > {root}/inside && echo wrote-inside; \
         (echo x > {outside}) 2>/dev/null || echo outside-denied; \
         cat /etc/hostname >/dev/null && echo read-ok; \
         (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo connected || echo network-denied",
        root = root.display(),
        outside = outside.display(),
    );
    let ran = run(
        &env,
        sandboxed("box", &script, vec![root.display().to_string()]),
    )
    .await;
    assert_eq!(
        ran.stdout, "wrote-inside\noutside-denied\nread-ok\nnetwork-denied\n",
        "stderr {}",
        ran.stderr
    );
    assert!(root.join("inside").exists());
    assert!(!outside.exists());
    // The same command without the sandbox reaches the listener and writes.
    let mut free = sandboxed("free", &script, vec![]);
    free.sandbox = None;
    let ran = run(&env, free).await;
    assert_eq!(
        ran.stdout, "wrote-inside\nread-ok\nconnected\n",
        "stderr {}",
        ran.stderr
    );
}

/// A sandboxed shell's escalated command runs outside the sandbox; its output
/// and exit status arrive through the original process.
async fn escalated_commands_run_outside_the_sandbox(env: Environment, gate: Arc<TestGate>) {
    let temp = TempDir::new("escalate");
    let base = temp.path();
    let by_rule = base.join("by-rule");
    let by_client = base.join("by-client");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");
    let script = format!(
        "echo hi | tee {by_rule}; echo \"tee:$?\"; \
         sh -c 'exit 7'; echo \"sh:$?\"; \
         touch {by_client}; echo \"touch:$?\"; \
         (echo no > {base}/direct) 2>/dev/null || echo direct-denied; \
         (exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null || echo network-denied; \
         bash -c '{connect}'; echo \"net:$?\"",
        by_rule = by_rule.display(),
        by_client = by_client.display(),
        base = base.display(),
    );
    let mut p = sandboxed("esc", &script, vec![]);
    p.exec_policy = Some(policy(vec![
        rule(&["tee"], Verdict::Escalate),
        rule(&["sh"], Verdict::Escalate),
        rule(&["touch"], Verdict::Ask),
        rule(&["bash", "-c", &connect], Verdict::Escalate),
    ]));
    let ran = run(&env, p).await;
    assert_eq!(
        ran.stdout, "hi\ntee:0\nsh:7\ntouch:0\ndirect-denied\nnetwork-denied\nconnected\nnet:0\n",
        "stderr {}",
        ran.stderr
    );
    // Written outside the sandbox's (empty) writable roots.
    assert_eq!(std::fs::read_to_string(&by_rule).unwrap(), "hi\n");
    assert!(by_client.exists());
    let tee = gate.decision_for("tee");
    assert_eq!(
        (tee.decision, tee.decided_by),
        (Verdict::Escalate, DecidedBy::Rule)
    );
    let touch = gate.decision_for("touch");
    assert_eq!(
        (touch.decision, touch.decided_by),
        (Verdict::Escalate, DecidedBy::Client)
    );
    assert!(gate
        .asked
        .lock()
        .unwrap()
        .iter()
        .any(|a| a.escalation && a.argv[0] == "touch"));
}

async fn sandbox_rejects_a_bad_root(env: Environment, _gate: Arc<TestGate>) {
    let err = env
        .exec
        .start(sandboxed("bad", "true", vec!["relative/dir".into()]))
        .await
        .err()
        .expect("start must fail");
    assert!(
        matches!(err, EnvError::InvalidInput(ref m) if m.contains("relative/dir")),
        "{err:?}"
    );
}

async fn policy_holds_inside_the_sandbox(env: Environment, gate: Arc<TestGate>) {
    let mut p = sandboxed(
        "both",
        "rm -f /tmp/none || echo rm-denied; echo done",
        vec![],
    );
    p.exec_policy = Some(policy(vec![rule(&["rm"], Verdict::Deny)]));
    let ran = run(&env, p).await;
    assert_eq!(ran.stdout, "rm-denied\ndone\n", "stderr {}", ran.stderr);
    assert_eq!(gate.decision_for("rm").decision, Verdict::Deny);
}

both_backends!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    with_gate:
    bash_under_policy,
    dash_under_policy,
    zsh_under_policy,
    ask_is_answered_both_ways,
    unanswered_ask_times_out_and_denies,
    python_subprocess_is_intercepted,
    denied_program_fails_to_start,
    escalated_commands_run_outside_the_sandbox,
    static_binaries_are_held_too,
    terminating_the_tree_ends_its_escalated_commands,
    sandbox_confines_writes_and_network,
    sandbox_rejects_a_bad_root,
    policy_holds_inside_the_sandbox,
);
