//! `fs/setMetadata` (execd's extension) over a real socket: permission bits
//! and times set and read back through `fs/getMetadata` (`mode`,
//! `accessedAtMs`), and each bad request refused with an error naming what
//! is wrong, the connection going on.

use std::os::unix::fs::PermissionsExt;

use execd_test_support::wire::{assert_error, INVALID_PARAMS, NOT_FOUND};
use execd_test_support::*;
use serde_json::json;

#[tokio::test]
async fn set_metadata_sets_mode_and_times() {
    let (_server, mut client) = connected().await;
    let dir = TempDir::new("set-metadata");
    let file = dir.join("f");
    std::fs::write(&file, b"x").expect("write");
    let path = dir.text("f");

    let params = json!({"path": path, "mode": 0o4751, "modifiedAtMs": 1_000_000_000_123_i64, "accessedAtMs": -1500});
    client
        .call("fs/setMetadata", params)
        .await
        .expect("fs/setMetadata");
    let meta = std::fs::metadata(&file).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o4751);
    let got = client
        .call("fs/getMetadata", json!({"path": path}))
        .await
        .expect("fs/getMetadata");
    assert_eq!(got["mode"], json!(0o4751));
    assert_eq!(got["modifiedAtMs"], json!(1_000_000_000_123_i64));
    assert_eq!(got["accessedAtMs"], json!(-1500));

    // Only the mode: the times stay.
    client
        .call("fs/setMetadata", json!({"path": path, "mode": 0o600}))
        .await
        .expect("fs/setMetadata mode");
    let got = client
        .call("fs/getMetadata", json!({"path": path}))
        .await
        .expect("fs/getMetadata");
    assert_eq!(got["mode"], json!(0o600));
    assert_eq!(got["modifiedAtMs"], json!(1_000_000_000_123_i64));
}

#[tokio::test]
async fn bad_set_metadata_requests_are_refused_by_name() {
    let (_server, mut client) = connected().await;
    let dir = TempDir::new("set-metadata-bad");
    std::fs::write(dir.join("f"), b"x").expect("write");
    let path = dir.text("f");

    let error = client
        .call_expect_error("fs/setMetadata", json!({"path": path, "mode": 0o10000}))
        .await;
    assert_error(
        &error,
        INVALID_PARAMS,
        &["mode", "0o10000"],
        "mode too wide",
    );
    let error = client
        .call_expect_error("fs/setMetadata", json!({"path": path}))
        .await;
    assert_error(
        &error,
        INVALID_PARAMS,
        &["nothing to set"],
        "nothing to set",
    );
    let missing = dir.text("missing");
    let error = client
        .call_expect_error("fs/setMetadata", json!({"path": missing, "mode": 0o644}))
        .await;
    assert_error(&error, NOT_FOUND, &[&missing], "missing path");
    let error = client
        .call_expect_error("fs/setMetadata", json!({"path": "relative", "mode": 0o644}))
        .await;
    assert_error(&error, INVALID_PARAMS, &["relative"], "relative path");
    // The connection goes on.
    client
        .call("fs/setMetadata", json!({"path": path, "mode": 0o644}))
        .await
        .expect("fs/setMetadata after errors");
}
