//! `execd_fs_operations_total` counts the filesystem methods added after
//! the first set (rename, watch/unwatch, the transfer streams) under their
//! own names, with their error kinds, read back from a real `/metrics`
//! scrape after real requests over a WebSocket.

use execd_server::{ServerConfig, WsServer};
use execd_test_support::server::start_server_with;
use execd_test_support::ws_client::Client;
use execd_test_support::TIMEOUT;
use prometheus_parse::{Scrape, Value};
use serde_json::json;

/// `execd_fs_operations_total{method, error}` summed over its samples
/// (every error kind when `error` is `None`); 0 if there are none.
async fn fs_count(server: &WsServer, method: &str, error: Option<&str>) -> f64 {
    let url = format!("http://{}/metrics", server.local_addr());
    let text = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("HTTP client")
        .get(url)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text");
    scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == "execd_fs_operations_total"
                && s.labels.get("method") == Some(method)
                && error.is_none_or(|error| s.labels.get("error") == Some(error))
        })
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Untyped(v) => *v,
            other => panic!("{method}: {other:?}"),
        })
        .sum()
}

#[tokio::test]
async fn rename_watch_and_transfer_cancel_are_counted_by_name() {
    let server = start_server_with(ServerConfig::default()).await;
    let mut client = Client::connect_initialized(&server.url()).await;
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("a.txt");
    std::fs::write(&from, b"x").unwrap();
    let to = dir.path().join("b.txt");
    let (from, to) = (from.to_str().unwrap(), to.to_str().unwrap());

    client
        .call(
            "fs/rename",
            json!({"sourcePath": from, "destinationPath": to}),
        )
        .await
        .expect("rename");
    client
        .call_expect_error(
            "fs/rename",
            json!({"sourcePath": from, "destinationPath": to}),
        )
        .await;
    client
        .call(
            "fs/watch",
            json!({"watchId": "w", "path": dir.path().to_str().unwrap()}),
        )
        .await
        .expect("watch");
    client
        .call("fs/unwatch", json!({"watchId": "w"}))
        .await
        .expect("unwatch");
    // Cancelling a stream that does not exist: answered either way, and
    // counted under its own name.
    let _ = client
        .call("fs/transferCancel", json!({"streamId": 99}))
        .await;

    assert_eq!(fs_count(&server, "fs/rename", Some("none")).await, 1.0);
    assert_eq!(fs_count(&server, "fs/rename", Some("not_found")).await, 1.0);
    assert_eq!(fs_count(&server, "fs/watch", Some("none")).await, 1.0);
    assert_eq!(fs_count(&server, "fs/unwatch", Some("none")).await, 1.0);
    assert_eq!(fs_count(&server, "fs/transferCancel", None).await, 1.0);

    drop(client);
    server.shutdown().await;
}
