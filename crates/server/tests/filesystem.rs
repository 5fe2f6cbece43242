//! The `fs/*` methods over a real socket: files written, read, copied and
//! removed; directories created, listed and removed; metadata of files,
//! directories and symlinks; and the errors for missing or relative paths,
//! bad base64 and missing fields, each naming what is wrong.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use execd_test_support::wire::{assert_error, INVALID_PARAMS, NOT_FOUND};
use execd_test_support::*;
use serde_json::{json, Value};

async fn write_file(client: &mut Client, path: &str, data: &[u8]) {
    let result = client
        .call(
            "fs/writeFile",
            json!({"path": path, "dataBase64": b64(data)}),
        )
        .await
        .unwrap_or_else(|e| panic!("fs/writeFile {path}: {e}"));
    assert!(result.is_object(), "writeFile result: {result}");
}

async fn read_file(client: &mut Client, path: &str) -> Vec<u8> {
    let result = client
        .call("fs/readFile", json!({"path": path}))
        .await
        .unwrap_or_else(|e| panic!("fs/readFile {path}: {e}"));
    unb64(&result["dataBase64"])
}

async fn metadata(client: &mut Client, path: &str) -> Value {
    client
        .call("fs/getMetadata", json!({"path": path}))
        .await
        .unwrap_or_else(|e| panic!("fs/getMetadata {path}: {e}"))
}

async fn create_dir(client: &mut Client, path: &str, recursive: bool) -> Result<Value, Value> {
    client
        .call(
            "fs/createDirectory",
            json!({"path": path, "recursive": recursive}),
        )
        .await
}

async fn remove(
    client: &mut Client,
    path: &str,
    recursive: bool,
    force: bool,
) -> Result<Value, Value> {
    let params = json!({"path": path, "recursive": recursive, "force": force});
    client.call("fs/remove", params).await
}

async fn copy(
    client: &mut Client,
    source: &str,
    destination: &str,
    recursive: bool,
) -> Result<Value, Value> {
    let params =
        json!({"sourcePath": source, "destinationPath": destination, "recursive": recursive});
    client.call("fs/copy", params).await
}

/// Write `data` to `path`, and read the same bytes back.
async fn round_trip(client: &mut Client, path: &str, data: &[u8]) {
    write_file(client, path, data).await;
    assert_eq!(read_file(client, path).await, data, "read back from {path}");
}

async fn list(client: &mut Client, path: &str) -> Value {
    client
        .call("fs/readDirectory", json!({"path": path}))
        .await
        .unwrap_or_else(|e| panic!("fs/readDirectory {path}: {e}"))
}

/// An `fs/getMetadata` result says: a file? a directory? a symlink?
fn assert_kind(meta: &Value, file: bool, directory: bool, symlink: bool) {
    let kind = (&meta["isFile"], &meta["isDirectory"], &meta["isSymlink"]);
    let expected = (&json!(file), &json!(directory), &json!(symlink));
    assert_eq!(kind, expected, "{meta}");
}

/// An `fs/getMetadata` result's mtime is set, and within a day of `now`.
fn assert_recent_mtime(meta: &Value, now: i64) {
    let day = 24 * 60 * 60 * 1000;
    let modified = meta["modifiedAtMs"].as_i64().expect("modifiedAtMs");
    assert!(modified > 0, "{meta}");
    assert!((modified - now).abs() < day, "implausible mtime: {meta}");
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn write_and_read_file_round_trip() {
    let scratch = TempDir::new("write_and_read_file_round_trip");
    let (server, mut client) = connected().await;

    let path = scratch.text("hello.txt");
    round_trip(&mut client, &path, b"hello, world\n").await;
    assert_eq!(std::fs::read(&path).unwrap(), b"hello, world\n");

    // Overwriting with shorter data replaces (truncates) the file.
    round_trip(&mut client, &path, b"bye").await;
    assert_eq!(std::fs::read(&path).unwrap(), b"bye");

    // An empty file round-trips as empty.
    let empty = scratch.text("empty");
    write_file(&mut client, &empty, b"").await;
    assert!(Path::new(&empty).is_file());
    assert_eq!(read_file(&mut client, &empty).await, b"");

    // A file written on disk directly is read back exactly.
    let external = scratch.text("external.bin");
    std::fs::write(&external, [0u8, 255, 10, 13, 0, 128]).unwrap();
    assert_eq!(
        read_file(&mut client, &external).await,
        [0u8, 255, 10, 13, 0, 128]
    );

    server.shutdown().await;
}

#[tokio::test]
async fn random_binary_round_trip_through_cat_and_read_file() {
    let scratch = TempDir::new("random_binary_round_trip");
    let (server, mut client) = connected().await;

    let data = noise(1024 * 1024 + 13, 0x9E37_79B9_7F4A_7C15);
    // Sanity: the data really is binary (contains NUL and non-UTF-8 bytes).
    assert!(data.contains(&0));
    assert!(std::str::from_utf8(&data).is_err());

    let path = scratch.text("random.bin");
    write_file(&mut client, &path, &data).await;
    assert_eq!(std::fs::metadata(&path).unwrap().len(), data.len() as u64);

    let out = client.run("cat-random", &["cat", &path]).await;
    assert_eq!(out.exit_code, Some(0), "cat stderr: {}", out.stderr_str());
    assert!(out.stderr.is_empty(), "cat stderr: {}", out.stderr_str());
    assert_eq!(out.stdout.len(), data.len(), "cat output length");
    assert!(
        out.stdout == data,
        "cat output differs from the written bytes"
    );

    let back = read_file(&mut client, &path).await;
    assert_eq!(back.len(), data.len(), "fs/readFile length");
    assert!(back == data, "fs/readFile differs from the written bytes");

    server.shutdown().await;
}

#[tokio::test]
async fn create_directory_recursive_and_not() {
    let scratch = TempDir::new("create_directory_recursive_and_not");
    let (server, mut client) = connected().await;

    // Non-recursive with an existing parent.
    let single = scratch.text("single");
    let result = create_dir(&mut client, &single, false)
        .await
        .expect("non-recursive create");
    assert!(result.is_object(), "createDirectory result: {result}");
    assert!(Path::new(&single).is_dir());

    // Recursive creates every missing level.
    let deep = scratch.text("a/b/c");
    create_dir(&mut client, &deep, true)
        .await
        .expect("recursive create");
    assert!(Path::new(&deep).is_dir());
    assert!(Path::new(&scratch.text("a/b")).is_dir());

    // Recursive on an existing directory succeeds.
    create_dir(&mut client, &deep, true)
        .await
        .expect("recursive create of an existing directory");

    // `recursive` is optional (defaults to non-recursive).
    let defaulted = scratch.text("defaulted");
    client
        .call("fs/createDirectory", json!({"path": defaulted}))
        .await
        .expect("createDirectory without recursive");
    assert!(Path::new(&defaulted).is_dir());

    // Non-recursive with a missing parent fails and creates nothing.
    let orphan = scratch.text("missing-parent/child");
    let error = create_dir(&mut client, &orphan, false)
        .await
        .expect_err("non-recursive create with a missing parent");
    assert_error(&error, NOT_FOUND, &[&orphan], "");
    assert!(!Path::new(&scratch.text("missing-parent")).exists());

    let error = client
        .call("fs/createDirectory", json!({"path": orphan}))
        .await
        .expect_err("defaulted (non-recursive) create with a missing parent");
    assert_eq!(error["code"], json!(NOT_FOUND), "{error}");
    assert!(!Path::new(&scratch.text("missing-parent")).exists());

    server.shutdown().await;
}

#[tokio::test]
async fn get_metadata_of_file_dir_and_symlink() {
    let scratch = TempDir::new("get_metadata_of_file_dir_and_symlink");
    let (server, mut client) = connected().await;

    let file = scratch.text("file.txt");
    std::fs::write(&file, b"12345").unwrap();
    let dir = scratch.text("dir");
    std::fs::create_dir(&dir).unwrap();
    let link = scratch.text("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();

    let now = now_ms();

    let meta = metadata(&mut client, &file).await;
    assert_kind(&meta, true, false, false);
    assert_recent_mtime(&meta, now);
    assert!(meta["createdAtMs"].is_i64(), "createdAtMs: {meta}");

    let meta = metadata(&mut client, &dir).await;
    assert_kind(&meta, false, true, false);
    assert_recent_mtime(&meta, now);

    // The symlink itself is reported as one; its kind is the target's.
    let meta = metadata(&mut client, &link).await;
    assert_kind(&meta, true, false, true);
    assert!(meta["modifiedAtMs"].as_i64().expect("modifiedAtMs") > 0);

    // A symlink to a directory.
    let dir_link = scratch.text("dir-link");
    std::os::unix::fs::symlink(&dir, &dir_link).unwrap();
    let meta = metadata(&mut client, &dir_link).await;
    assert_kind(&meta, false, true, true);

    server.shutdown().await;
}

#[tokio::test]
async fn read_directory_lists_sorted_entries() {
    let scratch = TempDir::new("read_directory_lists_sorted_entries");
    let (server, mut client) = connected().await;

    let dir = scratch.text("listing");
    std::fs::create_dir(&dir).unwrap();
    // Created in non-sorted order on purpose.
    std::fs::write(scratch.text("listing/zeta.txt"), b"z").unwrap();
    std::fs::create_dir(scratch.text("listing/beta")).unwrap();
    std::fs::write(scratch.text("listing/alpha.txt"), b"a").unwrap();
    std::fs::create_dir(scratch.text("listing/gamma")).unwrap();
    std::fs::write(scratch.text("listing/gamma/nested.txt"), b"n").unwrap();

    let result = list(&mut client, &dir).await;
    let entries = result["entries"].as_array().expect("entries array");
    let summary: Vec<(String, bool, bool)> = entries
        .iter()
        .map(|e| {
            (
                e["fileName"].as_str().expect("fileName").to_string(),
                e["isDirectory"].as_bool().expect("isDirectory"),
                e["isFile"].as_bool().expect("isFile"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("alpha.txt".to_string(), false, true),
            ("beta".to_string(), true, false),
            ("gamma".to_string(), true, false),
            ("zeta.txt".to_string(), false, true),
        ],
        "{result}"
    );

    // An empty directory has no entries.
    let empty = scratch.text("listing/beta");
    let result = list(&mut client, &empty).await;
    assert_eq!(result["entries"], json!([]), "{result}");

    server.shutdown().await;
}

#[tokio::test]
async fn remove_files_and_directories() {
    let scratch = TempDir::new("remove_files_and_directories");
    let (server, mut client) = connected().await;

    // A file.
    let file = scratch.text("file.txt");
    std::fs::write(&file, b"x").unwrap();
    let result = remove(&mut client, &file, false, false)
        .await
        .expect("remove a file");
    assert!(result.is_object(), "remove result: {result}");
    assert!(!Path::new(&file).exists());

    // An empty directory, without recursive.
    let empty = scratch.text("empty");
    std::fs::create_dir(&empty).unwrap();
    remove(&mut client, &empty, false, false)
        .await
        .expect("remove an empty dir");
    assert!(!Path::new(&empty).exists());

    // A non-empty directory without recursive is an error and nothing goes.
    let full = scratch.text("full");
    std::fs::create_dir_all(scratch.text("full/sub")).unwrap();
    std::fs::write(scratch.text("full/sub/inner.txt"), b"inner").unwrap();
    let error = remove(&mut client, &full, false, false)
        .await
        .expect_err("removing a non-empty dir without recursive");
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains(&full)),
        "{error}"
    );
    assert_eq!(
        std::fs::read(scratch.text("full/sub/inner.txt")).unwrap(),
        b"inner"
    );

    // With recursive it goes, contents and all.
    remove(&mut client, &full, true, false)
        .await
        .expect("recursive remove");
    assert!(!Path::new(&full).exists());

    // A missing path: error -32004 naming it without force, success with force.
    let missing = scratch.text("never-existed");
    let error = remove(&mut client, &missing, false, false)
        .await
        .expect_err("removing a missing path without force");
    assert_error(&error, NOT_FOUND, &[&missing], "");
    let result = remove(&mut client, &missing, true, true)
        .await
        .expect("force remove of a missing path");
    assert!(result.is_object(), "remove result: {result}");

    // Removing a symlink to a directory, even recursively, removes only the link.
    let target = scratch.text("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(scratch.text("target/keep.txt"), b"keep").unwrap();
    let link = scratch.text("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    remove(&mut client, &link, true, false)
        .await
        .expect("remove a symlink");
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "link still there"
    );
    assert_eq!(
        std::fs::read(scratch.text("target/keep.txt")).unwrap(),
        b"keep"
    );

    server.shutdown().await;
}

#[tokio::test]
async fn copy_file_and_directory_tree() {
    let scratch = TempDir::new("copy_file_and_directory_tree");
    let (server, mut client) = connected().await;

    // A single file.
    let source = scratch.text("source.bin");
    let data = noise(70_000, 42);
    std::fs::write(&source, &data).unwrap();
    let destination = scratch.text("copy.bin");
    let result = copy(&mut client, &source, &destination, false)
        .await
        .expect("copy a file");
    assert!(result.is_object(), "copy result: {result}");
    assert!(read_file(&mut client, &destination).await == data);
    assert!(std::fs::read(&source).unwrap() == data, "source changed");

    // A tree.
    let tree = scratch.text("tree");
    std::fs::create_dir_all(scratch.text("tree/a/b")).unwrap();
    std::fs::create_dir_all(scratch.text("tree/empty")).unwrap();
    std::fs::write(scratch.text("tree/top.txt"), b"top").unwrap();
    std::fs::write(scratch.text("tree/a/mid.txt"), b"mid").unwrap();
    std::fs::write(scratch.text("tree/a/b/deep.bin"), &data[..1000]).unwrap();

    // Without recursive: an error, and nothing is created.
    let tree_copy = scratch.text("tree-copy");
    let error = copy(&mut client, &tree, &tree_copy, false)
        .await
        .expect_err("copying a directory without recursive");
    assert!(
        error["message"].as_str().is_some_and(|m| m.contains(&tree)),
        "{error}"
    );
    assert!(!Path::new(&tree_copy).exists());

    // With recursive the whole tree is copied.
    copy(&mut client, &tree, &tree_copy, true)
        .await
        .expect("recursive copy");
    assert_eq!(
        read_file(&mut client, &scratch.text("tree-copy/top.txt")).await,
        b"top"
    );
    assert_eq!(
        read_file(&mut client, &scratch.text("tree-copy/a/mid.txt")).await,
        b"mid"
    );
    assert!(read_file(&mut client, &scratch.text("tree-copy/a/b/deep.bin")).await == data[..1000]);
    assert!(Path::new(&scratch.text("tree-copy/empty")).is_dir());
    let listing = list(&mut client, &tree_copy).await;
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["fileName"].as_str().expect("fileName"))
        .collect();
    assert_eq!(names, ["a", "empty", "top.txt"], "{listing}");
    // The source is untouched.
    assert_eq!(
        std::fs::read(scratch.text("tree/a/mid.txt")).unwrap(),
        b"mid"
    );

    // A missing source is -32004 naming it.
    let missing = scratch.text("no-such-source");
    let error = copy(&mut client, &missing, &scratch.text("x"), true)
        .await
        .expect_err("copying a missing source");
    assert_error(&error, NOT_FOUND, &[&missing], "");

    server.shutdown().await;
}

#[tokio::test]
async fn missing_paths_give_not_found_naming_the_path() {
    let scratch = TempDir::new("missing_paths_give_not_found");
    let (server, mut client) = connected().await;

    let missing = scratch.text("nope/not-here");
    let cases = [
        ("fs/readFile", json!({"path": missing})),
        ("fs/getMetadata", json!({"path": missing})),
        ("fs/readDirectory", json!({"path": missing})),
        (
            "fs/remove",
            json!({"path": missing, "recursive": true, "force": false}),
        ),
        (
            "fs/writeFile",
            json!({"path": missing, "dataBase64": b64(b"data")}),
        ),
        (
            "fs/createDirectory",
            json!({"path": missing, "recursive": false}),
        ),
    ];
    for (method, params) in cases {
        let error = client.call_expect_error(method, params).await;
        assert_error(&error, NOT_FOUND, &[&missing], method);
    }
    assert!(!Path::new(&scratch.text("nope")).exists());

    // The connection still works.
    let ok = scratch.text("ok.txt");
    round_trip(&mut client, &ok, b"still alive").await;

    server.shutdown().await;
}

#[tokio::test]
async fn relative_paths_are_invalid_params_naming_the_path() {
    let scratch = TempDir::new("relative_paths_are_invalid_params");
    let (server, mut client) = connected().await;

    let relative = "relative-dir/some-file.txt";
    let absolute = scratch.text("abs.txt");
    std::fs::write(&absolute, b"abs").unwrap();
    let cases = [
        ("fs/readFile", json!({"path": relative})),
        (
            "fs/writeFile",
            json!({"path": relative, "dataBase64": b64(b"x")}),
        ),
        (
            "fs/createDirectory",
            json!({"path": relative, "recursive": true}),
        ),
        ("fs/getMetadata", json!({"path": relative})),
        ("fs/readDirectory", json!({"path": relative})),
        (
            "fs/remove",
            json!({"path": relative, "recursive": true, "force": true}),
        ),
        (
            "fs/copy",
            json!({"sourcePath": relative, "destinationPath": scratch.text("dst"), "recursive": true}),
        ),
        (
            "fs/copy",
            json!({"sourcePath": absolute, "destinationPath": relative, "recursive": false}),
        ),
    ];
    for (method, params) in cases {
        let context = format!("{method} with a relative path: {params}");
        let error = client.call_expect_error(method, params).await;
        assert_error(&error, INVALID_PARAMS, &[relative], &context);
    }
    assert!(!Path::new(&scratch.text("dst")).exists());

    // The connection still works.
    assert_eq!(read_file(&mut client, &absolute).await, b"abs");

    server.shutdown().await;
}

#[tokio::test]
async fn invalid_base64_is_invalid_params() {
    let scratch = TempDir::new("invalid_base64_is_invalid_params");
    let (server, mut client) = connected().await;

    let path = scratch.text("bad.bin");
    for bad in ["not base64!!", "abc", "@@@@"] {
        let error = client
            .call("fs/writeFile", json!({"path": path, "dataBase64": bad}))
            .await
            .expect_err(&format!("writeFile with dataBase64 {bad:?}"));
        assert_error(&error, INVALID_PARAMS, &["dataBase64"], "");
        assert!(!Path::new(&path).exists(), "file created from bad base64");
    }

    // The connection still works.
    round_trip(&mut client, &path, b"good").await;

    server.shutdown().await;
}

#[tokio::test]
async fn missing_required_fields_are_invalid_params_naming_the_field() {
    let scratch = TempDir::new("missing_required_fields");
    let (server, mut client) = connected().await;

    let path = scratch.text("f.txt");
    let cases = [
        ("fs/readFile", json!({}), "path"),
        ("fs/getMetadata", json!({"recursive": true}), "path"),
        ("fs/readDirectory", json!({}), "path"),
        ("fs/createDirectory", json!({"recursive": true}), "path"),
        (
            "fs/remove",
            json!({"recursive": true, "force": true}),
            "path",
        ),
        ("fs/writeFile", json!({"dataBase64": b64(b"x")}), "path"),
        ("fs/writeFile", json!({"path": path}), "dataBase64"),
        (
            "fs/copy",
            json!({"destinationPath": scratch.text("d"), "recursive": true}),
            "sourcePath",
        ),
        (
            "fs/copy",
            json!({"sourcePath": path, "recursive": true}),
            "destinationPath",
        ),
    ];
    for (method, params, field) in cases {
        let context = format!("{method} without {field}: {params}");
        let error = client.call_expect_error(method, params).await;
        assert_error(&error, INVALID_PARAMS, &[field], &context);
    }
    assert!(!Path::new(&path).exists());

    // The connection still works.
    write_file(&mut client, &path, b"fine").await;
    let meta = metadata(&mut client, &path).await;
    assert_eq!(meta["isFile"], json!(true), "{meta}");

    server.shutdown().await;
}
