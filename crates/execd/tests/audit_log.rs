//! `execd serve --log-format json`: every stderr line is a JSON object, and
//! the audit events (target `execd::audit`) record a refused handshake, the
//! admitted connection, a process start (argv, cwd, pid, session), an
//! exec-policy decision, and file writes, copies and removals with their
//! paths, all tied together by the session id.

use std::collections::HashMap;
use std::time::Duration;

use execd_client::{ConnectOptions, RemoteEnvironment, Token};
use execd_environment::collect;
use execd_protocol::policy::{ExecPolicy, Verdict};
use execd_protocol::process::StartParams;
use execd_test_support::Execd;
use serde_json::Value;

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));
const TIMEOUT: Duration = Duration::from_secs(60);
const TOKEN: &str = "audit-secret";

fn start_params(id: &str, script: &str, policy: Option<ExecPolicy>) -> StartParams {
    StartParams {
        process_id: id.into(),
        argv: vec!["bash".into(), "-c".into(), script.into()],
        cwd: "/tmp".into(),
        env: HashMap::from([("PATH".into(), "/usr/bin:/bin".into())]),
        tty: false,
        pipe_stdin: false,
        arg0: None,
        size: None,
        exec_policy: policy,
        sandbox: None,
        network_policy: None,
        output_window: None,
    }
}

fn find<'a>(events: &'a [Value], name: &str, what: impl Fn(&Value) -> bool) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == name && what(e))
        .unwrap_or_else(|| panic!("no matching {name} event in {events:#?}"))
}

#[tokio::test]
async fn json_audit_log_records_connections_starts_decisions_and_file_changes() {
    let work = tempfile::tempdir().unwrap();
    let server = EXECD.serve_json_logs(Some(TOKEN), &[]).await;
    let url = server.url().to_string();

    // A refused attempt.
    let wrong = ConnectOptions {
        token: Some(Token::new("not-the-token", "test").unwrap()),
        ..ConnectOptions::default()
    };
    assert!(
        RemoteEnvironment::connect_with(&url, wrong).await.is_err(),
        "a wrong token must be refused"
    );

    let right = ConnectOptions {
        token: Some(Token::new(TOKEN, "test").unwrap()),
        ..ConnectOptions::default()
    };
    let env = RemoteEnvironment::connect_with(&url, right)
        .await
        .expect("connect with the token");
    let mut started = env
        .exec
        .start(start_params("audited", "echo audited", None))
        .await
        .unwrap();
    let ran = tokio::time::timeout(TIMEOUT, collect(&mut started.events))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ran.stdout_text(), "audited\n");
    let policy = ExecPolicy {
        rules: Vec::new(),
        default: Verdict::Allow,
        ask_timeout_ms: None,
    };
    let mut policied = env
        .exec
        .start(start_params("policied", "/bin/true", Some(policy)))
        .await
        .unwrap();
    tokio::time::timeout(TIMEOUT, collect(&mut policied.events))
        .await
        .unwrap()
        .unwrap();

    let dir = work.path().to_str().unwrap();
    let (written, copied) = (format!("{dir}/written"), format!("{dir}/copied"));
    env.fs.write_file(&written, b"data".to_vec()).await.unwrap();
    env.fs.copy(&written, &copied, false).await.unwrap();
    env.fs.remove(&written, false, false).await.unwrap();
    drop(started);
    drop(policied);
    drop(env);

    let log = server.stop_and_logs().await;
    let events = log.audit();

    let refused = find(&events, "connection.refused", |_| true);
    assert_eq!(refused["status"], 401, "{refused}");
    assert_eq!(refused["reason"], "wrong-token", "{refused}");
    assert_eq!(refused["level"], "WARN", "{refused}");
    assert!(
        refused["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{refused}"
    );
    assert!(
        !log.text.contains("not-the-token") && !log.text.contains(TOKEN),
        "a token was logged"
    );

    let opened = find(&events, "connection.opened", |_| true);
    assert_eq!(opened["auth"], "token", "{opened}");
    assert!(
        opened["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{opened}"
    );
    let session = opened["session"].as_str().unwrap().to_string();
    let ours = |e: &Value| e["session"] == session.as_str();

    let start = find(&events, "process.started", |e| {
        ours(e) && e["process_id"] == "audited"
    });
    let argv: Vec<String> = serde_json::from_str(start["argv"].as_str().unwrap()).unwrap();
    assert_eq!(argv, ["bash", "-c", "echo audited"]);
    assert_eq!(start["cwd"], "/tmp", "{start}");
    assert!(start["pid"].as_i64().is_some_and(|pid| pid > 1), "{start}");

    let decision = find(&events, "exec.decision", |e| {
        ours(e) && e["process_id"] == "policied"
    });
    assert_eq!(decision["decision"], "allow", "{decision}");
    assert!(decision["argv"].as_str().is_some(), "{decision}");

    let write = find(&events, "fs.change", |e| {
        ours(e) && e["operation"] == "fs/writeFile"
    });
    assert_eq!(write["path"], written.as_str(), "{write}");
    assert_eq!(write["ok"], true, "{write}");
    let copy = find(&events, "fs.change", |e| {
        ours(e) && e["operation"] == "fs/copy"
    });
    assert_eq!(copy["path"], written.as_str(), "{copy}");
    assert_eq!(copy["destination"], copied.as_str(), "{copy}");
    let remove = find(&events, "fs.change", |e| {
        ours(e) && e["operation"] == "fs/remove"
    });
    assert_eq!(remove["path"], written.as_str(), "{remove}");

    find(&events, "connection.closed", ours);
}
