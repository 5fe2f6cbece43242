//! A transfer cut off midway (the connection reset by test-support's
//! `FaultProxy`, mid-frame) fails on the client and leaves no file under
//! the final name on either end: the server removes an upload's temporary
//! file when the connection goes, and a download's local sink removes its
//! own. The session itself is resumed, and a new transfer works.

use std::path::Path;
use std::time::Duration;

use execd_client::{
    pump, ExecServerClient, LocalEnvironment, RemoteEnvironment, TransferFormat, WriteOptions,
};
use execd_server::ServerConfig;
use execd_test_support::proxy::{Direction, FaultProxy};
use execd_test_support::server::start_server_with;

const MIB: usize = 1024 * 1024;

/// Nothing but `keep` in `dir`, within 10 s.
async fn wait_only(dir: &Path, keep: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| !keep.contains(&name.as_str()))
            .collect();
        if names.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "left behind: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_upload_and_download_leave_no_file_under_the_final_name() {
    let server = start_server_with(ServerConfig::default()).await;
    let proxy = FaultProxy::in_front_of(&server.url()).await;
    let client = ExecServerClient::connect(&proxy.url())
        .await
        .expect("connect");
    let remote = RemoteEnvironment::new(client).into_environment();
    let local = LocalEnvironment::environment();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    std::fs::write(&source, vec![42u8; 32 * MIB]).unwrap();
    let (there, back) = (dir.path().join("there"), dir.path().join("back"));
    let (source, there, back) = (
        source.to_str().unwrap().to_string(),
        there.to_str().unwrap().to_string(),
        back.to_str().unwrap().to_string(),
    );

    // Up: cut after 8 MiB of the 32.
    proxy.cut_after(Direction::Up, 8 * MIB as u64);
    let reader = local
        .fs
        .open_read(&source, TransferFormat::File)
        .await
        .unwrap();
    let writer = remote
        .fs
        .open_write(&there, WriteOptions::file())
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(60), pump(reader, writer, |_| {}))
        .await
        .expect("the cut upload ends");
    assert!(outcome.is_err(), "a cut upload fails: {outcome:?}");
    assert_eq!(proxy.cuts(), 1);
    wait_only(dir.path(), &["source"]).await;

    // A whole upload on the resumed session, then a download cut midway.
    let reader = local
        .fs
        .open_read(&source, TransferFormat::File)
        .await
        .unwrap();
    let writer = remote
        .fs
        .open_write(&there, WriteOptions::file())
        .await
        .unwrap();
    let bytes = pump(reader, writer, |_| {})
        .await
        .expect("upload after the cut");
    assert_eq!(bytes, 32 * MIB as u64);
    proxy.cut_after(Direction::Down, 8 * MIB as u64);
    let reader = remote
        .fs
        .open_read(&there, TransferFormat::File)
        .await
        .unwrap();
    let writer = local
        .fs
        .open_write(&back, WriteOptions::file())
        .await
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(60), pump(reader, writer, |_| {}))
        .await
        .expect("the cut download ends");
    assert!(outcome.is_err(), "a cut download fails: {outcome:?}");
    wait_only(dir.path(), &["source", "there"]).await;
    server.shutdown().await;
}
