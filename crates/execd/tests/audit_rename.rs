//! `fs/rename` in the audit log (`execd serve --log-format json`): an
//! `fs.change` event with both paths and `ok`, and a failed rename with
//! `ok: false` and its error, tied to the session that asked.

use std::process::Stdio;
use std::time::Duration;

use execd_client::{ConnectOptions, RemoteEnvironment, Token};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

const EXECD: &str = env!("CARGO_BIN_EXE_execd");
const TIMEOUT: Duration = Duration::from_secs(60);
const TOKEN: &str = "audit-rename-secret";

#[tokio::test]
async fn renames_are_audited_as_file_changes() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let mut child = Command::new(EXECD)
        .args([
            "serve",
            "--listen",
            "ws://127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env("HOME", home.path())
        .env("EXECD_TOKEN", TOKEN)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn execd serve");
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(TIMEOUT, stdout.next_line())
        .await
        .expect("no URL in time")
        .unwrap()
        .expect("execd serve printed no URL");
    let mut stderr = child.stderr.take().unwrap();
    let reading = tokio::spawn(async move {
        let mut text = String::new();
        stderr.read_to_string(&mut text).await.map(|_| text)
    });

    let options = ConnectOptions {
        token: Some(Token::new(TOKEN, "test").unwrap()),
        ..ConnectOptions::default()
    };
    let env = RemoteEnvironment::connect_with(&url, options)
        .await
        .expect("connect with the token");
    let dir = work.path().to_str().unwrap();
    let (from, to) = (format!("{dir}/from"), format!("{dir}/to"));
    let missing = format!("{dir}/missing");
    std::fs::write(&from, b"x").unwrap();
    env.fs.rename(&from, &to).await.expect("rename");
    env.fs
        .rename(&missing, &to)
        .await
        .expect_err("renaming a missing file");
    drop(env);

    kill(Pid::from_raw(child.id().unwrap() as i32), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(TIMEOUT, child.wait())
        .await
        .expect("execd serve did not stop")
        .unwrap();
    assert!(status.success(), "{status}");
    let log = tokio::time::timeout(TIMEOUT, reading)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let renames: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| {
            e["target"] == "execd::audit"
                && e["event"] == "fs.change"
                && e["operation"] == "fs/rename"
        })
        .collect();
    assert_eq!(renames.len(), 2, "{log}");
    let done = &renames[0];
    assert_eq!(done["path"], from.as_str(), "{done}");
    assert_eq!(done["destination"], to.as_str(), "{done}");
    assert_eq!(done["ok"], true, "{done}");
    let failed = &renames[1];
    assert_eq!(failed["path"], missing.as_str(), "{failed}");
    assert_eq!(failed["ok"], false, "{failed}");
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    assert_eq!(done["session"], failed["session"], "{renames:?}");
    assert!(done["session"].as_str().is_some_and(|s| !s.is_empty()));
}
