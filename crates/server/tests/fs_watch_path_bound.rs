//! `maxFsWatchPaths` bounds the inotify watches a session's `fs/watch`
//! watches hold as directories are created under a recursive watch, not
//! only when a watch is set: with a bound of 2, a watched root and one new
//! directory fit; the next new directory is reported as created plus an
//! `overflow` change naming the limit (and is not watched); the session
//! can set no more watches until a removed directory gives its watch back.

use execd_server::ServerConfig;
use execd_test_support::{start_server_with, Client, TempDir};
use serde_json::json;

#[tokio::test]
async fn directories_created_later_count_against_the_bound() {
    let mut config = ServerConfig::default();
    config.watch.max_watch_paths = 2;
    let server = start_server_with(config).await;
    let mut client = Client::connect_initialized(&server.url()).await;
    let dir = TempDir::new("watch-bound");
    let other = TempDir::new("watch-bound-other");
    let shown = |name: &str| dir.join(name).display().to_string();
    let watched = client
        .call(
            "fs/watch",
            json!({"watchId": "w", "path": dir.path().display().to_string(), "recursive": true}),
        )
        .await
        .expect("watch");
    assert_eq!(watched["watchedPaths"], 1, "{watched}");

    // The second watch: fits, and is watched (a write in it is seen).
    std::fs::create_dir(dir.join("a")).unwrap();
    client
        .changes_until("w", |c| {
            c["kind"] == "created" && c["path"] == shown("a").as_str()
        })
        .await;
    std::fs::write(dir.join("a/f"), "x").unwrap();
    client
        .changes_until("w", |c| c["path"] == shown("a/f").as_str())
        .await;

    // The third would pass the bound: created, then an overflow naming it.
    std::fs::create_dir(dir.join("b")).unwrap();
    let seen = client.changes_until("w", |c| c["kind"] == "overflow").await;
    let overflow = seen.iter().find(|c| c["kind"] == "overflow").unwrap();
    assert_eq!(overflow["limit"], "maxFsWatchPaths", "{seen:?}");
    assert_eq!(
        overflow["path"],
        dir.path().display().to_string(),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|c| c["kind"] == "created" && c["path"] == shown("b").as_str()),
        "{seen:?}"
    );

    // The session's bound is full: no other watch fits.
    let other_params = json!({"watchId": "o", "path": other.path().display().to_string()});
    let err = client
        .call_expect_error("fs/watch", other_params.clone())
        .await;
    assert_eq!(err["data"]["limit"], "maxFsWatchPaths", "{err}");

    // Removing the watched directory gives its watch back.
    std::fs::remove_file(dir.join("a/f")).unwrap();
    std::fs::remove_dir(dir.join("a")).unwrap();
    client
        .changes_until("w", |c| {
            c["kind"] == "removed" && c["path"] == shown("a").as_str()
        })
        .await;
    client
        .call("fs/watch", other_params)
        .await
        .expect("a watch fits again");

    drop(client);
    server.shutdown().await;
}
