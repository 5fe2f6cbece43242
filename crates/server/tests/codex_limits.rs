//! The codex dialect's filesystem methods under the server's limits: their
//! replies come from tasks, so each counts as a request in flight. With
//! the connection's places all taken by a long-poll, `fs/open`,
//! `fs/readBlock`, `fs/canonicalize`, `fs/walk` and `fs/watchMissing` are
//! refused with the error naming `maxRequestsInFlight`; `fs/close` (answered
//! inline) still works, and everything works again once the place is free.

use execd_server::ServerConfig;
use execd_test_support::{start_server_with, Client, TempDir};
use serde_json::{json, Value};

fn assert_in_flight_limit(error: &Value, method: &str) {
    assert_eq!(error["code"], json!(-32600), "{method}: {error}");
    assert_eq!(
        error["data"]["limit"],
        json!("maxRequestsInFlight"),
        "{method}: {error}"
    );
    assert_eq!(error["data"]["value"], json!(1), "{method}: {error}");
}

#[tokio::test]
async fn codex_fs_methods_count_as_requests_in_flight() {
    let config = ServerConfig {
        max_requests_in_flight: 1,
        ..ServerConfig::default()
    };
    let server = start_server_with(config).await;
    let mut client = Client::connect_initialized(&server.url()).await;
    let dir = TempDir::new("codex-limits");
    let file = dir.text("data.txt");
    std::fs::write(&file, b"hello").expect("write the file");
    let root = dir.text("");
    client
        .call("fs/open", json!({"handleId": "h", "path": file}))
        .await
        .expect("open while a place is free");

    client
        .start(json!({
            "processId": "s", "argv": ["sleep", "60"], "cwd": "/", "env": {}
        }))
        .await;
    let poll = json!({"processId": "s", "afterSeq": 0, "waitMs": 60_000});
    let waiting = client.send_request("process/read", poll).await;

    let refused = [
        ("fs/open", json!({"handleId": "h2", "path": file})),
        (
            "fs/readBlock",
            json!({"handleId": "h", "offset": 0, "len": 5}),
        ),
        ("fs/canonicalize", json!({"path": root})),
        (
            "fs/walk",
            json!({"path": root, "options": {"maxDepth": 1, "maxDirectories": 1, "maxEntries": 10, "followDirectorySymlinks": false}}),
        ),
        (
            "fs/watchMissing",
            json!({"watchId": 1, "missing": [dir.text("later")], "present": null}),
        ),
    ];
    for (method, params) in &refused {
        let error = client.call_expect_error(method, params.clone()).await;
        assert_in_flight_limit(&error, method);
    }

    // Inline methods still answer; the long-poll ends with the process.
    client
        .call("process/terminate", json!({"processId": "s"}))
        .await
        .expect("terminate");
    client.response(waiting).await.expect("process/read");
    client.wait_closed("s").await;

    let block = client
        .call(
            "fs/readBlock",
            json!({"handleId": "h", "offset": 0, "len": 5}),
        )
        .await
        .expect("a place again");
    assert_eq!(block["eof"], json!(true));
    let walked = client
        .call("fs/walk", refused[3].1.clone())
        .await
        .expect("walk");
    assert_eq!(walked["entries"][0]["kind"], json!("file"), "{walked}");
    client
        .call("fs/close", json!({"handleId": "h"}))
        .await
        .expect("close");
    server.shutdown().await;
}
