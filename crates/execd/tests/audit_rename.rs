//! `fs/rename` in the audit log (`execd serve --log-format json`): an
//! `fs.change` event with both paths and `ok`, and a failed rename with
//! `ok: false` and its error, tied to the session that asked.

use execd_client::{ConnectOptions, RemoteEnvironment, Token};
use execd_test_support::Execd;
use serde_json::Value;

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));
const TOKEN: &str = "audit-rename-secret";

#[tokio::test]
async fn renames_are_audited_as_file_changes() {
    let work = tempfile::tempdir().unwrap();
    let server = EXECD.serve_json_logs(Some(TOKEN), &[]).await;

    let options = ConnectOptions {
        token: Some(Token::new(TOKEN, "test").unwrap()),
        ..ConnectOptions::default()
    };
    let env = RemoteEnvironment::connect_with(server.url(), options)
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

    let log = server.stop_and_logs().await;
    let renames: Vec<Value> = log
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "fs.change" && e["operation"] == "fs/rename")
        .collect();
    assert_eq!(renames.len(), 2, "{}", log.text);
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
