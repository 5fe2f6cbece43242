//! `execd exec-wrapper` inside a sandboxed, policied process tree: a
//! denied command exits 1 saying why, an escalated one runs outside the
//! sandbox with its status coming back, an allowed one is exec'd.

use execd_protocol::policy::{ExecPolicy, Rule, Verdict};
use execd_protocol::process::StartParams;
use execd_protocol::sandbox::SandboxSpec;
use execd_test_support::{collect_in_time, process_params, Backend, TempDir};

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
    let rule = |prefix: &str, decision| Rule {
        prefix: vec![prefix.to_string()],
        decision,
    };
    let mut params = StartParams {
        cwd: "/".into(),
        exec_policy: Some(ExecPolicy {
            rules: vec![rule("tee", Verdict::Escalate), rule("rm", Verdict::Deny)],
            default: Verdict::Allow,
            ask_timeout_ms: None,
        }),
        sandbox: Some(SandboxSpec {
            writable_roots: vec![],
            network: false,
            read_only: true,
        }),
        ..process_params("wrapped", &["bash", "-c", &script])
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
