//! `execd exec-wrapper` inside a sandboxed, policied process tree: a
//! denied command exits 1 saying why, an escalated one runs outside the
//! sandbox with its status coming back, an allowed one is exec'd.

use std::collections::HashMap;
use std::time::Duration;

use execd_client::RemoteEnvironment;
use execd_environment::collect;
use execd_protocol::policy::{ExecPolicy, Rule, Verdict};
use execd_protocol::process::StartParams;
use execd_protocol::sandbox::SandboxSpec;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapper_runs_escalates_and_denies() {
    let server = execd_server::bind("127.0.0.1:0".parse().unwrap(), Default::default())
        .await
        .expect("bind");
    let env = RemoteEnvironment::connect(&server.url())
        .await
        .expect("connect");
    let dir = std::env::temp_dir().join(format!("execd-wrapper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
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
    let params = StartParams {
        process_id: "wrapped".into(),
        argv: vec!["bash".into(), "-c".into(), script],
        cwd: "/".into(),
        env: HashMap::from([
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("EXECD".into(), env!("CARGO_BIN_EXE_execd").into()),
        ]),
        tty: false,
        pipe_stdin: false,
        arg0: None,
        size: None,
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
    };
    let mut started = env.exec.start(params).await.expect("start");
    let done = tokio::time::timeout(Duration::from_secs(60), collect(&mut started.events))
        .await
        .expect("closed in time")
        .expect("no event error");
    let (stdout, stderr, code) = (done.stdout_text(), done.stderr_text(), done.code());
    assert_eq!(stdout, "hi\ntee:0\nrm:1\nplain\n", "stderr {stderr}");
    assert!(
        stderr.contains("execd exec-wrapper: rm: denied by the exec policy"),
        "{stderr}"
    );
    assert_eq!(code, Some(0));
    // tee ran outside the sandbox (no writable roots inside it).
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "hi\n");
    std::fs::remove_dir_all(&dir).unwrap();
    drop(env);
    server.shutdown().await;
}
