//! `fs/watch` against a real `execd serve` child, through its flags: the
//! queue bound reported as an `overflow` change, watches and inotify
//! watches refused by name, a directory tree moved into a recursive watch
//! counted against `--max-fs-watch-paths` (the server's inotify watches
//! read from `/proc/PID/fdinfo`), `fs/unwatch` stopping changes, watches ending
//! with their connection (the server's inotify fds counted in
//! `/proc/PID/fd`), and `fs/rename` both ends checked against codex's
//! `sandbox`.

use std::time::Duration;

use execd_test_support::procs::child_of;
use execd_test_support::{eventually, Client, Execd, ExecdServer, TempDir};
use serde_json::{json, Value};

const EXECD: Execd = Execd(env!("CARGO_BIN_EXE_execd"));

/// `execd serve --no-auth` (these tests speak raw JSON-RPC) with `flags`.
async fn serve(flags: &[&str]) -> ExecdServer {
    let mut args = vec!["--no-auth"];
    args.extend_from_slice(flags);
    EXECD.serve_with(&args).await
}

/// The server process behind `execd serve`'s supervisor.
async fn server_pid(serve: &ExecdServer) -> i32 {
    let supervisor = serve.child.id().expect("pid") as i32;
    let mut pid = None;
    eventually("the server process", || {
        pid = child_of(supervisor);
        pid.is_some()
    })
    .await;
    pid.expect("server pid")
}

/// inotify instances `pid` holds open.
fn inotify_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .filter(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|target| target.to_string_lossy().contains("inotify"))
                })
                .count()
        })
        .unwrap_or(0)
}

fn watch_params(id: &str, dir: &TempDir, recursive: bool) -> Value {
    json!({"watchId": id, "path": dir.path().display().to_string(), "recursive": recursive})
}

#[tokio::test]
async fn a_full_queue_is_reported_as_overflow() {
    let serve = serve(&[
        "--max-fs-watch-events",
        "4",
        "--fs-watch-coalesce-ms",
        "300",
    ])
    .await;
    let mut client = Client::connect_initialized(&serve.url).await;
    let dir = TempDir::new("watch-overflow");
    client
        .call("fs/watch", watch_params("w", &dir, false))
        .await
        .expect("watch");
    // 50 creations land within the 300 ms a batch waits; 4 fit the queue.
    for i in 0..50 {
        std::fs::write(dir.join(&format!("f{i}")), "x").unwrap();
    }
    let seen = client.changes_until("w", |c| c["kind"] == "overflow").await;
    let overflow = seen.iter().find(|c| c["kind"] == "overflow").unwrap();
    assert_eq!(overflow["limit"], "maxFsWatchEvents", "{seen:?}");
    assert_eq!(overflow["path"], dir.path().display().to_string());
    let created = seen.iter().filter(|c| c["kind"] == "created").count();
    assert!((1..=4).contains(&created), "{seen:?}");
    // The watch goes on after an overflow.
    std::fs::write(dir.join("after"), "x").unwrap();
    let after = dir.join("after").display().to_string();
    client
        .changes_until("w", |c| c["path"] == after.as_str())
        .await;
}

#[tokio::test]
async fn watches_and_inotify_watches_are_bounded_by_name() {
    let serve = serve(&["--max-fs-watches", "2", "--max-fs-watch-paths", "4"]).await;
    let mut client = Client::connect_initialized(&serve.url).await;
    let dir = TempDir::new("watch-limits");
    for sub in ["a", "b", "c", "d"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
    }
    // Recursive: the root and 4 directories, 5 inotify watches.
    let err = client
        .call_expect_error("fs/watch", watch_params("deep", &dir, true))
        .await;
    assert_eq!(err["data"]["limit"], "maxFsWatchPaths", "{err}");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains(&dir.path().display().to_string())
            && message.contains("--max-fs-watch-paths"),
        "{message}"
    );
    client
        .call("fs/watch", watch_params("one", &dir, false))
        .await
        .expect("one");
    let dup = client
        .call_expect_error("fs/watch", watch_params("one", &dir, false))
        .await;
    assert!(
        dup["message"].as_str().unwrap().contains("\"one\""),
        "{dup}"
    );
    client
        .call("fs/watch", watch_params("two", &dir, false))
        .await
        .expect("two");
    let err = client
        .call_expect_error("fs/watch", watch_params("three", &dir, false))
        .await;
    assert_eq!(err["data"]["limit"], "maxFsWatches", "{err}");
    let missing = dir.join("nope").display().to_string();
    client
        .call("fs/unwatch", json!({"watchId": "two"}))
        .await
        .expect("unwatch");
    let err = client
        .call_expect_error("fs/watch", json!({"watchId": "m", "path": missing}))
        .await;
    assert!(err["message"].as_str().unwrap().contains(&missing), "{err}");
    // A refused watch holds nothing: the id is free, the connection works.
    client
        .call("fs/watch", watch_params("three", &dir, false))
        .await
        .expect("three");
}

#[tokio::test]
async fn unwatch_stops_changes() {
    let serve = serve(&[]).await;
    let mut client = Client::connect_initialized(&serve.url).await;
    let dir = TempDir::new("watch-unwatch");
    client
        .call("fs/watch", watch_params("old", &dir, false))
        .await
        .expect("watch");
    std::fs::write(dir.join("first"), "x").unwrap();
    client
        .changes_until("old", |c| c["kind"] == "created")
        .await;
    let removed = client
        .call("fs/unwatch", json!({"watchId": "old"}))
        .await
        .expect("unwatch");
    assert_eq!(removed["removed"], true);
    let again = client
        .call("fs/unwatch", json!({"watchId": "old"}))
        .await
        .expect("again");
    assert_eq!(again["removed"], false);
    // A second watch sees the next change; the first sends nothing more.
    client
        .call("fs/watch", watch_params("new", &dir, false))
        .await
        .expect("watch");
    std::fs::write(dir.join("second"), "x").unwrap();
    let second = dir.join("second").display().to_string();
    client
        .changes_until("new", |c| c["path"] == second.as_str())
        .await;
    let late: Vec<Value> = client
        .take_notifications()
        .into_iter()
        .filter(|f| f["params"]["watchId"] == "old")
        .collect();
    assert!(late.is_empty(), "changes after fs/unwatch: {late:?}");
}

#[tokio::test]
async fn watches_end_with_their_connection() {
    let serve = serve(&[]).await;
    let pid = server_pid(&serve).await;
    let baseline = inotify_fds(pid);
    let dir = TempDir::new("watch-leak");
    std::fs::create_dir(dir.join("sub")).unwrap();
    let mut client = Client::connect_initialized(&serve.url).await;
    for i in 0..3 {
        let id = format!("w{i}");
        client
            .call("fs/watch", watch_params(&id, &dir, i == 0))
            .await
            .expect("watch");
    }
    assert_eq!(inotify_fds(pid), baseline + 3);
    drop(client);
    eventually("the server to close its inotify fds", || {
        inotify_fds(pid) == baseline
    })
    .await;
    // A new connection starts with none and can watch again.
    let mut client = Client::connect_initialized(&serve.url).await;
    client
        .call("fs/watch", watch_params("w0", &dir, true))
        .await
        .expect("watch");
    tokio::time::timeout(Duration::from_secs(5), async {
        std::fs::write(dir.join("sub/x"), "x").unwrap();
        client.changes_until("w0", |c| c["kind"] == "created").await
    })
    .await
    .expect("changes on a new connection");
}

#[tokio::test]
async fn rename_checks_both_ends_against_the_sandbox() {
    let serve = serve(&[]).await;
    let mut client = Client::connect_initialized(&serve.url).await;
    let dir = TempDir::new("rename-sandbox");
    let (writable, outside) = (dir.join("w"), dir.join("o"));
    std::fs::create_dir(&writable).unwrap();
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(writable.join("f"), "x").unwrap();
    std::fs::write(outside.join("g"), "x").unwrap();
    let root = format!("file://{}", writable.display());
    let sandbox = json!({
        "permissions": {"type": "managed", "network": "restricted", "file_system": {"type": "restricted",
            "entries": [{"path": {"type": "special", "value": {"kind": "root"}}, "access": "read"},
                        {"path": {"type": "special", "value": {"kind": "project_roots"}}, "access": "write"}]}},
        "cwd": root, "workspaceRoots": [root], "windowsSandboxLevel": "disabled"
    });
    let rename = |from: &std::path::Path, to: &std::path::Path| json!({"sourcePath": from.display().to_string(), "destinationPath": to.display().to_string(), "sandbox": sandbox});
    let err = client
        .call_expect_error("fs/rename", rename(&writable.join("f"), &outside.join("f")))
        .await;
    assert!(
        err["message"].as_str().unwrap().contains("destinationPath"),
        "{err}"
    );
    let err = client
        .call_expect_error("fs/rename", rename(&outside.join("g"), &writable.join("g")))
        .await;
    assert!(
        err["message"].as_str().unwrap().contains("sourcePath"),
        "{err}"
    );
    assert!(writable.join("f").exists() && outside.join("g").exists());
    client
        .call(
            "fs/rename",
            rename(&writable.join("f"), &writable.join("h")),
        )
        .await
        .expect("rename inside the writable root");
    assert!(writable.join("h").exists());
}

/// inotify watches `pid` holds (every inotify descriptor's
/// `/proc/PID/fdinfo` lists one `inotify wd:` line per watch).
fn inotify_watches(pid: i32) -> usize {
    let mut total = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo")).expect("fdinfo") {
        let Ok(entry) = entry else { continue };
        if let Ok(info) = std::fs::read_to_string(entry.path()) {
            total += info
                .lines()
                .filter(|l| l.starts_with("inotify wd:"))
                .count();
        }
    }
    total
}

#[tokio::test]
async fn a_tree_moved_into_a_recursive_watch_counts_against_the_bound() {
    let serve = serve(&["--max-fs-watch-paths", "3"]).await;
    let pid = server_pid(&serve).await;
    let mut client = Client::connect_initialized(&serve.url).await;
    let dir = TempDir::new("watch-moved-in");
    let outside = TempDir::new("watch-moved-in-src");
    let shown = |name: &str| dir.join(name).display().to_string();
    client
        .call(
            "fs/watch",
            json!({"watchId": "w", "path": dir.path().display().to_string(), "recursive": true}),
        )
        .await
        .expect("watch");
    assert_eq!(inotify_watches(pid), 1);

    // Ten directories moved in at once: past the bound of 3. Reported as
    // renamed, then an overflow naming the bound; not watched.
    let tree = outside.join("t");
    std::fs::create_dir_all(tree.join("a/b/c/d/e/f/g/h/i")).unwrap();
    std::fs::rename(&tree, dir.join("t")).unwrap();
    let seen = client.changes_until("w", |c| c["kind"] == "overflow").await;
    let overflow = seen.iter().find(|c| c["kind"] == "overflow").unwrap();
    assert_eq!(overflow["limit"], "maxFsWatchPaths", "{seen:?}");
    assert!(
        seen.iter()
            .any(|c| c["kind"] == "renamed" && c["to"] == shown("t").as_str()),
        "{seen:?}"
    );
    assert_eq!(inotify_watches(pid), 1, "the moved-in tree is not watched");

    // One that fits is watched, and counted: a write in it is seen, and
    // the bound is then full.
    let fits = outside.join("u");
    std::fs::create_dir_all(fits.join("v")).unwrap();
    std::fs::rename(&fits, dir.join("u")).unwrap();
    client
        .changes_until("w", |c| {
            c["kind"] == "renamed" && c["to"] == shown("u").as_str()
        })
        .await;
    std::fs::write(dir.join("u/v/f"), "x").unwrap();
    client
        .changes_until("w", |c| c["path"] == shown("u/v/f").as_str())
        .await;
    assert_eq!(inotify_watches(pid), 3);
    let err = client
        .call_expect_error(
            "fs/watch",
            json!({"watchId": "o", "path": outside.path().display().to_string()}),
        )
        .await;
    assert_eq!(err["data"]["limit"], "maxFsWatchPaths", "{err}");

    // A move inside the watch is no arrival: not counted again (no
    // overflow, still watched). New directories are handled in order, so
    // the overflow of one made next comes after anything the move caused.
    std::fs::rename(dir.join("u"), dir.join("w")).unwrap();
    std::fs::create_dir(dir.join("x")).unwrap();
    let seen = client.changes_until("w", |c| c["kind"] == "overflow").await;
    let overflows = seen.iter().filter(|c| c["kind"] == "overflow").count();
    assert_eq!(overflows, 1, "only the new directory's: {seen:?}");
    assert!(
        seen.iter()
            .any(|c| c["kind"] == "created" && c["path"] == shown("x").as_str()),
        "{seen:?}"
    );
    assert_eq!(inotify_watches(pid), 3);
}
