mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

const NOT_FOUND: i64 = -32004;
const INVALID_PARAMS: i64 = -32602;

/// A unique scratch directory for one test, removed when dropped (also on panic).
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new(test: &str) -> Scratch {
        let root = std::env::temp_dir().join(format!(
            "execd-fs-{test}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create scratch dir");
        Scratch { root }
    }

    /// Absolute path of `name` inside the scratch directory, as a string.
    fn path(&self, name: &str) -> String {
        self.root
            .join(name)
            .to_str()
            .expect("utf-8 path")
            .to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// `len` pseudo-random bytes from a xorshift64 generator.
fn random_bytes(len: usize, mut state: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn code(error: &Value) -> i64 {
    error["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("error without integer code: {error}"))
}

fn message(error: &Value) -> String {
    error["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error without message: {error}"))
        .to_string()
}

/// Assert `error` has `expected` code and a message containing every needle.
fn assert_error(error: &Value, expected: i64, needles: &[&str]) {
    assert_eq!(code(error), expected, "unexpected error code: {error}");
    let text = message(error);
    for needle in needles {
        assert!(
            text.contains(needle),
            "error message {text:?} does not mention {needle:?}"
        );
    }
}

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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn write_and_read_file_round_trip() {
    let scratch = Scratch::new("write_and_read_file_round_trip");
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;

    let path = scratch.path("hello.txt");
    write_file(&mut client, &path, b"hello, world\n").await;
    assert_eq!(read_file(&mut client, &path).await, b"hello, world\n");
    assert_eq!(std::fs::read(&path).unwrap(), b"hello, world\n");

    // Overwriting with shorter data replaces (truncates) the file.
    write_file(&mut client, &path, b"bye").await;
    assert_eq!(read_file(&mut client, &path).await, b"bye");
    assert_eq!(std::fs::read(&path).unwrap(), b"bye");

    // An empty file round-trips as empty.
    let empty = scratch.path("empty");
    write_file(&mut client, &empty, b"").await;
    assert!(Path::new(&empty).is_file());
    assert_eq!(read_file(&mut client, &empty).await, b"");

    // A file written on disk directly is read back exactly.
    let external = scratch.path("external.bin");
    std::fs::write(&external, [0u8, 255, 10, 13, 0, 128]).unwrap();
    assert_eq!(
        read_file(&mut client, &external).await,
        [0u8, 255, 10, 13, 0, 128]
    );

    server.shutdown().await;
}

#[tokio::test]
async fn random_binary_round_trip_through_cat_and_read_file() {
    let scratch = Scratch::new("random_binary_round_trip");
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;

    let data = random_bytes(1024 * 1024 + 13, 0x9E37_79B9_7F4A_7C15);
    // Sanity: the data really is binary (contains NUL and non-UTF-8 bytes).
    assert!(data.contains(&0));
    assert!(std::str::from_utf8(&data).is_err());

    let path = scratch.path("random.bin");
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
    let scratch = Scratch::new("create_directory_recursive_and_not");
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;

    // Non-recursive with an existing parent.
    let single = scratch.path("single");
    let result = create_dir(&mut client, &single, false)
        .await
        .expect("non-recursive create");
    assert!(result.is_object(), "createDirectory result: {result}");
    assert!(Path::new(&single).is_dir());

    // Recursive creates every missing level.
    let deep = scratch.path("a/b/c");
    create_dir(&mut client, &deep, true)
        .await
        .expect("recursive create");
    assert!(Path::new(&deep).is_dir());
    assert!(Path::new(&scratch.path("a/b")).is_dir());

    // Recursive on an existing directory succeeds.
    create_dir(&mut client, &deep, true)
        .await
        .expect("recursive create of an existing directory");

    // `recursive` is optional (defaults to non-recursive).
    let defaulted = scratch.path("defaulted");
    client
        .call("fs/createDirectory", json!({"path": defaulted}))
        .await
        .expect("createDirectory without recursive");
    assert!(Path::new(&defaulted).is_dir());

    // Non-recursive with a missing parent fails and creates nothing.
    let orphan = scratch.path("missing-parent/child");
    let error = create_dir(&mut client, &orphan, false)
        .await
        .expect_err("non-recursive create with a missing parent");
    assert_error(&error, NOT_FOUND, &[&orphan]);
    assert!(!Path::new(&scratch.path("missing-parent")).exists());

    let error = client
        .call("fs/createDirectory", json!({"path": orphan}))
        .await
        .expect_err("defaulted (non-recursive) create with a missing parent");
    assert_eq!(code(&error), NOT_FOUND, "{error}");
    assert!(!Path::new(&scratch.path("missing-parent")).exists());

    server.shutdown().await;
}

#[tokio::test]
async fn get_metadata_of_file_dir_and_symlink() {
    let scratch = Scratch::new("get_metadata_of_file_dir_and_symlink");
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;

    let file = scratch.path("file.txt");
    std::fs::write(&file, b"12345").unwrap();
    let dir = scratch.path("dir");
    std::fs::create_dir(&dir).unwrap();
    let link = scratch.path("link");
    std::os::unix::fs::symlink(&file, &link).unwrap();

    let now = now_ms();
    let day = 24 * 60 * 60 * 1000;

    let meta = metadata(&mut client, &file).await;
    assert_eq!(meta["isFile"], json!(true), "{meta}");
    assert_eq!(meta["isDirectory"], json!(false), "{meta}");
    assert_eq!(meta["isSymlink"], json!(false), "{meta}");
    let modified = meta["modifiedAtMs"].as_i64().expect("modifiedAtMs");
    assert!(modified > 0, "{meta}");
    assert!((modified - now).abs() < day, "implausible mtime: {meta}");
    assert!(meta["createdAtMs"].is_i64(), "createdAtMs: {meta}");

    let meta = metadata(&mut client, &dir).await;
    assert_eq!(meta["isFile"], json!(false), "{meta}");
    assert_eq!(meta["isDirectory"], json!(true), "{meta}");
    assert_eq!(meta["isSymlink"], json!(false), "{meta}");
    let modified = meta["modifiedAtMs"].as_i64().expect("modifiedAtMs");
    assert!(modified > 0, "{meta}");
    assert!((modified - now).abs() < day, "implausible mtime: {meta}");

    // The symlink itself is reported as one; its kind is the target's.
    let meta = metadata(&mut client, &link).await;
    assert_eq!(meta["isSymlink"], json!(true), "{meta}");
    assert_eq!(meta["isDirectory"], json!(false), "{meta}");
    assert_eq!(meta["isFile"], json!(true), "{meta}");
    assert!(meta["modifiedAtMs"].as_i64().expect("modifiedAtMs") > 0);

    // A symlink to a directory.
    let dir_link = scratch.path("dir-link");
    std::os::unix::fs::symlink(&dir, &dir_link).unwrap();
    let meta = metadata(&mut client, &dir_link).await;
    assert_eq!(meta["isSymlink"], json!(true), "{meta}");
    assert_eq!(meta["isDirectory"], json!(true), "{meta}");
    assert_eq!(meta["isFile"], json!(false), "{meta}");

    server.shutdown().await;
}

#[tokio::test]
async fn read_directory_lists_sorted_entries() {
    let scratch = Scratch::new("read_directory_lists_sorted_entries");
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;

    let dir = scratch.path("listing");
    std::fs::create_dir(&dir).unwrap();
    // Created in non-sorted order on purpose.
    std::fs::write(scratch.path("listing/zeta.txt"), b"z").unwrap();
    std::fs::create_dir(scratch.path("listing/beta")).unwrap();
    std::fs::write(scratch.path("listing/alpha.txt"), b"a").unwrap();
    std::fs::create_dir(scratch.path("listing/gamma")).unwrap();
    std::fs::write(scratch.path("listing/gamma/nested.txt"), b"n").unwrap();

    let result = client
        .call("fs/readDirectory", json!({"path": dir}))
        .await
        .expect("fs/readDirectory");
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
    let empty = scratch.path("listing/beta");
    let result = client
        .call("fs/readDirectory", json!({"path": empty}))
        .await
        .expect("fs/readDirectory of an empty dir");
    assert_eq!(result["entries"], json!([]), "{result}");

    server.shutdown().await;
}

#[tokio::test]
async fn remove_files_and_directories() {
    let scratch = Scratch::new("remove_files_and_directories");
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;

    // A file.
    let file = scratch.path("file.txt");
    std::fs::write(&file, b"x").unwrap();
    let result = client
        .call(
            "fs/remove",
            json!({"path": file, "recursive": false, "force": false}),
        )
        .await
        .expect("remove a file");
    assert!(result.is_object(), "remove result: {result}");
    assert!(!Path::new(&file).exists());

    // An empty directory, without recursive.
    let empty = scratch.path("empty");
    std::fs::create_dir(&empty).unwrap();
    client
        .call(
            "fs/remove",
            json!({"path": empty, "recursive": false, "force": false}),
        )
        .await
        .expect("remove an empty dir");
    assert!(!Path::new(&empty).exists());

    // A non-empty directory without recursive is an error and nothing goes.
    let full = scratch.path("full");
    std::fs::create_dir_all(scratch.path("full/sub")).unwrap();
    std::fs::write(scratch.path("full/sub/inner.txt"), b"inner").unwrap();
    let error = client
        .call(
            "fs/remove",
            json!({"path": full, "recursive": false, "force": false}),
        )
        .await
        .expect_err("removing a non-empty dir without recursive");
    assert!(message(&error).contains(&full), "{error}");
    assert_eq!(
        std::fs::read(scratch.path("full/sub/inner.txt")).unwrap(),
        b"inner"
    );

    // With recursive it goes, contents and all.
    client
        .call(
            "fs/remove",
            json!({"path": full, "recursive": true, "force": false}),
        )
        .await
        .expect("recursive remove");
    assert!(!Path::new(&full).exists());

    // A missing path: error -32004 naming it without force, success with force.
    let missing = scratch.path("never-existed");
    let error = client
        .call(
            "fs/remove",
            json!({"path": missing, "recursive": false, "force": false}),
        )
        .await
        .expect_err("removing a missing path without force");
    assert_error(&error, NOT_FOUND, &[&missing]);
    let result = client
        .call(
            "fs/remove",
            json!({"path": missing, "recursive": true, "force": true}),
        )
        .await
        .expect("force remove of a missing path");
    assert!(result.is_object(), "remove result: {result}");

    // Removing a symlink to a directory, even recursively, removes only the link.
    let target = scratch.path("target");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(scratch.path("target/keep.txt"), b"keep").unwrap();
    let link = scratch.path("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    client
        .call(
            "fs/remove",
            json!({"path": link, "recursive": true, "force": false}),
        )
        .await
        .expect("remove a symlink");
    assert!(
        std::fs::symlink_metadata(&link).is_err(),
        "link still there"
    );
    assert_eq!(
        std::fs::read(scratch.path("target/keep.txt")).unwrap(),
        b"keep"
    );

    server.shutdown().await;
}

#[tokio::test]
async fn copy_file_and_directory_tree() {
    let scratch = Scratch::new("copy_file_and_directory_tree");
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;

    // A single file.
    let source = scratch.path("source.bin");
    let data = random_bytes(70_000, 42);
    std::fs::write(&source, &data).unwrap();
    let destination = scratch.path("copy.bin");
    let result = client
        .call(
            "fs/copy",
            json!({"sourcePath": source, "destinationPath": destination, "recursive": false}),
        )
        .await
        .expect("copy a file");
    assert!(result.is_object(), "copy result: {result}");
    assert!(read_file(&mut client, &destination).await == data);
    assert!(std::fs::read(&source).unwrap() == data, "source changed");

    // A tree.
    let tree = scratch.path("tree");
    std::fs::create_dir_all(scratch.path("tree/a/b")).unwrap();
    std::fs::create_dir_all(scratch.path("tree/empty")).unwrap();
    std::fs::write(scratch.path("tree/top.txt"), b"top").unwrap();
    std::fs::write(scratch.path("tree/a/mid.txt"), b"mid").unwrap();
    std::fs::write(scratch.path("tree/a/b/deep.bin"), &data[..1000]).unwrap();

    // Without recursive: an error, and nothing is created.
    let tree_copy = scratch.path("tree-copy");
    let error = client
        .call(
            "fs/copy",
            json!({"sourcePath": tree, "destinationPath": tree_copy, "recursive": false}),
        )
        .await
        .expect_err("copying a directory without recursive");
    assert!(message(&error).contains(&tree), "{error}");
    assert!(!Path::new(&tree_copy).exists());

    // With recursive the whole tree is copied.
    client
        .call(
            "fs/copy",
            json!({"sourcePath": tree, "destinationPath": tree_copy, "recursive": true}),
        )
        .await
        .expect("recursive copy");
    assert_eq!(
        read_file(&mut client, &scratch.path("tree-copy/top.txt")).await,
        b"top"
    );
    assert_eq!(
        read_file(&mut client, &scratch.path("tree-copy/a/mid.txt")).await,
        b"mid"
    );
    assert!(read_file(&mut client, &scratch.path("tree-copy/a/b/deep.bin")).await == data[..1000]);
    assert!(Path::new(&scratch.path("tree-copy/empty")).is_dir());
    let listing = client
        .call("fs/readDirectory", json!({"path": tree_copy}))
        .await
        .expect("readDirectory of the copy");
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["fileName"].as_str().expect("fileName"))
        .collect();
    assert_eq!(names, ["a", "empty", "top.txt"], "{listing}");
    // The source is untouched.
    assert_eq!(
        std::fs::read(scratch.path("tree/a/mid.txt")).unwrap(),
        b"mid"
    );

    // A missing source is -32004 naming it.
    let missing = scratch.path("no-such-source");
    let error = client
        .call(
            "fs/copy",
            json!({"sourcePath": missing, "destinationPath": scratch.path("x"), "recursive": true}),
        )
        .await
        .expect_err("copying a missing source");
    assert_error(&error, NOT_FOUND, &[&missing]);

    server.shutdown().await;
}

#[tokio::test]
async fn missing_paths_give_not_found_naming_the_path() {
    let scratch = Scratch::new("missing_paths_give_not_found");
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;

    let missing = scratch.path("nope/not-here");
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
        let error = client
            .call(method, params)
            .await
            .expect_err(&format!("{method} on a missing path"));
        assert_eq!(code(&error), NOT_FOUND, "{method}: {error}");
        assert!(message(&error).contains(&missing), "{method}: {error}");
    }
    assert!(!Path::new(&scratch.path("nope")).exists());

    // The connection still works.
    let ok = scratch.path("ok.txt");
    write_file(&mut client, &ok, b"still alive").await;
    assert_eq!(read_file(&mut client, &ok).await, b"still alive");

    server.shutdown().await;
}

#[tokio::test]
async fn relative_paths_are_invalid_params_naming_the_path() {
    let scratch = Scratch::new("relative_paths_are_invalid_params");
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;

    let relative = "relative-dir/some-file.txt";
    let absolute = scratch.path("abs.txt");
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
            json!({"sourcePath": relative, "destinationPath": scratch.path("dst"), "recursive": true}),
        ),
        (
            "fs/copy",
            json!({"sourcePath": absolute, "destinationPath": relative, "recursive": false}),
        ),
    ];
    for (method, params) in cases {
        let error = client
            .call(method, params.clone())
            .await
            .expect_err(&format!("{method} with a relative path: {params}"));
        assert_eq!(code(&error), INVALID_PARAMS, "{method} {params}: {error}");
        assert!(
            message(&error).contains(relative),
            "{method} {params}: {error}"
        );
    }
    assert!(!Path::new(&scratch.path("dst")).exists());

    // The connection still works.
    assert_eq!(read_file(&mut client, &absolute).await, b"abs");

    server.shutdown().await;
}

#[tokio::test]
async fn invalid_base64_is_invalid_params() {
    let scratch = Scratch::new("invalid_base64_is_invalid_params");
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;

    let path = scratch.path("bad.bin");
    for bad in ["not base64!!", "abc", "@@@@"] {
        let error = client
            .call("fs/writeFile", json!({"path": path, "dataBase64": bad}))
            .await
            .expect_err(&format!("writeFile with dataBase64 {bad:?}"));
        assert_error(&error, INVALID_PARAMS, &["dataBase64"]);
        assert!(!Path::new(&path).exists(), "file created from bad base64");
    }

    // The connection still works.
    write_file(&mut client, &path, b"good").await;
    assert_eq!(read_file(&mut client, &path).await, b"good");

    server.shutdown().await;
}

#[tokio::test]
async fn missing_required_fields_are_invalid_params_naming_the_field() {
    let scratch = Scratch::new("missing_required_fields");
    let server = start_server().await;
    let mut client = Client::connect_initialized(&server.url()).await;

    let path = scratch.path("f.txt");
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
            json!({"destinationPath": scratch.path("d"), "recursive": true}),
            "sourcePath",
        ),
        (
            "fs/copy",
            json!({"sourcePath": path, "recursive": true}),
            "destinationPath",
        ),
    ];
    for (method, params, field) in cases {
        let error = client
            .call(method, params.clone())
            .await
            .expect_err(&format!("{method} without {field}: {params}"));
        assert_eq!(code(&error), INVALID_PARAMS, "{method} {params}: {error}");
        assert!(
            message(&error).contains(field),
            "{method} {params}: message does not name {field}: {error}"
        );
    }
    assert!(!Path::new(&path).exists());

    // The connection still works.
    write_file(&mut client, &path, b"fine").await;
    let meta = metadata(&mut client, &path).await;
    assert_eq!(meta["isFile"], json!(true), "{meta}");

    server.shutdown().await;
}
