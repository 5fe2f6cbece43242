//! `fs/watch`, `fs/rename` and `fs/walk` through the environment traits,
//! on both backends (this machine, and a real server over a socket):
//! watch changes (create, modify, remove, rename, recursive), renames
//! across directories and their errors, and a paged walk of a large tree
//! with types, sizes, modes and mtimes.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use execd_client::{EnvError, Environment};
use execd_environment::FileWatch;
use execd_protocol::codex::fs::{WalkEntryKind, WalkOptions, WalkParams};
use execd_protocol::fs_watch::{ChangeKind, FsChange};
use execd_test_support::{both_backends, Backend, TempDir, TIMEOUT};

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// Take batches until `wanted` matches a change; everything seen.
async fn wait_for(watch: &mut FileWatch, wanted: impl Fn(&FsChange) -> bool) -> Vec<FsChange> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let batch = tokio::time::timeout_at(deadline, watch.next())
            .await
            .unwrap_or_else(|_| panic!("no wanted change within {TIMEOUT:?}; saw {seen:?}"))
            .expect("the watch ended")
            .expect("the watch failed");
        let found = batch.iter().any(&wanted);
        seen.extend(batch);
        if found {
            return seen;
        }
    }
}

fn is(kind: ChangeKind, p: &Path) -> impl Fn(&FsChange) -> bool {
    let p = path(p);
    move |c| c.kind == kind && c.path == p
}

async fn watch_sees_create_modify_rename_remove(env: Environment) {
    let dir = TempDir::new("watch-kinds");
    let mut watch = env.fs.watch(&path(dir.path()), false).await.expect("watch");
    let (a, b) = (dir.join("a.txt"), dir.join("b.txt"));
    std::fs::write(&a, "one").unwrap();
    wait_for(&mut watch, is(ChangeKind::Created, &a)).await;
    let mut file = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
    std::io::Write::write_all(&mut file, b"two").unwrap();
    drop(file);
    wait_for(&mut watch, is(ChangeKind::Modified, &a)).await;
    std::fs::rename(&a, &b).unwrap();
    let seen = wait_for(&mut watch, |c| {
        c.kind == ChangeKind::Renamed && c.to.is_some()
    })
    .await;
    let renamed = seen
        .iter()
        .rev()
        .find(|c| c.kind == ChangeKind::Renamed)
        .unwrap();
    assert_eq!(renamed.from.as_deref(), Some(path(&a).as_str()), "{seen:?}");
    assert_eq!(renamed.to.as_deref(), Some(path(&b).as_str()), "{seen:?}");
    assert_eq!(renamed.path, path(&b));
    std::fs::remove_file(&b).unwrap();
    wait_for(&mut watch, is(ChangeKind::Removed, &b)).await;
}

async fn recursive_watch_sees_a_file_in_a_new_subdirectory(env: Environment) {
    let dir = TempDir::new("watch-recursive");
    std::fs::create_dir(dir.join("old")).unwrap();
    let mut watch = env.fs.watch(&path(dir.path()), true).await.expect("watch");
    // An existing subdirectory is watched from the start.
    std::fs::write(dir.join("old/x"), "x").unwrap();
    wait_for(&mut watch, is(ChangeKind::Created, &dir.join("old/x"))).await;
    // A new one once it is created.
    let sub = dir.join("new");
    std::fs::create_dir(&sub).unwrap();
    wait_for(&mut watch, is(ChangeKind::Created, &sub)).await;
    let inner = sub.join("deep.txt");
    std::fs::write(&inner, "deep").unwrap();
    wait_for(&mut watch, |c| c.path == path(&inner)).await;
}

async fn a_directory_moved_inside_a_recursive_watch_reports_under_its_new_name(env: Environment) {
    let dir = TempDir::new("watch-moved-dir");
    std::fs::create_dir_all(dir.join("u/v")).unwrap();
    let mut watch = env.fs.watch(&path(dir.path()), true).await.expect("watch");
    let (from, to) = (dir.join("u"), dir.join("w"));
    std::fs::rename(&from, &to).unwrap();
    let seen = wait_for(&mut watch, |c| {
        c.kind == ChangeKind::Renamed && c.to.as_deref() == Some(path(&to).as_str())
    })
    .await;
    let renamed = seen.iter().rev().find(|c| c.to.is_some()).unwrap();
    assert_eq!(
        renamed.from.as_deref(),
        Some(path(&from).as_str()),
        "{seen:?}"
    );
    // Seen the rename: what happens below the directory now is reported
    // under its new name, at every depth.
    let (top, deep) = (to.join("top"), to.join("v/deep"));
    std::fs::write(&top, "x").unwrap();
    std::fs::write(&deep, "x").unwrap();
    let seen = wait_for(&mut watch, |c| c.path == path(&deep)).await;
    assert!(seen.iter().any(|c| c.path == path(&top)), "{seen:?}");
    let old = path(&from);
    assert!(
        !seen.iter().any(|c| c.path.starts_with(&format!("{old}/"))),
        "a change under the old name: {seen:?}"
    );
}

async fn watch_errors_name_the_path(env: Environment) {
    let dir = TempDir::new("watch-missing");
    let missing = path(&dir.join("nope"));
    let err = env
        .fs
        .watch(&missing, true)
        .await
        .expect_err("missing path");
    assert!(matches!(err, EnvError::NotFound(_)), "{err:?}");
    assert!(err.to_string().contains(&missing), "{err}");
}

async fn rename_moves_across_directories(env: Environment) {
    let dir = TempDir::new("rename");
    std::fs::create_dir_all(dir.join("from/inner")).unwrap();
    std::fs::create_dir(dir.join("to")).unwrap();
    std::fs::write(dir.join("from/inner/f"), "data").unwrap();
    std::fs::write(dir.join("to/old"), "old").unwrap();
    // A file across directories, replacing what is there.
    let (src, dst) = (dir.join("from/inner/f"), dir.join("to/old"));
    env.fs
        .rename(&path(&src), &path(&dst))
        .await
        .expect("rename file");
    assert_eq!(std::fs::read(&dst).unwrap(), b"data");
    assert!(!src.exists());
    // A whole directory.
    let moved = dir.join("to/inner");
    env.fs
        .rename(&path(&dir.join("from/inner")), &path(&moved))
        .await
        .expect("rename dir");
    assert!(moved.is_dir() && !dir.join("from/inner").exists());
    // Errors name the path they are about.
    let err = env
        .fs
        .rename(&path(&src), &path(&dir.join("to/x")))
        .await
        .expect_err("missing source");
    assert!(matches!(err, EnvError::NotFound(_)), "{err:?}");
    assert!(err.to_string().contains(&path(&src)), "{err}");
    let err = env
        .fs
        .rename(&path(&dst), &path(&dir.join("no/such/dir/x")))
        .await
        .expect_err("missing destination directory");
    assert!(
        err.to_string().contains(&path(&dir.join("no/such/dir"))),
        "{err}"
    );
}

async fn rename_across_filesystems_is_refused_clearly(env: Environment) {
    let shm = Path::new("/dev/shm");
    let dir = TempDir::new("rename-xdev");
    let same_device = std::fs::metadata(shm).map(|m| m.dev()).ok()
        == Some(std::fs::metadata(dir.path()).unwrap().dev());
    if same_device {
        eprintln!("skipped: /dev/shm is on the same filesystem as the temp dir");
        return;
    }
    let src = dir.join("f");
    std::fs::write(&src, "x").unwrap();
    let dst = shm.join(format!("execd-xdev-{}", std::process::id()));
    let err = env
        .fs
        .rename(&path(&src), &path(&dst))
        .await
        .expect_err("cross-device");
    let message = err.to_string();
    assert!(
        message.contains("EXDEV") && message.contains(&path(&src)),
        "{message}"
    );
    assert!(message.contains(&path(&dst)), "{message}");
    assert!(src.exists() && !dst.exists());
}

/// What the walk should find below `root`: kind, size, mode, mtime (ms).
type Expected = BTreeMap<String, (WalkEntryKind, u64, u32, i64)>;

/// 100 directories of 199 files each, a symlink and a fifo: 20,002 entries.
fn big_tree(root: &Path) -> Expected {
    let mut expected = Expected::new();
    for d in 0..100 {
        let sub = root.join(format!("d{d:03}"));
        std::fs::create_dir(&sub).unwrap();
        for f in 0..199 {
            let file = sub.join(format!("f{f:03}"));
            std::fs::write(&file, vec![b'x'; (d * 7 + f) % 50]).unwrap();
            if f % 10 == 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
            }
        }
    }
    std::os::unix::fs::symlink("d000/f000", root.join("link")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .unwrap();
    assert!(fifo.success());
    for entry in walk_local(root) {
        let meta = std::fs::symlink_metadata(&entry).unwrap();
        let kind = if meta.is_dir() {
            WalkEntryKind::Directory
        } else if meta.is_file() {
            WalkEntryKind::File
        } else if meta.file_type().is_symlink() {
            WalkEntryKind::Symlink
        } else {
            WalkEntryKind::Other
        };
        let mtime = meta.mtime() * 1000 + meta.mtime_nsec() / 1_000_000;
        expected.insert(
            path(&entry),
            (kind, meta.len(), meta.mode() & 0o7777, mtime),
        );
    }
    expected
}

fn walk_local(root: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap().path();
        if entry.is_dir() && !entry.is_symlink() {
            found.extend(walk_local(&entry));
        }
        found.push(entry);
    }
    found
}

fn walk_params(root: &Path, cursor: Option<String>) -> WalkParams {
    WalkParams {
        path: path(root),
        options: WalkOptions {
            max_depth: 8,
            max_directories: 10_000,
            max_entries: 100_000,
            follow_directory_symlinks: false,
            prune_hidden_directories: false,
        },
        sandbox: None,
        metadata: true,
        include_symlinks: true,
        include_other: true,
        limit: Some(3000),
        cursor,
    }
}

async fn paged_walk_of_a_large_tree(env: Environment) {
    let dir = TempDir::new("walk-big");
    let expected = big_tree(dir.path());
    assert_eq!(expected.len(), 20_002);
    let mut found = Expected::new();
    let (mut cursor, mut pages) = (None, 0);
    loop {
        let page = env
            .fs
            .walk(walk_params(dir.path(), cursor.take()))
            .await
            .expect("walk");
        assert!(page.entries.len() <= 3000 && !page.truncated && page.errors.is_empty());
        pages += 1;
        for e in page.entries {
            let meta = (
                e.kind,
                e.size.unwrap(),
                e.mode.unwrap(),
                e.modified_at_ms.unwrap(),
            );
            assert!(
                found.insert(e.path.clone(), meta).is_none(),
                "{} twice",
                e.path
            );
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 7);
    assert_eq!(found, expected);
    // Without the extensions: codex's files and directories only.
    let mut plain = walk_params(dir.path(), None);
    (
        plain.metadata,
        plain.include_symlinks,
        plain.include_other,
        plain.limit,
    ) = (false, false, false, None);
    let whole = env.fs.walk(plain).await.expect("plain walk");
    assert_eq!(whole.entries.len(), 20_000);
    assert!(whole.next_cursor.is_none() && whole.entries.iter().all(|e| e.size.is_none()));
    let err = env
        .fs
        .walk(walk_params(&dir.join("nope"), None))
        .await
        .expect_err("missing root");
    assert!(err.to_string().contains(&path(&dir.join("nope"))), "{err}");
}

both_backends!(
    #[tokio::test]
    Backend::run:
    watch_sees_create_modify_rename_remove,
    recursive_watch_sees_a_file_in_a_new_subdirectory,
    a_directory_moved_inside_a_recursive_watch_reports_under_its_new_name,
    watch_errors_name_the_path,
    rename_moves_across_directories,
    rename_across_filesystems_is_refused_clearly,
    paged_walk_of_a_large_tree,
);
