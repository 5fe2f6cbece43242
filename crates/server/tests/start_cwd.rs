//! A start whose cwd is missing or not a directory is refused with an
//! error naming the cwd, whichever step notices first (the program's
//! lookup in a relative `PATH` entry, or the child's `chdir`): the server
//! checks the cwd only after a start fails, and must still say why.

use execd_test_support::wire::assert_error;
use execd_test_support::{connected, TempDir};
use serde_json::json;

#[tokio::test]
async fn a_missing_or_non_directory_cwd_is_named() {
    let (_server, mut client) = connected().await;
    let dir = TempDir::new("start-cwd");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"not a directory").expect("write file");
    let missing = dir.path().join("gone");
    let missing = missing.to_string_lossy();
    let file = file.to_string_lossy();
    let cases = [
        // Found on an absolute PATH entry: the child's chdir fails.
        (json!(["true"]), missing.as_ref(), "/usr/bin:/bin"),
        (json!(["true"]), file.as_ref(), "/usr/bin:/bin"),
        // Looked up in a relative PATH entry under the cwd: not found there.
        (json!(["tool"]), missing.as_ref(), "bin"),
    ];
    for (i, (argv, cwd, path)) in cases.into_iter().enumerate() {
        let err = client
            .call_expect_error(
                "process/start",
                json!({
                    "processId": format!("p{i}"),
                    "argv": argv,
                    "cwd": cwd,
                    "env": {"PATH": path},
                }),
            )
            .await;
        assert_error(
            &err,
            -32602,
            &[cwd, "not a directory"],
            &format!("case {i}"),
        );
    }
    // The connection keeps working, and a good cwd still starts.
    client
        .start(json!({"processId": "ok", "argv": ["true"], "cwd": dir.text(""), "env": {"PATH": "/usr/bin:/bin"}}))
        .await;
    assert_eq!(client.wait_closed("ok").await.exit_code, Some(0));
}
