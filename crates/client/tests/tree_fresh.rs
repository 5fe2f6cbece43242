//! A tree streamed to a destination that does not exist yet is unpacked
//! beside it and renamed into place whole (both backends): an abandoned
//! or refused stream leaves neither the destination nor a temporary
//! behind, errors name the destination (not the temporary), and an entry
//! replacing an earlier symlink of the same name replaces the link
//! instead of writing through it; a name the archive repeats keeps its
//! last entry although small files are written by several threads.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use bytes::Bytes;
use execd_client::{ByteSink, Environment, WriteOptions};
use execd_test_support::{
    both_backends, send_tree, tar_entry, through_symlink, wait_only, Backend,
};

fn text(path: &Path) -> String {
    path.to_str().expect("test paths are UTF-8").to_string()
}

async fn open_tree(env: &Environment, to: &Path) -> Box<dyn ByteSink> {
    env.fs
        .open_write(&text(to), WriteOptions::tree(false))
        .await
        .expect("open a tree sink")
}

async fn fresh_tree_appears_whole(env: Environment) {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::write(&outside, b"untouched").unwrap();
    let destination = dir.path().join("destination");
    let mut tar = tar_entry(b"d/a", tar::EntryType::Regular, None, b"first");
    tar.extend(tar_entry(
        b"link",
        tar::EntryType::Symlink,
        Some(outside.as_os_str().as_bytes()),
        b"",
    ));
    tar.extend(tar_entry(
        b"link",
        tar::EntryType::Regular,
        None,
        b"replaced",
    ));
    send_tree(&env, &destination, tar)
        .await
        .expect("tree written");
    assert_eq!(std::fs::read(destination.join("d/a")).unwrap(), b"first");
    let link = destination.join("link");
    assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
    assert_eq!(std::fs::read(&link).unwrap(), b"replaced");
    assert_eq!(std::fs::read(&outside).unwrap(), b"untouched");
    wait_only(dir.path(), &["outside", "destination"]).await;
}

async fn refused_fresh_tree_leaves_nothing_and_names_the_destination(env: Environment) {
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let destination = dir.path().join("destination");
    let mut tar = tar_entry(b"kept", tar::EntryType::Regular, None, b"x");
    tar.extend(through_symlink(&outside));
    let error = send_tree(&env, &destination, tar)
        .await
        .expect_err("writing through a symlink is refused");
    assert!(error.contains("not a directory"), "{error}");
    assert!(
        error.contains(&text(&destination.join("link"))),
        "the error names the destination: {error}"
    );
    assert!(!error.contains(".execd-"), "a temporary named: {error}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    wait_only(dir.path(), &["outside"]).await;
    assert!(!destination.exists());
}

async fn abandoned_fresh_tree_leaves_nothing(env: Environment) {
    let dir = tempfile::tempdir().unwrap();
    let destination = dir.path().join("destination");
    let mut sink = open_tree(&env, &destination).await;
    // One whole entry and the start of a second, then the stream is dropped.
    let mut tar = tar_entry(b"whole", tar::EntryType::Regular, None, &[1u8; 4096]);
    let second = tar_entry(b"cut", tar::EntryType::Regular, None, &[2u8; 65536]);
    tar.extend_from_slice(&second[..8192]);
    sink.write_piece(Bytes::from(tar)).await.unwrap();
    drop(sink);
    wait_only(dir.path(), &[]).await;
    assert!(!destination.exists());
}

/// Small files of a fresh tree are written by several threads: a name the
/// archive repeats still ends with its last entry's bytes.
async fn names_repeated_in_a_fresh_tree_keep_the_last_entry(env: Environment) {
    let dir = tempfile::tempdir().unwrap();
    let destination = dir.path().join("destination");
    let mut tar = Vec::new();
    for round in 0..3u8 {
        for i in 0..50usize {
            let name = format!("d{}/f{i}", i % 5);
            tar.extend(tar_entry(
                name.as_bytes(),
                tar::EntryType::Regular,
                None,
                &vec![b'a' + round; 100 + i],
            ));
        }
    }
    send_tree(&env, &destination, tar)
        .await
        .expect("tree written");
    for i in 0..50usize {
        let path = destination.join(format!("d{}/f{i}", i % 5));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            vec![b'c'; 100 + i],
            "{path:?}"
        );
    }
    wait_only(dir.path(), &["destination"]).await;
}

/// A file named as the parent of a later entry is refused, as a symlink
/// is, whichever thread wrote the file.
async fn a_file_used_as_a_directory_is_refused(env: Environment) {
    let dir = tempfile::tempdir().unwrap();
    let destination = dir.path().join("destination");
    let mut tar = tar_entry(b"f", tar::EntryType::Regular, None, b"a file");
    tar.extend(tar_entry(
        b"f/g",
        tar::EntryType::Regular,
        None,
        b"below it",
    ));
    let error = send_tree(&env, &destination, tar)
        .await
        .expect_err("a file is no directory");
    assert!(error.contains("not a directory"), "{error}");
    wait_only(dir.path(), &[]).await;
    assert!(!destination.exists());
}

both_backends!(
    #[tokio::test(flavor = "multi_thread")] Backend::run:
    names_repeated_in_a_fresh_tree_keep_the_last_entry,
    a_file_used_as_a_directory_is_refused,
    fresh_tree_appears_whole,
    refused_fresh_tree_leaves_nothing_and_names_the_destination,
    abandoned_fresh_tree_leaves_nothing,
);
