//! The filesystem side of today's codex dialect over a real socket: the
//! seed `fs/*` methods with `file://` paths (and `"sandbox": null`, as codex
//! sends them), `fs/open` / `fs/readBlock` / `fs/close` with their bounds,
//! `fs/canonicalize`, `fs/walk`, and `fs/watchMissing` with its one-shot
//! `fs/missingChanged` notification.

use std::path::Path;
use std::time::Duration;

use execd_server::ServerConfig;
use execd_test_support::wire::assert_error;
use execd_test_support::{b64, noise, start_server, start_server_with, unb64, Client, TempDir};
use serde_json::{json, Value};

fn uri(path: &Path) -> String {
    execd_protocol::path_uri::to_uri(path)
}

#[tokio::test]
async fn seed_fs_methods_take_file_uris() {
    let server = start_server().await;
    let mut client = Client::connect_as_codex(&server.url()).await.0;
    let dir = TempDir::new("fs uri");
    let file = dir.join("a b é.txt");
    let file_uri = uri(&file);
    assert!(file_uri.contains("%20"), "{file_uri}");
    client
        .call(
            "fs/writeFile",
            json!({"path": file_uri, "dataBase64": b64(b"hello"), "sandbox": null}),
        )
        .await
        .expect("writeFile");
    assert_eq!(std::fs::read(&file).unwrap(), b"hello");
    let read = client
        .call("fs/readFile", json!({"path": file_uri, "sandbox": null}))
        .await
        .expect("readFile");
    assert_eq!(unb64(&read["dataBase64"]), b"hello");
    let meta = client
        .call("fs/getMetadata", json!({"path": file_uri, "sandbox": null}))
        .await
        .expect("getMetadata");
    assert_eq!(
        (meta["isFile"].clone(), meta["size"].clone()),
        (json!(true), json!(5))
    );
    let sub = uri(&dir.join("sub"));
    client
        .call(
            "fs/createDirectory",
            json!({"path": sub, "recursive": true, "sandbox": null}),
        )
        .await
        .expect("createDirectory");
    client
        .call(
            "fs/copy",
            json!({"sourcePath": file_uri, "destinationPath": format!("{sub}/c"),
                                "recursive": false, "sandbox": null}),
        )
        .await
        .expect("copy");
    let listing = client
        .call("fs/readDirectory", json!({"path": sub, "sandbox": null}))
        .await
        .expect("readDirectory");
    assert_eq!(listing["entries"][0]["fileName"], "c");
    client
        .call(
            "fs/remove",
            json!({"path": sub, "recursive": true, "force": false, "sandbox": null}),
        )
        .await
        .expect("remove");
    assert!(!dir.join("sub").exists());

    // As codex probes for .git: a missing path is -32004, naming it.
    let missing = dir.join(".git");
    let err = client
        .call_expect_error(
            "fs/getMetadata",
            json!({"path": uri(&missing), "sandbox": null}),
        )
        .await;
    assert_error(&err, -32004, &[".git"], "missing");
    let err = client
        .call_expect_error(
            "fs/readFile",
            json!({"path": "ftp://host/x", "sandbox": null}),
        )
        .await;
    assert_error(&err, -32602, &["path", "ftp://host/x"], "scheme");
    // Plain paths keep working on the same connection.
    client
        .call(
            "fs/getMetadata",
            json!({"path": file.display().to_string()}),
        )
        .await
        .expect("plain path");
}

#[tokio::test]
async fn fs_writes_under_a_codex_sandbox_stay_in_its_writable_roots() {
    let server = start_server().await;
    let mut client = Client::connect_as_codex(&server.url()).await.0;
    let work = TempDir::new("fsbox");
    let outside = TempDir::new("fsbox-out");
    let sandbox = json!({
        "permissions": {"type": "managed", "network": "restricted", "file_system": {"type": "restricted",
            "entries": [{"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"},
                        {"path": {"type": "special", "value": {"kind": "project_roots"}}, "access": "write"}]}},
        "cwd": uri(work.path()), "workspaceRoots": [uri(work.path())], "windowsSandboxLevel": "disabled"
    });
    client
        .call(
            "fs/writeFile",
            json!({"path": uri(&work.join("in")), "dataBase64": b64(b"x"), "sandbox": sandbox}),
        )
        .await
        .expect("inside the root");
    let target = outside.join("out");
    let err = client
        .call_expect_error(
            "fs/writeFile",
            json!({"path": uri(&target), "dataBase64": b64(b"x"), "sandbox": sandbox}),
        )
        .await;
    assert_error(&err, -32602, &["not writable", "out"], "outside the root");
    assert!(!target.exists());
    client
        .call(
            "fs/readFile",
            json!({"path": uri(&work.join("in")), "sandbox": sandbox}),
        )
        .await
        .expect("reads are allowed");
}

#[tokio::test]
async fn open_read_block_close_with_bounds() {
    let mut config = ServerConfig::default();
    config.codex.max_open_files = 2;
    config.codex.max_read_block = 4096;
    let server = start_server_with(config).await;
    let mut client = Client::connect_as_codex(&server.url()).await.0;
    let dir = TempDir::new("blocks");
    let data = noise(10_000, 7);
    let file = dir.join("data.bin");
    std::fs::write(&file, &data).unwrap();
    let opened = client
        .call(
            "fs/open",
            json!({"handleId": "h1", "path": uri(&file), "sandbox": null}),
        )
        .await
        .expect("open");
    assert_eq!(opened, json!({"handleId": "h1"}));
    let mut got = Vec::new();
    loop {
        let block = client
            .call(
                "fs/readBlock",
                json!({"handleId": "h1", "offset": got.len(), "len": 4096}),
            )
            .await
            .expect("readBlock");
        got.extend(unb64(&block["chunk"]));
        if block["eof"] == true {
            break;
        }
        assert!(got.len() < data.len(), "eof must come with the last block");
    }
    assert_eq!(got, data);

    let err = client
        .call_expect_error(
            "fs/readBlock",
            json!({"handleId": "h1", "offset": 0, "len": 4097}),
        )
        .await;
    assert_error(&err, -32602, &["4097", "4096"], "block too large");
    let err = client
        .call_expect_error(
            "fs/readBlock",
            json!({"handleId": "h1", "offset": 0, "len": 0}),
        )
        .await;
    assert_error(&err, -32602, &["between 1 and 4096"], "empty block");
    let err = client
        .call_expect_error(
            "fs/readBlock",
            json!({"handleId": "nope", "offset": 0, "len": 1}),
        )
        .await;
    assert_error(&err, -32600, &["nope"], "unknown handle");

    client
        .call(
            "fs/open",
            json!({"handleId": "h2", "path": uri(&file), "sandbox": null}),
        )
        .await
        .expect("second handle");
    let err = client
        .call_expect_error(
            "fs/open",
            json!({"handleId": "h3", "path": uri(&file), "sandbox": null}),
        )
        .await;
    assert_error(
        &err,
        -32600,
        &["the limit is 2", "--max-open-files"],
        "too many open",
    );
    assert_eq!(err["data"], json!({"limit": "maxOpenFiles", "value": 2}));
    for _ in 0..2 {
        assert_eq!(
            client
                .call("fs/close", json!({"handleId": "h1"}))
                .await
                .expect("close"),
            json!({})
        );
    }
    client
        .call(
            "fs/open",
            json!({"handleId": "h3", "path": uri(&file), "sandbox": null}),
        )
        .await
        .expect("a slot is free again");
    let err = client
        .call_expect_error(
            "fs/open",
            json!({"handleId": "h4", "path": uri(&dir.join("none")), "sandbox": null}),
        )
        .await;
    assert_error(&err, -32600, &["the limit is 2"], "still full");
    client
        .call("fs/close", json!({"handleId": "h3"}))
        .await
        .expect("close");
    let err = client
        .call_expect_error(
            "fs/open",
            json!({"handleId": "h4", "path": uri(&dir.join("none")), "sandbox": null}),
        )
        .await;
    assert_error(&err, -32004, &["none"], "missing file");
}

#[tokio::test]
async fn canonicalize_and_walk_answer_in_uris() {
    let server = start_server().await;
    let mut client = Client::connect_as_codex(&server.url()).await.0;
    let dir = TempDir::new("walk");
    std::fs::create_dir_all(dir.join("a/b")).unwrap();
    std::fs::write(dir.join("a/f.txt"), "x").unwrap();
    std::os::unix::fs::symlink("a", dir.join("link")).unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();

    let canon = client
        .call(
            "fs/canonicalize",
            json!({"path": uri(&dir.join("link/./b/..")), "sandbox": null}),
        )
        .await
        .expect("canonicalize");
    assert_eq!(canon["path"], json!(uri(&root.join("a"))));
    let plain = client
        .call(
            "fs/canonicalize",
            json!({"path": dir.join("link").display().to_string()}),
        )
        .await
        .expect("plain");
    assert_eq!(plain["path"], json!(root.join("a").display().to_string()));

    let options = |depth: u32, dirs: u64, entries: u64| json!({"maxDepth": depth, "maxDirectories": dirs, "maxEntries": entries, "followDirectorySymlinks": false});
    let walked = client
        .call(
            "fs/walk",
            json!({"path": uri(&root), "options": options(5, 10, 100), "sandbox": null}),
        )
        .await
        .expect("walk");
    let expected: Vec<Value> = [
        ("a", "directory"),
        ("a/b", "directory"),
        ("a/f.txt", "file"),
    ]
    .iter()
    .map(|(p, k)| json!({"path": uri(&root.join(p)), "kind": k}))
    .collect();
    assert_eq!(
        walked,
        json!({"entries": expected, "errors": [], "truncated": false})
    );
    let cut = client
        .call(
            "fs/walk",
            json!({"path": uri(&root), "options": options(5, 1, 100), "sandbox": null}),
        )
        .await
        .expect("walk");
    assert_eq!(cut["truncated"], true);
    assert_eq!(cut["entries"].as_array().unwrap().len(), 1);
    let err = client
        .call_expect_error(
            "fs/walk",
            json!({"path": uri(&root), "options": options(0, 1, 1)}),
        )
        .await;
    assert_error(&err, -32602, &["at least 1"], "zero limit");
    let err = client
        .call_expect_error(
            "fs/walk",
            json!({"path": uri(&root.join("nope")), "options": options(1, 1, 1)}),
        )
        .await;
    assert_error(&err, -32004, &["nope"], "missing root");
}

/// Read frames until `fs/missingChanged` (each read bounded by the client).
async fn next_missing_changed(client: &mut Client) -> Value {
    loop {
        let frame = client.recv_frame().await;
        if frame["method"] == "fs/missingChanged" {
            return frame["params"].clone();
        }
    }
}

#[tokio::test]
async fn watch_missing_notifies_once_when_a_path_appears() {
    let mut config = ServerConfig::default();
    config.codex.max_watches = 2;
    config.codex.max_watch_paths = 3;
    config.codex.watch_interval = Duration::from_millis(20);
    let server = start_server_with(config).await;
    let mut client = Client::connect_as_codex(&server.url()).await.0;
    let dir = TempDir::new("watch");
    let git = dir.join(".git");
    let params =
        json!({"watchId": 1, "missing": [uri(&git), uri(&dir.join("other"))], "present": null});
    let set = client
        .call("fs/watchMissing", params.clone())
        .await
        .expect("watch");
    assert_eq!(set, json!({"watching": true}));
    let again = client
        .call("fs/watchMissing", params)
        .await
        .expect("same id");
    assert_eq!(again, json!({"watching": false}), "the id is in use");

    std::fs::create_dir(&git).unwrap();
    assert_eq!(
        next_missing_changed(&mut client).await,
        json!({"watchId": 1})
    );

    // The state already differs from what the client saw: no watch.
    let stale = client
        .call(
            "fs/watchMissing",
            json!({"watchId": 2, "missing": [uri(&git)], "present": null}),
        )
        .await
        .expect("stale");
    assert_eq!(stale, json!({"watching": false}));
    // A present path going away fires too.
    let present = client
        .call(
            "fs/watchMissing",
            json!({"watchId": 3, "missing": [], "present": uri(&git)}),
        )
        .await
        .expect("present");
    assert_eq!(present, json!({"watching": true}));
    std::fs::remove_dir(&git).unwrap();
    assert_eq!(
        next_missing_changed(&mut client).await,
        json!({"watchId": 3})
    );

    // Bounds: paths per watch and watches per connection.
    let many: Vec<String> = (0..4).map(|i| uri(&dir.join(&format!("m{i}")))).collect();
    let err = client
        .call_expect_error(
            "fs/watchMissing",
            json!({"watchId": 4, "missing": many, "present": null}),
        )
        .await;
    assert_error(
        &err,
        -32600,
        &["4 paths", "the limit is 3", "--max-watch-paths"],
        "too many paths",
    );
    assert_eq!(err["data"], json!({"limit": "maxWatchPaths", "value": 3}));
    for id in [5, 6] {
        let ok = client
            .call(
                "fs/watchMissing",
                json!({"watchId": id, "missing": [uri(&dir.join("x"))], "present": null}),
            )
            .await
            .expect("watch");
        assert_eq!(ok["watching"], true);
    }
    let err = client
        .call_expect_error(
            "fs/watchMissing",
            json!({"watchId": 7, "missing": [uri(&dir.join("x"))], "present": null}),
        )
        .await;
    assert_error(
        &err,
        -32600,
        &["the limit is 2", "--max-watches"],
        "too many watches",
    );
    assert_eq!(err["data"], json!({"limit": "maxWatches", "value": 2}));
    let err = client
        .call_expect_error(
            "fs/watchMissing",
            json!({"watchId": 8, "missing": ["relative"], "present": null}),
        )
        .await;
    assert_error(&err, -32602, &["missing[0]", "relative"], "relative path");
}
