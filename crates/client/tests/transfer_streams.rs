//! File and tree streams (`FileSystem::open_read` / `open_write`) on both
//! backends: a big random file byte-exact both ways, a tree of 10,000
//! entries with symlinks, empty directories, odd names, modes and times
//! kept with `preserve`, hostile tar refused without writing outside the
//! destination, and an abandoned stream leaving nothing under its name.
//!
//! The big file is 64 MiB by default (`EXECD_TEST_TRANSFER_BYTES` sets
//! another size); `big_file_1gib` (ignored) moves 1 GiB.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use execd_client::{pump, Environment, LocalEnvironment, TransferFormat, WriteOptions};
use execd_test_support::{
    both_backends, send_tree, tar_entry, through_symlink, wait_only, Backend,
};
use rand::{RngCore, SeedableRng};

const MIB: u64 = 1024 * 1024;

fn local() -> Environment {
    LocalEnvironment::environment()
}

fn text(path: &Path) -> String {
    path.to_str().expect("test paths are UTF-8").to_string()
}

/// A file of `size` bytes from a PRNG seeded with `seed`.
fn random_file(path: &Path, size: u64, seed: u64) {
    use std::io::Write;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut block = vec![0u8; MIB as usize];
    let mut left = size;
    while left > 0 {
        let n = left.min(MIB) as usize;
        rng.fill_bytes(&mut block[..n]);
        out.write_all(&block[..n]).unwrap();
        left -= n as u64;
    }
    out.flush().unwrap();
}

/// Both files hold the same bytes (compared a MiB at a time).
fn assert_same_bytes(a: &Path, b: &Path) {
    use std::io::Read;
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    assert_eq!(
        fa.metadata().unwrap().len(),
        fb.metadata().unwrap().len(),
        "sizes differ"
    );
    let (mut ba, mut bb) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    let mut offset = 0u64;
    loop {
        let n = fa.read(&mut ba).unwrap();
        if n == 0 {
            return;
        }
        fb.read_exact(&mut bb[..n]).unwrap();
        assert!(ba[..n] == bb[..n], "bytes differ in the MiB at {offset}");
        offset += n as u64;
    }
}

/// `from` on `src` to `to` on `dst`, as one stream.
async fn stream(src: &Environment, from: &str, dst: &Environment, to: &str, options: WriteOptions) {
    let reader = src
        .fs
        .open_read(from, options.format)
        .await
        .expect("open_read");
    let writer = dst.fs.open_write(to, options).await.expect("open_write");
    tokio::time::timeout(Duration::from_secs(600), pump(reader, writer, |_| {}))
        .await
        .expect("the stream finished in time")
        .expect("the stream");
}

async fn big_file_round_trip(env: Environment, size: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (original, there, back) = (
        dir.path().join("original"),
        dir.path().join("there"),
        dir.path().join("back"),
    );
    random_file(&original, size, 0x5eed);
    stream(
        &local(),
        &text(&original),
        &env,
        &text(&there),
        WriteOptions::file(),
    )
    .await;
    stream(
        &env,
        &text(&there),
        &local(),
        &text(&back),
        WriteOptions::file(),
    )
    .await;
    assert_same_bytes(&original, &back);
}

fn big_size() -> u64 {
    std::env::var("EXECD_TEST_TRANSFER_BYTES")
        .ok()
        .and_then(|size| size.parse().ok())
        .unwrap_or(64 * MIB)
}

async fn big_file(env: Environment) {
    big_file_round_trip(env, big_size()).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "1 GiB each way: run with --ignored"]
async fn big_file_1gib() {
    Backend::Remote
        .run(|env| big_file_round_trip(env, 1024 * MIB))
        .await;
}

/// What a tree entry is, as compared: kind, mode, mtime, content or target.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    kind: &'static str,
    mode: u32,
    mtime: (i64, i64),
    data: Vec<u8>,
}

/// Every entry under `root` by relative path (root included as "").
fn survey(root: &Path) -> Vec<(PathBuf, Seen)> {
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let path = root.join(&relative);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let (kind, data) = if meta.file_type().is_symlink() {
            (
                "link",
                std::fs::read_link(&path)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
        } else if meta.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(relative.join(entry.unwrap().file_name()));
            }
            ("dir", Vec::new())
        } else {
            ("file", std::fs::read(&path).unwrap())
        };
        let mode = if kind == "link" {
            0
        } else {
            meta.mode() & 0o7777
        };
        out.push((
            relative,
            Seen {
                kind,
                mode,
                mtime: (meta.mtime(), meta.mtime_nsec()),
                data,
            },
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// 10,000 entries: 52 directories of 190 files (modes vary), an empty
/// directory each, 4 symlinks each (in, out, dangling, to a directory),
/// odd names, a long name, and times of the past.
fn build_tree(root: &Path) -> usize {
    use std::ffi::OsStr;
    std::fs::create_dir(root).unwrap();
    let odd: [&[u8]; 4] = [b"with space", b"new\nline", b"bytes\xff\xfe", b"tab\there"];
    let mut entries = 1;
    for d in 0..52 {
        let dir = root.join(format!("dir {d:02}"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::create_dir(dir.join("empty")).unwrap();
        entries += 2;
        for f in 0..190 {
            let name = match f {
                0..=3 => OsStr::from_bytes(odd[f]).to_os_string(),
                4 => "l".repeat(150).into(),
                _ => format!("file-{f}").into(),
            };
            let path = dir.join(name);
            std::fs::write(&path, format!("{d}/{f}\n").repeat(f % 7)).unwrap();
            let mode = [0o644, 0o600, 0o755, 0o4755, 0o640][f % 5];
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let when =
                SystemTime::UNIX_EPOCH + Duration::new(1_600_000_000 + f as u64, 123_456_789);
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(when).unwrap();
            entries += 1;
        }
        std::os::unix::fs::symlink("file-10", dir.join("link-in")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("link-out")).unwrap();
        std::os::unix::fs::symlink("nowhere", dir.join("link-dangling")).unwrap();
        std::os::unix::fs::symlink("empty", dir.join("link-dir")).unwrap();
        entries += 4;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        let when = SystemTime::UNIX_EPOCH + Duration::new(1_500_000_000 + d, 5);
        std::fs::File::open(&dir)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
    entries
}

async fn tree_round_trip(env: Environment) {
    let dir = tempfile::tempdir().unwrap();
    let (original, there, back) = (
        dir.path().join("original"),
        dir.path().join("there"),
        dir.path().join("back"),
    );
    let entries = build_tree(&original);
    assert!(entries >= 10_000, "{entries} entries");
    let preserve = WriteOptions::tree(true);
    stream(&local(), &text(&original), &env, &text(&there), preserve).await;
    stream(&env, &text(&there), &local(), &text(&back), preserve).await;
    let (want, got) = (survey(&original), survey(&back));
    assert_eq!(want.len(), got.len());
    for ((want_path, want), (got_path, got)) in want.iter().zip(&got) {
        assert_eq!(want_path, got_path);
        assert_eq!(want, got, "{}", want_path.display());
    }
}

async fn hostile_tar_refused(env: Environment) {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let absolute = outside.join("absolute");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "`..`",
            tar_entry(b"../outside/dotdot", tar::EntryType::Regular, None, b"x"),
        ),
        (
            "absolute",
            tar_entry(
                absolute.as_os_str().as_bytes(),
                tar::EntryType::Regular,
                None,
                b"x",
            ),
        ),
        ("not a directory", through_symlink(&outside)),
        (
            "only directories, regular files and symbolic links",
            tar_entry(b"hard", tar::EntryType::Link, Some(b"/etc/passwd"), b""),
        ),
    ];
    for (n, (why, tar)) in cases.into_iter().enumerate() {
        let destination = dir.path().join(format!("destination-{n}"));
        let error = send_tree(&env, &destination, tar)
            .await
            .expect_err("hostile tar refused");
        assert!(error.contains(why), "{why}: {error}");
    }
    let left: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
    assert!(left.is_empty(), "written outside: {left:?}");
    assert!(!dir.path().join("through").exists());
}

async fn abandoned_upload_leaves_nothing(env: Environment) {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let mut sink = env
        .fs
        .open_write(&text(&target), WriteOptions::file())
        .await
        .unwrap();
    sink.write_piece(Bytes::from(vec![7u8; 3 * MIB as usize]))
        .await
        .unwrap();
    drop(sink);
    wait_only(dir.path(), &[]).await;
    assert!(!target.exists());
    // An existing file is untouched by an abandoned replacement.
    std::fs::write(&target, b"old").unwrap();
    let mut sink = env
        .fs
        .open_write(&text(&target), WriteOptions::file())
        .await
        .unwrap();
    sink.write_piece(Bytes::from_static(b"new")).await.unwrap();
    drop(sink);
    wait_only(dir.path(), &["target"]).await;
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
}

async fn stream_errors_name_the_path(env: Environment) {
    let missing = "/nonexistent-execd-test/file";
    let error = env
        .fs
        .open_read(missing, TransferFormat::File)
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains(missing), "{error}");
    let error = env
        .fs
        .open_write(missing, WriteOptions::file())
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains(missing), "{error}");
    let error = env
        .fs
        .open_read("/etc/hostname", TransferFormat::Tree)
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains("not a directory"), "{error}");
}

both_backends!(
    #[tokio::test(flavor = "multi_thread")] Backend::run:
    big_file,
    tree_round_trip,
    hostile_tar_refused,
    abandoned_upload_leaves_nothing,
    stream_errors_name_the_path,
);
