//! `execd exec-wrapper` inside a sandboxed, policied process tree: a
//! denied command exits 1 saying why, an escalated one runs outside the
//! sandbox with its status coming back, an allowed one is exec'd.

use execd_protocol::policy::{Rule, Verdict};
use execd_protocol::process::StartParams;
use execd_protocol::sandbox::SandboxSpec;
use execd_test_support::policy::{params, rule};
use execd_test_support::{collect_in_time, Backend, TempDir};

/// `script` under bash with `rules` (else allow), in a read-only sandbox
/// with no writable roots.
fn sandboxed(id: &str, script: &str, rules: Vec<Rule>) -> StartParams {
    StartParams {
        sandbox: Some(SandboxSpec {
            writable_roots: vec![],
            network: false,
            read_only: true,
        }),
        ..params(id, &["bash", "-c", script], rules)
    }
}

const EXECD: &str = env!("CARGO_BIN_EXE_execd");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapper_runs_escalates_and_denies() {
    let (env, guard) = Backend::Remote.start().await;
    let dir = TempDir::new("wrapper");
    let outside = dir.join("escalated");
    let script = format!(
        "echo hi | \"$EXECD\" exec-wrapper tee {outside}; echo \"tee:$?\"; \
         \"$EXECD\" exec-wrapper rm -f {outside}; echo \"rm:$?\"; \
         \"$EXECD\" exec-wrapper echo plain",
        outside = outside.display()
    );
    let rules = vec![
        rule(&["tee"], Verdict::Escalate),
        rule(&["rm"], Verdict::Deny),
    ];
    let mut params = StartParams {
        cwd: "/".into(),
        ..sandboxed("wrapped", &script, rules)
    };
    params.env.insert("PATH".into(), "/usr/bin:/bin".into());
    params.env.insert("EXECD".into(), EXECD.into());
    let mut started = env.exec.start(params).await.expect("start");
    let done = collect_in_time(&mut started.events).await;
    let (stdout, stderr, code) = (done.stdout_text(), done.stderr_text(), done.code());
    assert_eq!(stdout, "hi\ntee:0\nrm:1\nplain\n", "stderr {stderr}");
    assert!(
        stderr.contains("execd exec-wrapper: rm: denied by the exec policy"),
        "{stderr}"
    );
    assert_eq!(code, Some(0));
    // tee ran outside the sandbox (no writable roots inside it).
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "hi\n");
    drop(env);
    guard.finish().await;
}

/// Seed compatibility: a policied tree gets `EXEC_WRAPPER`, the hook of
/// patched shells (codex's zsh fork), pointing at `execd-exec-wrapper`;
/// a script standing in for such a shell runs `$EXEC_WRAPPER FILE ARGV…`
/// for its commands, and the policy applies (escalation included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_wrapper_hook_for_patched_shells() {
    let server = execd_test_support::Execd(EXECD).serve().await;
    let client = execd_client::ExecServerClient::connect(&server.url)
        .await
        .expect("connect");
    let env = execd_client::RemoteEnvironment::new(client).into_environment();
    let dir = TempDir::new("hook");
    let outside = dir.join("escalated");
    // What a patched shell does for `touch F` and `rm -f F`.
    let script = format!(
        "case \"$EXEC_WRAPPER\" in */execd-exec-wrapper) ;; *) echo \"no hook: $EXEC_WRAPPER\"; exit 9;; esac; \
         \"$EXEC_WRAPPER\" /usr/bin/touch touch {outside}; echo \"touch:$?\"; \
         \"$EXEC_WRAPPER\" /usr/bin/rm rm -f {outside}; echo \"rm:$?\"",
        outside = outside.display()
    );
    let rules = vec![
        rule(&["touch"], Verdict::Escalate),
        rule(&["rm"], Verdict::Deny),
    ];
    let params = sandboxed("hooked", &script, rules);
    let mut started = env.exec.start(params).await.expect("start");
    let done = collect_in_time(&mut started.events).await;
    let (stdout, stderr) = (done.stdout_text(), done.stderr_text());
    assert_eq!(stdout, "touch:0\nrm:1\n", "stderr {stderr}");
    // touch ran outside the read-only sandbox; rm was refused.
    assert!(outside.exists(), "the escalated touch created the file");
}
