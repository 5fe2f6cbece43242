//! `execd cp -r -p` as one stream, through the built binary against a real
//! `execd serve`: a tree with symlinks (kept as links), an empty directory,
//! odd names, modes and times goes up and comes back the same; a copy into
//! a path whose parent is missing fails naming it and leaves nothing.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use execd_test_support::*;

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));

fn assert_exit(output: &std::process::Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn make(root: &Path) {
    std::fs::create_dir_all(root.join("sub/empty")).unwrap();
    std::fs::write(root.join("sub/with space\nand newline"), b"odd").unwrap();
    std::fs::write(root.join("run.sh"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o4751)).unwrap();
    std::os::unix::fs::symlink("run.sh", root.join("link")).unwrap();
    std::os::unix::fs::symlink("sub", root.join("dirlink")).unwrap();
    let when = SystemTime::UNIX_EPOCH + Duration::new(1_234_567_890, 250_000_000);
    for path in ["run.sh", "sub/with space\nand newline"] {
        let file = std::fs::File::options()
            .write(true)
            .open(root.join(path))
            .unwrap();
        file.set_modified(when).unwrap();
    }
}

/// (mode, mtime, link target) of each of the paths.
fn facts(root: &Path) -> Vec<(u32, i64, i64, Option<std::path::PathBuf>)> {
    [
        "run.sh",
        "link",
        "dirlink",
        "sub",
        "sub/empty",
        "sub/with space\nand newline",
    ]
    .iter()
    .map(|name| {
        let path = root.join(name);
        let meta = std::fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let link = std::fs::read_link(&path).ok();
        let mode = if link.is_some() {
            0
        } else {
            meta.mode() & 0o7777
        };
        let mtime = if meta.is_dir() || link.is_some() {
            (0, 0)
        } else {
            (meta.mtime(), meta.mtime_nsec())
        };
        (mode, mtime.0, mtime.1, link)
    })
    .collect()
}

#[tokio::test]
async fn cp_r_p_streams_a_tree_up_and_back() {
    let server = EXECD.serve().await;
    let local = TempDir::new("cp-stream-local");
    let remote = TempDir::new("cp-stream-remote");
    let source = local.join("src");
    make(&source);
    let there = remote.text("copy");
    let output = EXECD
        .output(&[
            "cp",
            "-r",
            "-p",
            &local.text("src"),
            &format!("{}:{there}", server.url),
        ])
        .await;
    assert_exit(&output, 0);
    assert_eq!(facts(&source), facts(Path::new(&there)));
    let back = local.text("back");
    let output = EXECD
        .output(&["cp", "-rp", &format!("{}:{there}", server.url), &back])
        .await;
    assert_exit(&output, 0);
    assert_eq!(facts(&source), facts(Path::new(&back)));
    assert_eq!(
        std::fs::read(Path::new(&back).join("sub/with space\nand newline")).unwrap(),
        b"odd"
    );

    // The parent of the target is missing: an error naming it, nothing made.
    let nowhere = remote.text("missing/copy");
    let output = EXECD
        .output(&[
            "cp",
            "-r",
            &local.text("src"),
            &format!("{}:{nowhere}", server.url),
        ])
        .await;
    assert_exit(&output, 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("missing/copy"), "{stderr}");
    assert!(!remote.join("missing").exists());
}
